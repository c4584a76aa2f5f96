/**
 * `multifd relay --listen HOST:PORT --to HOST:PORT`: a transparent relay between two QEMUs
 * (lib/qemu/relay.ts) that shows each migration per channel, records it, and can inject
 * handshake faults into it. Serves migrations one after another until interrupted; with
 * --once it exits after the first: 0 when it completed, 1 when it failed.
 */
import { parseArgs } from 'node:util';
import { joinHostPort, splitHostPort } from '../../lib/engine';
import { parseFault } from '../../lib/engine/faults';
import { formatBytes } from '../../lib/guest/units';
import { uuidToBytes } from '../../lib/protocol';
import { QemuRelay } from '../../lib/qemu/relay';
import { EXIT_FAILED, EXIT_OK, UsageError, int, ms, oneOf, parsed } from './args';
import { makeOutput, reportProcess } from './output';
import { serving } from './serve';

export const RELAY_USAGE = `usage: multifd relay --listen HOST:PORT --to HOST:PORT [options]

Point the source QEMU's migrate at --listen; the relay forwards every connection to the
destination QEMU at --to, unchanged, and shows the migration per channel.

  --listen HOST:PORT           where the source QEMU connects (port 0: any)
  --to HOST:PORT               the destination QEMU's migration address (its migrate-incoming)
  --record DIR                 write each connection's bytes to DIR/<n>/main.bin, ch-<id>.bin
                               (n counts migrations; read them with 'multifd inspect')
  --inject chK:KIND[:ARG]      change what multifd channel K sends (repeatable; lab use):
                               uuid, dup, id-N, id-big, magic, version, truncate[:BYTES],
                               stall, drop:BYTES
  --uuid UUID                  the guest's UUID (default: the first channel's, as sent)
  --channels N                 the channel count, to check ids against (default: not checked)
  --handshake-timeout-ms MS    first bytes of each connection (default 10000)
  --main-wait-ms MS            multifd channels wait this long for the main channel (default 10000)
  --connect-timeout-ms MS      connecting to the destination (default 10000)
  --tick-ms MS                 progress snapshots (default 500)
  --once                       exit after the first migration: 0 completed, 1 failed
  --events ndjson              one JSON event per line on stdout (first line: {"type":"listening"})
`;

export async function relayCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      listen: { type: 'string' },
      to: { type: 'string' },
      record: { type: 'string' },
      inject: { type: 'string', multiple: true },
      uuid: { type: 'string' },
      channels: { type: 'string' },
      'handshake-timeout-ms': { type: 'string' },
      'main-wait-ms': { type: 'string' },
      'connect-timeout-ms': { type: 'string' },
      'tick-ms': { type: 'string' },
      once: { type: 'boolean' },
      events: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(RELAY_USAGE);
    return EXIT_OK;
  }
  if (!values.listen) throw new UsageError('--listen HOST:PORT is required');
  if (!values.to) throw new UsageError('--to HOST:PORT is required');
  const listen = parsed('listen', values.listen, (s) => splitHostPort(s, '--listen'))!;
  const to = parsed('to', values.to, (s) => splitHostPort(s, '--to'))!;
  if (values.uuid !== undefined) parsed('uuid', values.uuid, uuidToBytes);
  const channels = int('channels', values.channels, 1, 255) ?? null;
  const faults = (values.inject ?? []).map((spec) => parsed('inject', spec, (s) => parseFault(s, channels ?? 255))!);
  const mode = oneOf('events', values.events, ['ndjson'] as const) ?? 'human';
  const out = makeOutput(mode);
  const relay = new QemuRelay({
    listenHost: listen.host,
    listenPort: listen.port,
    toHost: to.host,
    toPort: to.port,
    record: values.record ?? null,
    faults,
    uuid: values.uuid ?? null,
    channels,
    handshakeTimeoutMs: ms('handshake-timeout-ms', values['handshake-timeout-ms']),
    mainWaitMs: ms('main-wait-ms', values['main-wait-ms']),
    connectTimeoutMs: ms('connect-timeout-ms', values['connect-timeout-ms']),
    tickMs: int('tick-ms', values['tick-ms'], 10, 10_000),
  });
  relay.onEvent((e) => out.event(e));
  const served = serving();
  relay.onSession((s) => {
    const snap = s.snapshot;
    const perChannel = snap.channels.map((c) => `ch${c.id} ${formatBytes(c.bytes)}`).join(', ');
    out.info(
      { type: 'relay-session', id: s.id, state: s.state, files: s.files, recordDir: s.recordDir, snapshot: snap },
      `migration ${s.id.slice(0, 8)} ${s.state}: ${formatBytes(snap.transferred)} relayed in ${snap.totalTimeMs} ms (${perChannel})` +
        (s.recordDir ? `; recorded in ${s.recordDir}` : ''),
    );
    if (values.once) served.finish(s.state === 'completed' ? EXIT_OK : EXIT_FAILED);
  });
  const addr = await relay.listen();
  out.info(
    { type: 'listening', address: joinHostPort(addr.host, addr.port), to: joinHostPort(to.host, to.port) },
    `multifd relay: listening on ${joinHostPort(addr.host, addr.port)}, forwarding to ${joinHostPort(to.host, to.port)}`,
  );
  return served.wait(async () => {
    await relay.close();
    reportProcess(out);
    out.close();
  });
}
