/**
 * `multifd dest`: serves incoming migrations one after another (several at once when they
 * are of different guests) until interrupted. A failed one is reported and the next is
 * served. With --once it exits after the first: 0 when verified, 1 otherwise.
 */
import { parseArgs } from 'node:util';
import { Destination, splitHostPort, joinHostPort } from '../../lib/engine';
import type { Guest } from '../../lib/guest';
import { formatBytes } from '../../lib/guest';
import { LIMIT_OPTIONS, limitUsage, limitsFrom } from './limit-args';
import { EXIT_FAILED, EXIT_OK, UsageError, compressionList, int, ms, oneOf, parsed } from './args';
import { makeOutput, reportProcess } from './output';
import { serving } from './serve';
import { TLS_OPTIONS, tlsServerFrom, tlsUsage } from './tls-args';
import { uuidToBytes } from '../../lib/protocol';

export const DEST_USAGE = `usage: multifd dest --listen HOST:PORT [options]

  --listen HOST:PORT          where to accept the main and multifd channels (port 0: any)
  --channels N                expected channel count; a source opening another count is refused
  --uuid UUID                 expected guest UUID; channels are checked as soon as they arrive
  --timeout-ms MS             handshake and channel-setup timeout (default 10000)
  --handshake-timeout-ms MS   first bytes of each connection (default: --timeout-ms)
  --no-progress-timeout-ms MS a channel holding up a sync round fails the migration, and so does a
                              source silent on every connection (default 10000)
  --compression-allow LIST    compression methods a source may use, comma-separated
                              (default none,zlib,zstd); another is refused by name
${limitUsage()}  --keep-guests               keep each arrived guest running here until exit (default: stop it
                              once verified, its RAM released)
${tlsUsage('destination')}  --once                      exit after the first migration: 0 when verified, 1 otherwise
  --events ndjson             one JSON event per line on stdout (first line: {"type":"listening"})
`;

export async function destCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      listen: { type: 'string' },
      channels: { type: 'string' },
      uuid: { type: 'string' },
      'timeout-ms': { type: 'string' },
      'handshake-timeout-ms': { type: 'string' },
      'no-progress-timeout-ms': { type: 'string' },
      'tick-ms': { type: 'string' },
      once: { type: 'boolean' },
      ...LIMIT_OPTIONS,
      'keep-guests': { type: 'boolean' },
      'compression-allow': { type: 'string' },
      ...TLS_OPTIONS,
      events: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(DEST_USAGE);
    return EXIT_OK;
  }
  if (!values.listen) throw new UsageError('--listen HOST:PORT is required');
  const { host, port } = parsed('listen', values.listen, (s) => splitHostPort(s, '--listen'))!;
  if (values.uuid !== undefined) parsed('uuid', values.uuid, uuidToBytes);
  const timeout = ms('timeout-ms', values['timeout-ms']) ?? 10_000;
  const mode = oneOf('events', values.events, ['ndjson'] as const) ?? 'human';
  const out = makeOutput(mode);
  const dest = new Destination({
    host,
    port,
    channels: int('channels', values.channels, 1, 255) ?? null,
    uuid: values.uuid ?? null,
    setupTimeoutMs: timeout,
    handshakeTimeoutMs: ms('handshake-timeout-ms', values['handshake-timeout-ms']) ?? timeout,
    noProgressTimeoutMs: ms('no-progress-timeout-ms', values['no-progress-timeout-ms']),
    tickMs: int('tick-ms', values['tick-ms'], 10, 10_000),
    compressionAllow: compressionList('compression-allow', values['compression-allow']),
    tls: tlsServerFrom(values),
    ...limitsFrom(values),
  });
  dest.onEvent((e) => out.event(e));
  const arrived: Guest[] = [];
  const served = serving();
  dest.onMigration((m) => {
    void m.done.then(async (r) => {
      if (r.guest && values['keep-guests']) {
        arrived.push(r.guest);
        out.info(
          { type: 'guest-running', uuid: r.guest.uuid, ramSize: r.guest.ramSize },
          `guest ${r.guest.uuid} (${formatBytes(r.guest.ramSize)}) is running here`,
        );
      } else if (r.guest) {
        // Verified: the migration is proven; the copy is let go, its RAM with it.
        const g = r.guest;
        await g.stop().catch(() => {});
        out.info({ type: 'guest-released', uuid: g.uuid, ramSize: g.ramSize }, `guest ${g.uuid} (${formatBytes(g.ramSize)}) verified and released (--keep-guests keeps it)`);
      }
      if (values.once) served.finish(r.state === 'completed' ? EXIT_OK : EXIT_FAILED);
    });
  });
  const addr = await dest.listen();
  out.info({ type: 'listening', address: joinHostPort(addr.host, addr.port) }, `multifd dest: listening on ${joinHostPort(addr.host, addr.port)}`);
  return served.wait(async () => {
    await dest.close();
    // The guests that arrived run in this process: they end with it.
    await Promise.all(arrived.map((g) => g.stop()));
    reportProcess(out);
    out.close();
  });
}
