/**
 * Ceiling, sending half: pre-fills one buffer of --bytes with random bytes (before anything
 * is timed, as the source guest's RAM is filled before its migration starts), listens, and
 * on each connection reads the 4-byte slice index the receiver asks for and writes that
 * slice in one call, leaving the chunking to libuv and the kernel.
 *
 *   node --import tsx bench/ceiling-send.ts --listen 127.0.0.1:0 --bytes N --channels N [--timeout-ms MS] [--tls-cert F --tls-key F]
 *
 * stdout (ndjson): {"type":"listening","address"}, then {"type":"process",...}; exit 0 once
 * every channel was served and closed, 1 on error or timeout.
 */
import { randomFillSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { parseArgs } from 'node:util';
import { emit, emitProcess, hostPort, positiveInt, sliceOf } from './ceiling-common';

const { values } = parseArgs({
  options: {
    listen: { type: 'string', default: '127.0.0.1:0' },
    bytes: { type: 'string' },
    channels: { type: 'string' },
    'timeout-ms': { type: 'string' },
    /** TLS 1.3 with this certificate and key (the receiver gives --tls-ca). */
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
  },
});
const total = positiveInt('bytes', values.bytes);
const channels = positiveInt('channels', values.channels);
const timeoutMs = positiveInt('timeout-ms', values['timeout-ms'], 600_000);
const { host, port } = hostPort(values.listen!);

const data = new Uint8Array(total);
const CHUNK = 1 << 20;
for (let o = 0; o < total; o += CHUNK) randomFillSync(data, o, Math.min(CHUNK, total - o));

let served = 0;
let closed = 0;
const sockets = new Set<net.Socket>();
let finished = false;

function finish(code: number, why?: string): void {
  if (finished) return;
  finished = true;
  clearTimeout(timer);
  if (why) process.stderr.write(`ceiling-send: ${why}\n`);
  for (const s of sockets) s.destroy();
  server.close();
  emitProcess();
  process.exitCode = code;
}

const onSocket = (socket: net.Socket) => {
  sockets.add(socket);
  let head = Buffer.alloc(0);
  let sent = false;
  socket.on('error', (err) => {
    if (!sent || !finished) process.stderr.write(`ceiling-send: socket error: ${err.message}\n`);
  });
  socket.on('data', (d: Buffer) => {
    if (sent) return;
    head = Buffer.concat([head, d]);
    if (head.length < 4) return;
    const index = head.readUInt32BE(0);
    if (index >= channels) {
      finish(1, `receiver asked for slice ${index} of ${channels}`);
      return;
    }
    sent = true;
    served++;
    const { start, end } = sliceOf(index, channels, total);
    socket.end(data.subarray(start, end));
  });
  socket.on('close', () => {
    sockets.delete(socket);
    if (sent && ++closed === channels) finish(0);
  });
};
const secure = values['tls-cert'] && values['tls-key'];
const server = secure
  ? tls.createServer({ cert: readFileSync(values['tls-cert']!), key: readFileSync(values['tls-key']!), minVersion: 'TLSv1.3', noDelay: true }, onSocket)
  : net.createServer({ noDelay: true }, onSocket);
server.on('error', (err) => finish(1, `listen: ${err.message}`));
server.listen(port, host, () => {
  const a = server.address() as net.AddressInfo;
  emit({ type: 'listening', address: `${a.address}:${a.port}`, bytes: total, channels });
});
const timer = setTimeout(() => finish(1, `not done after ${timeoutMs} ms (served ${served}, closed ${closed} of ${channels})`), timeoutMs);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => finish(1, `interrupted (${sig})`));
