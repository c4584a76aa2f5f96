/**
 * `multifd migrate`: runs a built-in guest and migrates it to a destination.
 * Exit 0 when the destination confirmed the digest, 1 when it failed or was cancelled,
 * 2 on bad usage.
 */
import { parseArgs } from 'node:util';
import { COMPRESSION_METHODS, GuestConfigSchema, MigrationConfigSchema, formatIssues } from '../../lib/contracts';
import { SourceMigration, parseFault, splitHostPort, type Fault } from '../../lib/engine';
import { Guest, parseBytesPerSecond, parseSize, parseWorkload } from '../../lib/guest';
import { EXIT_FAILED, EXIT_OK, UsageError, int, ms, oneOf, parsed } from './args';
import { makeOutput, reportProcess } from './output';
import { TLS_OPTIONS, tlsClientFrom, tlsUsage } from './tls-args';

export const MIGRATE_USAGE = `usage: multifd migrate --to HOST:PORT [options]

  --to HOST:PORT              destination (a 'multifd dest' listener)
  --channels N                multifd channels, 1..255 (default 4)
  --uuid UUID                 guest UUID (default: a random v4 UUID)
  --ram-size SIZE             guest RAM, e.g. 256MiB, 1GiB, 2G (default 256MiB)
  --fill random|zero|text|mixed  initial RAM contents (default random: incompressible; text
                              compresses; mixed: runs of 16 random and 16 text pages)
  --workload W                idle | random:RATE[:WS] | random:max | hotset:SIZE[:RATE] | sweep[:RATE]
                              (bare rate = MiB/s; default idle)
  --max-bandwidth RATE        cap, bytes/s or e.g. 512MiB/s (default uncapped)
  --downtime-limit MS         switch over when expected downtime is under this (default 300)
  --round-limit N             switch over after N rounds at most (default 30)
  --auto-converge             throttle the guest's vCPU when pre-copy does not converge, as hard as
                              the distance from convergence asks (lifted when the migration ends)
  --timeout-ms MS             channel-setup timeout (default 10000)
  --connect-timeout-ms MS     per connection, and again for its TLS handshake (default 10000)
  --no-progress-timeout-ms MS a channel that stops moving fails the migration (default 10000)
  --verify-timeout-ms MS      wait for the destination's verdict (default 60000)
  --compression none|zlib|zstd  compress page payloads, announced in the hello (default none)
  --compression-level N       zlib 1-9, zstd 1-19 (default 1)
${tlsUsage('source')}  --inject chK:KIND[:ARG]     inject a fault on channel K (repeatable): uuid, dup, id-N, id-big,
                              magic, version, truncate[:BYTES], stall, drop:BYTES, slow:RATE,
                              bad-header:normal_pages|offset|ramblock|short-payload; with TLS:
                              tls-clear (K connects in clear), tls-hostname (K checks another
                              host name), tls-anon (K presents no client certificate)
  --replace                   a copy of this guest left at the destination is gone (its host failed):
                              the destination replaces it instead of refusing (MIGRATION_GUEST_EXISTS)
  --events ndjson             one JSON event per line on stdout
`;

export async function migrateCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      to: { type: 'string' },
      channels: { type: 'string' },
      uuid: { type: 'string' },
      'ram-size': { type: 'string' },
      fill: { type: 'string' },
      workload: { type: 'string' },
      'max-bandwidth': { type: 'string' },
      'downtime-limit': { type: 'string' },
      'round-limit': { type: 'string' },
      'auto-converge': { type: 'boolean' },
      replace: { type: 'boolean' },
      'timeout-ms': { type: 'string' },
      'connect-timeout-ms': { type: 'string' },
      'no-progress-timeout-ms': { type: 'string' },
      'verify-timeout-ms': { type: 'string' },
      'tick-ms': { type: 'string' },
      inject: { type: 'string', multiple: true },
      ...TLS_OPTIONS,
      compression: { type: 'string' },
      'compression-level': { type: 'string' },
      events: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(MIGRATE_USAGE);
    return EXIT_OK;
  }
  if (!values.to) throw new UsageError('--to HOST:PORT is required');
  parsed('to', values.to, (s) => splitHostPort(s, '--to'));
  const workload = values.workload ?? 'idle';
  parsed('workload', workload, parseWorkload);
  const cfgIn = {
    destination: values.to,
    channels: int('channels', values.channels, 1, 255),
    maxBandwidth: parsed('max-bandwidth', values['max-bandwidth'], parseBytesPerSecond),
    downtimeLimitMs: ms('downtime-limit', values['downtime-limit']),
    roundLimit: int('round-limit', values['round-limit'], 1, 10_000),
    autoConverge: values['auto-converge'],
    setupTimeoutMs: ms('timeout-ms', values['timeout-ms']),
    connectTimeoutMs: ms('connect-timeout-ms', values['connect-timeout-ms']),
    noProgressTimeoutMs: ms('no-progress-timeout-ms', values['no-progress-timeout-ms']),
    verifyTimeoutMs: ms('verify-timeout-ms', values['verify-timeout-ms']),
    compression: oneOf('compression', values.compression, COMPRESSION_METHODS),
    compressionLevel: int('compression-level', values['compression-level'], 1, 19),
    tls: tlsClientFrom(values),
    replace: values.replace ?? false,
  };
  const cfg = MigrationConfigSchema.safeParse(cfgIn);
  if (!cfg.success) throw new UsageError(formatIssues(cfg.error));
  const guestCfg = GuestConfigSchema.safeParse({
    uuid: values.uuid,
    ramSize: parsed('ram-size', values['ram-size'], parseSize),
    fill: oneOf('fill', values.fill, ['random', 'zero', 'text', 'mixed'] as const),
    workload,
  });
  if (!guestCfg.success) throw new UsageError(formatIssues(guestCfg.error));
  const faults: Fault[] = (values.inject ?? []).map((s) => parsed('inject', s, (x) => parseFault(x, cfg.data.channels))!);
  const tlsFault = faults.find((f) => f.kind.startsWith('tls-'));
  if (tlsFault && !cfg.data.tls) throw new UsageError(`--inject ch${tlsFault.channel}:${tlsFault.kind} needs TLS (--tls-ca ... or --tls-psk)`);
  const mode = oneOf('events', values.events, ['ndjson'] as const) ?? 'human';
  const tickMs = int('tick-ms', values['tick-ms'], 10, 10_000);

  const out = makeOutput(mode);
  const g = guestCfg.data;
  const guest = await Guest.create({ uuid: g.uuid, ramSize: g.ramSize, fill: g.fill, workload: parseWorkload(g.workload) });
  await guest.start();
  const m = new SourceMigration(guest, { config: cfg.data, faults, tickMs });
  m.events.on((e) => out.event(e));
  const onSignal = () => void m.cancel('interrupted');
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    m.start();
    const r = await m.done;
    return r.state === 'completed' ? EXIT_OK : EXIT_FAILED;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await guest.stop();
    reportProcess(out);
    out.close();
  }
}
