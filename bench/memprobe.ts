/**
 * How much first-touch of fresh memory costs right now: allocates --bytes (default 256 MiB)
 * and writes one byte per 4 KiB page, timed. On this project's VM the figure moves between
 * ~0.5 and ~4.6 s per GiB from one minute to the next, and a destination (and the ceiling's
 * receiver) pays it for every byte it receives, so each benchmark run records it.
 *
 *   node --import tsx bench/memprobe.ts [--bytes N]   → {"type":"memprobe","bytes","ms","sPerGiB"}
 */
import { parseArgs } from 'node:util';
import { emit, positiveInt } from './ceiling-common';

const { values } = parseArgs({ options: { bytes: { type: 'string' } } });
const bytes = positiveInt('bytes', values.bytes, 256 * 1024 * 1024);
const t0 = process.hrtime.bigint();
const buf = new Uint8Array(bytes);
for (let o = 0; o < bytes; o += 4096) buf[o] = 1;
const ms = Number(process.hrtime.bigint() - t0) / 1e6;
emit({ type: 'memprobe', bytes, ms: Math.round(ms * 10) / 10, sPerGiB: Math.round((ms / 1000 / (bytes / 2 ** 30)) * 1000) / 1000 });
