/**
 * Device state: what the built-in guest needs to carry on where it left off on the
 * destination (DESIGN 5) — its workload and the workload's position. Fixed 64 bytes,
 * big-endian like everything else on the wire:
 *
 *   off  size  field
 *     0     4  magic 'MFDG' (0x4d464447)
 *     4     1  version (1)
 *     5     1  workload kind: 0 idle, 1 random, 2 hotset, 3 sweep
 *     6     2  reserved, 0
 *     8     8  rate, dirtied bytes per second (u64; 0 = as fast as it can; 0 for idle)
 *    16     8  size (u64): hotset size, or random working set (0 = whole RAM); 0 otherwise
 *    24     8  guest RAM size in bytes (u64), checked against the receiving guest
 *    32    16  workload RNG: xorshift128 state, 4 × u32, never all zero
 *    48     8  sweep cursor (u64): next page index in guest address space, < RAM pages
 *    56     8  bytes dirtied so far (u64) = pages touched × 4096
 *    64        end
 *
 * Decoding validates every field and throws ConfigInvalidError naming the first bad one.
 */
import { ConfigInvalidError } from '../errors/index';
import { PAGE_SIZE } from '../protocol/constants';
import type { Workload, WorkloadKind } from './workload';
import { validateWorkload } from './workload';

export const DEVICE_STATE_MAGIC = 0x4d464447;
export const DEVICE_STATE_VERSION = 1;
export const DEVICE_STATE_SIZE = 64;

const OFF_MAGIC = 0;
const OFF_VERSION = 4;
const OFF_KIND = 5;
const OFF_RESERVED = 6;
const OFF_RATE = 8;
const OFF_SIZE = 16;
const OFF_RAM_SIZE = 24;
const OFF_RNG = 32;
const OFF_CURSOR = 48;
const OFF_BYTES_DIRTIED = 56;

/** Kind codes on the wire; index = code. */
export const WORKLOAD_KIND_CODES: readonly WorkloadKind[] = ['idle', 'random', 'hotset', 'sweep'];

export type RngState = [number, number, number, number];

export interface DeviceState {
  workload: Workload;
  ramSize: number;
  rng: RngState;
  cursor: number;
  bytesDirtied: number;
}

export function encodeDeviceState(s: DeviceState): Uint8Array {
  const out = new Uint8Array(DEVICE_STATE_SIZE);
  const v = new DataView(out.buffer);
  const w = s.workload;
  v.setUint32(OFF_MAGIC, DEVICE_STATE_MAGIC);
  v.setUint8(OFF_VERSION, DEVICE_STATE_VERSION);
  v.setUint8(OFF_KIND, WORKLOAD_KIND_CODES.indexOf(w.kind));
  const rate = w.kind === 'idle' ? 0 : w.rate;
  const size = w.kind === 'hotset' ? w.size : w.kind === 'random' ? (w.workingSet ?? 0) : 0;
  v.setBigUint64(OFF_RATE, BigInt(rate));
  v.setBigUint64(OFF_SIZE, BigInt(size));
  v.setBigUint64(OFF_RAM_SIZE, BigInt(s.ramSize));
  for (let i = 0; i < 4; i++) v.setUint32(OFF_RNG + 4 * i, s.rng[i] >>> 0);
  v.setBigUint64(OFF_CURSOR, BigInt(s.cursor));
  v.setBigUint64(OFF_BYTES_DIRTIED, BigInt(s.bytesDirtied));
  return out;
}

export function decodeDeviceState(bytes: Uint8Array): DeviceState {
  if (!(bytes instanceof Uint8Array)) throw bad('device state', 'bytes', typeof bytes);
  if (bytes.byteLength !== DEVICE_STATE_SIZE) {
    throw bad('device state length', `${DEVICE_STATE_SIZE} bytes`, `${bytes.byteLength} bytes`);
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = v.getUint32(OFF_MAGIC);
  if (magic !== DEVICE_STATE_MAGIC) throw bad('device state magic', hex32(DEVICE_STATE_MAGIC), hex32(magic));
  const version = v.getUint8(OFF_VERSION);
  if (version !== DEVICE_STATE_VERSION) throw bad('device state version', String(DEVICE_STATE_VERSION), String(version));
  const code = v.getUint8(OFF_KIND);
  const kind = WORKLOAD_KIND_CODES[code];
  if (kind === undefined) throw bad('device state workload kind', '0..3', String(code));
  const reserved = v.getUint16(OFF_RESERVED);
  if (reserved !== 0) throw bad('device state reserved bytes', '0', String(reserved));

  const rate = u64(v, OFF_RATE, 'rate');
  const size = u64(v, OFF_SIZE, 'size');
  const ramSize = u64(v, OFF_RAM_SIZE, 'RAM size');
  if (ramSize === 0 || ramSize % PAGE_SIZE !== 0) {
    throw bad('device state RAM size', `a positive multiple of ${PAGE_SIZE}`, String(ramSize));
  }
  let workload: Workload;
  switch (kind) {
    case 'idle':
      if (rate !== 0 || size !== 0) throw bad('device state idle workload', 'rate 0 and size 0', `rate ${rate} size ${size}`);
      workload = { kind: 'idle' };
      break;
    case 'random':
      workload = size === 0 ? { kind: 'random', rate } : { kind: 'random', rate, workingSet: size };
      break;
    case 'hotset':
      if (size === 0) throw bad('device state hotset size', 'more than 0', '0');
      workload = { kind: 'hotset', size, rate };
      break;
    case 'sweep':
      if (size !== 0) throw bad('device state sweep size', '0', String(size));
      workload = { kind: 'sweep', rate };
      break;
  }
  workload = validateWorkload(workload, ramSize);

  const rng: RngState = [0, 1, 2, 3].map((i) => v.getUint32(OFF_RNG + 4 * i)) as RngState;
  if ((rng[0] | rng[1] | rng[2] | rng[3]) === 0) throw bad('device state RNG', 'a non-zero state', 'all zero');
  const cursor = u64(v, OFF_CURSOR, 'sweep cursor');
  const pages = ramSize / PAGE_SIZE;
  if (cursor >= pages) throw bad('device state sweep cursor', `below ${pages}`, String(cursor));
  const bytesDirtied = u64(v, OFF_BYTES_DIRTIED, 'bytes dirtied');
  return { workload, ramSize, rng, cursor, bytesDirtied };
}

function u64(v: DataView, off: number, what: string): number {
  const n = v.getBigUint64(off);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`device state ${what}`, 'at most 2^53-1', n.toString());
  return Number(n);
}

function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

function bad(what: string, expected: string, received: string): ConfigInvalidError {
  return new ConfigInvalidError(`${what}: expected ${expected}, received ${received}`, { expected, received });
}
