/**
 * Test-only helpers for the protocol tests. Expected bytes are written as hex here, never
 * produced by the encoders under test.
 */
import { strict as assert } from 'node:assert';
import { MigrationError } from '../errors';
import { FLAG_SYNC, FLAG_ZLIB } from './constants';
import type { PacketHeader, PacketToEncode } from './packet';

/**
 * Bytes from hex text. Whitespace separates tokens, `#` starts a comment to the end of the
 * line, and `XX*N` is the byte XX repeated N times (N decimal): `11223344 00*39`.
 */
export function hex(text: string): Buffer {
  const parts: Buffer[] = [];
  for (const line of text.split('\n')) {
    for (const token of line.replace(/#.*/, '').split(/\s+/)) {
      if (token === '') continue;
      const repeat = /^([0-9a-fA-F]{2})\*(\d+)$/.exec(token);
      if (repeat) {
        parts.push(Buffer.alloc(Number(repeat[2]), parseInt(repeat[1], 16)));
        continue;
      }
      if (!/^([0-9a-fA-F]{2})+$/.test(token)) throw new Error(`bad hex token ${JSON.stringify(token)}`);
      parts.push(Buffer.from(token, 'hex'));
    }
  }
  return Buffer.concat(parts);
}

/**
 * Every way the tests cut a stream: in two at every byte position (0..length), and one
 * byte at a time. Each item is [label, chunks].
 */
export function* splits(bytes: Uint8Array): Generator<[string, Uint8Array[]]> {
  for (let i = 0; i <= bytes.length; i++) yield [`split at ${i}`, [bytes.subarray(0, i), bytes.subarray(i)]];
  const single: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i++) single.push(bytes.subarray(i, i + 1));
  yield ['one byte at a time', single];
}

/** A page whose bytes depend on `seed`, so misplaced pages show. */
export function pageBytes(seed: number, size = 4096): Uint8Array {
  const page = new Uint8Array(size);
  for (let i = 0; i < size; i++) page[i] = (seed * 31 + i * 7 + (i >> 8)) & 0xff;
  return page;
}

