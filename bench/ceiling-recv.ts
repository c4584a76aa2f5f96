/**
 * Ceiling, receiving half: allocates one fresh block of guest RAM of --bytes exactly as the
 * destination does (a RamBlock, populated by the same worker as the transfer goes, so both
 * pay the same first-touch page faults the same way), opens
 * --channels connections to the sender and has the kernel read each connection's slice
 * straight into its part of that buffer with net.Socket's `onread` (no copy, no 'data'
 * events). Node offers `onread` to sockets it connects, so here the receiver connects; the
 * bytes still flow sender → receiver.
 *
 *   node --import tsx bench/ceiling-recv.ts --connect HOST:PORT --bytes N --channels N [--timeout-ms MS] [--tls-ca FILE]
 *
 * stdout (ndjson): {"type":"result","startAt","firstByteAt","endAt","wallMs","bytes","channels"}
 * then {"type":"process",...}. Timed from before the allocation and the connects to the
 * last byte of the last slice.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { parseArgs } from 'node:util';
import { Populator, RamBlock } from '../lib/guest';
import { emit, emitProcess, hostPort, positiveInt, sliceOf } from './ceiling-common';

const { values } = parseArgs({
  options: {
    connect: { type: 'string' },
    bytes: { type: 'string' },
    channels: { type: 'string' },
    'timeout-ms': { type: 'string' },
    /** TLS: the CA that signed the sender's certificate (its host name checked as "localhost"). */
    'tls-ca': { type: 'string' },
  },
});
if (!values.connect) throw new Error('--connect HOST:PORT is required');
const total = positiveInt('bytes', values.bytes);
const channels = positiveInt('channels', values.channels);
const timeoutMs = positiveInt('timeout-ms', values['timeout-ms'], 600_000);
const { host, port } = hostPort(values.connect);
const ca = values['tls-ca'] ? readFileSync(values['tls-ca']) : null;

const startAt = Date.now();
const block = new RamBlock({ name: 'ceiling', size: Math.ceil(total / 4096) * 4096 }, 0);
const populator = new Populator([block]);
const buf = block.bytes;
/** Where bytes past a slice would go (none should come): kept apart to detect them. */
const scratch = new Uint8Array(64 * 1024);
let firstByteAt: number | null = null;
let received = 0;
let complete = 0;
let finished = false;
const sockets: net.Socket[] = [];

function finish(code: number, why?: string): void {
  if (finished) return;
  finished = true;
  clearTimeout(timer);
  if (why) process.stderr.write(`ceiling-recv: ${why}\n`);
  for (const s of sockets) s.destroy();
  populator.stop();
  emitProcess();
  process.exitCode = code;
}

for (let i = 0; i < channels; i++) {
  const { start, end } = sliceOf(i, channels, total);
  let off = start;
  const opts = {
    host,
    port,
    noDelay: true,
    onread: {
      buffer: () => (off < end ? buf.subarray(off, end) : scratch),
      callback: (n: number, region: Uint8Array) => {
        if (region === scratch) {
          finish(1, `channel ${i}: ${n} bytes past its slice`);
          return false;
        }
        firstByteAt ??= Date.now();
        off += n;
        received += n;
        if (off === end && ++complete === channels) {
          const endAt = Date.now();
          emit({ type: 'result', startAt, firstByteAt, endAt, wallMs: endAt - startAt, bytes: received, channels });
          finish(0);
        }
        return true;
      },
    },
  };
  // With TLS the decrypted bytes reach the same onread buffers (one copy out of the TLS engine).
  const socket = ca ? tls.connect({ ...opts, ca, servername: 'localhost', minVersion: 'TLSv1.3' }) : net.connect(opts);
  sockets.push(socket);
  socket.on(ca ? 'secureConnect' : 'connect', () => {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(i, 0);
    socket.write(head);
  });
  socket.on('error', (err) => finish(1, `channel ${i}: ${err.message}`));
  socket.on('end', () => {
    if (off < end) finish(1, `channel ${i}: closed after ${off - start} of ${end - start} bytes`);
  });
}
const timer = setTimeout(() => finish(1, `not done after ${timeoutMs} ms (${received} of ${total} bytes)`), timeoutMs);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => finish(1, `interrupted (${sig})`));