/** Asserts `fn` throws a MigrationError with this code (and the given fields); returns it. */
export function throwsCode(fn: () => unknown, code: string, fields: Partial<Record<keyof MigrationError, unknown>> = {}): MigrationError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof MigrationError, `expected a MigrationError ${code}, got ${caught === undefined ? 'no error' : String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  for (const [k, v] of Object.entries(fields)) assert.deepEqual(caught[k as keyof MigrationError], v, `${k} of: ${caught.message}`);
  return caught;
}

// --- packet header fixtures, shared by the codec and reader tests ---------------------

/** Small headers keep the hex readable: 320 + 8 × 4 = 352 bytes. */
export const SLOTS = 4;

export interface PacketFixture {
  name: string;
  bytes: string;
  decoded: PacketHeader;
  /** null: decode-only (QEMU 7.2 stale fields, which we never send). */
  encode: PacketToEncode | null;
}

export const PACKET_FIXTURES: PacketFixture[] = [
  {
    name: 'SYNC without pages, empty ramblock (how every QEMU channel starts)',
    bytes: `11223344 00000001 00000001 00000004   # magic, version, flags SYNC, pages_alloc
            00000000 00000000                     # normal_pages, next_packet_size
            0000000000000007                      # packet_num
            00000000 00*28                        # zero_pages, reserved
            00*256                                # ramblock ""
            00*32                                 # offset[4]`,
    decoded: {
      magic: 0x11223344, version: 1, flags: 1, pagesAlloc: 4, normalPages: 0, nextPacketSize: 0,
      packetNum: 7n, zeroPages: 0, ramblock: '', offsets: [],
    },
    encode: { flags: FLAG_SYNC, normalPages: 0, packetNum: 7, ramblock: '', offsets: [] },
  },
  {
    name: '2 contiguous normal pages + 1 zero page above 4 GiB, 64-bit packet_num',
    bytes: `11223344 00000001 00000000 00000004
            00000002 00002000
            0102030405060708
            00000001 00*28
            70632e72616d 00*250                   # "pc.ram"
            0000000000003000 0000000000004000 0000000100000000 0000000000000000`,
    decoded: {
      magic: 0x11223344, version: 1, flags: 0, pagesAlloc: 4, normalPages: 2, nextPacketSize: 0x2000,
      packetNum: 0x0102030405060708n, zeroPages: 1, ramblock: 'pc.ram', offsets: [0x3000, 0x4000, 0x100000000],
    },
    encode: { normalPages: 2, zeroPages: 1, packetNum: 0x0102030405060708n, ramblock: 'pc.ram', offsets: [0x3000, 0x4000, 0x100000000] },
  },
  {
    name: 'SYNC carrying 3 non-contiguous pages and a zero page at 2^53 - 4096, max packet_num',
    bytes: `11223344 00000001 00000001 00000004
            00000003 00003000
            ffffffffffffffff
            00000001 00*28
            6d656d 00*253                         # "mem"
            0000000000002000 0000000000000000 0000000000001000 001ffffffffff000`,
    decoded: {
      magic: 0x11223344, version: 1, flags: 1, pagesAlloc: 4, normalPages: 3, nextPacketSize: 0x3000,
      packetNum: 0xffffffffffffffffn, zeroPages: 1, ramblock: 'mem', offsets: [0x2000, 0, 0x1000, 2 ** 53 - 4096],
    },
    encode: { flags: FLAG_SYNC, normalPages: 3, zeroPages: 1, packetNum: 0xffffffffffffffffn, ramblock: 'mem', offsets: [0x2000, 0, 0x1000, 2 ** 53 - 4096] },
  },
  {
    name: 'QEMU 7.2: no pages, stale next_packet_size and stale offset[] ignored',
    bytes: `11223344 00000001 00000000 00000004
            00000000 00080000                     # next_packet_size 524288, stale
            0000000000000019
            00000000 00*28                        # 7.2: all of 32..63 unused zeros
            6d656d 00*253
            0000000003fdb000 0000000003fdc000 0000000003fdd000 0000000003fde000`,
    decoded: {
      magic: 0x11223344, version: 1, flags: 0, pagesAlloc: 4, normalPages: 0, nextPacketSize: 0x80000,
      packetNum: 25n, zeroPages: 0, ramblock: 'mem', offsets: [],
    },
    encode: null,
  },
  {
    name: 'the same as we send it: unused slots zero',
    bytes: `11223344 00000001 00000000 00000004
            00000000 00080000
            0000000000000019
            00000000 00*28
            6d656d 00*253
            00*32`,
    decoded: {
      magic: 0x11223344, version: 1, flags: 0, pagesAlloc: 4, normalPages: 0, nextPacketSize: 0x80000,
      packetNum: 25n, zeroPages: 0, ramblock: 'mem', offsets: [],
    },
    encode: { normalPages: 0, packetNum: 25n, ramblock: 'mem', offsets: [0x3fdb000], nextPacketSize: 0x80000 },
  },
  {
    name: 'a 255-byte ramblock name, pages_alloc below slots, zlib flag',
    bytes: `11223344 00000001 00000002 00000002
            00000001 00000123
            0000000000000000
            00000001 00*28
            78*255 00
            0000000000000000 0000000000001000 00*16`,
    decoded: {
      magic: 0x11223344, version: 1, flags: FLAG_ZLIB, pagesAlloc: 2, normalPages: 1, nextPacketSize: 0x123,
      packetNum: 0n, zeroPages: 1, ramblock: 'x'.repeat(255), offsets: [0, 0x1000],
    },
    encode: { flags: FLAG_ZLIB, normalPages: 1, zeroPages: 1, packetNum: 0, ramblock: 'x'.repeat(255), offsets: [0, 0x1000], nextPacketSize: 0x123, pagesAlloc: 2 },
  },
];

