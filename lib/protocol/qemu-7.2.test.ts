/**
 * The real QEMU 7.2 capture in ../shared/vectors/qemu-7.2-multifd-4ch (DESIGN 8): every
 * byte the source sent on each connection, and the guest RAM image it migrated.
 */
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { PAGE_SIZE } from './constants';
import { checkPreamble } from './frames';
import { bytesToUuid, checkHandshake, decodeHandshake, uuidToBytes } from './handshake';
import { classifyConnection } from './magic';
import type { PacketHeader } from './packet';
import { PacketReader } from './reader';
import { throwsCode } from './test-support';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const DIR = path.resolve(repoRoot, '..', 'shared', 'vectors', 'qemu-7.2-multifd-4ch');
const present = existsSync(DIR);

const UUID = '5e1ec7ed-0000-4000-8000-00000000c0de';
const RAM_SIZE = 64 * 1024 * 1024;
const RAM_SHA256 = '99e1c16697e51698fc2497ad52762d04b6a68e2d7f9244a3fa1c6168bbac6702';

type P = [packetNum: number, flags: number, normalPages: number, firstOffset: number | null];
/** From the capture's README, "Per-channel packets (decoded)", in file (accept) order. */
const CHANNELS: Array<{ file: string; id: number; pages: number; packets: P[] }> = [
  {
    file: 'ch-1.bin', id: 2, pages: 517,
    packets: [[2, 1, 0, null], [6, 0, 128, 0x723000], [10, 0, 128, 0x157b000], [14, 0, 128, 0x23c3000], [18, 0, 128, 0x31c3000], [25, 1, 5, 0x3fdb000], [25, 0, 0, null], [29, 1, 0, null]],
  },
  {
    file: 'ch-2.bin', id: 0, pages: 640,
    packets: [[0, 1, 0, null], [4, 0, 128, 0x3000], [8, 0, 128, 0xe6b000], [12, 0, 128, 0x1cb3000], [16, 0, 128, 0x2aab000], [20, 0, 128, 0x38e3000], [23, 1, 0, null], [27, 1, 0, null]],
  },
  {
    file: 'ch-3.bin', id: 1, pages: 640,
    packets: [[1, 1, 0, null], [5, 0, 128, 0x36b000], [9, 0, 128, 0x11f3000], [13, 0, 128, 0x203b000], [17, 0, 128, 0x2e3b000], [21, 0, 128, 0x3c63000], [24, 1, 0, null], [28, 1, 0, null]],
  },
  {
    file: 'ch-4.bin', id: 3, pages: 512,
    packets: [[3, 1, 0, null], [7, 0, 128, 0xad3000], [11, 0, 128, 0x1926000], [15, 0, 128, 0x2733000], [19, 0, 128, 0x3563000], [26, 1, 0, null], [30, 1, 0, null]],
  },
];

const read = (name: string): Buffer => readFileSync(path.join(DIR, name));

describe('QEMU 7.2 multifd capture (4 channels)', { skip: present ? false : `test vectors not found at ${DIR}` }, () => {
  it('every handshake decodes with the guest uuid and ids [2, 0, 1, 3] in accept order, and passes validation', () => {
    const taken = new Set<number>();
    const ids: number[] = [];
    for (const ch of CHANNELS) {
      const bytes = read(ch.file);
      assert.equal(classifyConnection(bytes), 'multifd');
      const h = decodeHandshake(bytes.subarray(0, 64));
      assert.equal(bytesToUuid(h.uuid), UUID);
      assert.deepEqual(bytes.subarray(25, 64), Buffer.alloc(39), 'reserved bytes are zero');
      const err = checkHandshake(h, { uuid: uuidToBytes(UUID), channels: 4, isTaken: (id) => taken.has(id) }, { peer: '127.0.0.1:43212' });
      assert.equal(err, null);
      taken.add(h.id);
      ids.push(h.id);
    }
    assert.deepEqual(ids, [2, 0, 1, 3]);
  });

  it('every packet decodes as the README lists, and the pages rebuild the guest RAM image exactly', () => {
    const image = gunzipSync(read('ram.img.gz'));
    assert.equal(createHash('sha256').update(image).digest('hex'), RAM_SHA256);
    assert.equal(image.length, RAM_SIZE);

    const dest = Buffer.alloc(RAM_SIZE);
    const carried = new Set<number>();
    let pagesTotal = 0;
    for (const ch of CHANNELS) {
      const seen: P[] = [];
      let runs: Array<[number, number]> = [];
      const reader = new PacketReader(
        {
          header(h: PacketHeader) {
            seen.push([Number(h.packetNum), h.flags, h.normalPages, h.normalPages > 0 ? h.offsets[0] : null]);
            assert.equal(h.zeroPages, 0, '7.2 has no zero_pages field: bytes 32..63 are zero');
            assert.ok(h.ramblock === 'mem' || h.normalPages === 0, 'pages come for block "mem"');
            runs = [];
          },
          region(h, offset, length) {
            runs.push([offset, length]);
            return dest.subarray(offset, offset + length); // the reader fills "guest RAM" in place
          },
          packet(h) {
            // Compare at once: a page sent twice must be right both times.
            for (const [offset, length] of runs) {
              assert.ok(dest.subarray(offset, offset + length).equals(image.subarray(offset, offset + length)), `${ch.file} packet ${h.packetNum} at ${offset.toString(16)}`);
            }
            for (let i = 0; i < h.normalPages; i++) carried.add(h.offsets[i]);
          },
        },
        { blockSize: (name) => (name === 'mem' ? RAM_SIZE : undefined), compression: 0, channel: ch.id },
      );
      reader.write(read(ch.file).subarray(64));
      reader.end();
      assert.deepEqual(seen, ch.packets, ch.file);
      assert.equal(reader.pages, ch.pages, ch.file);
      assert.equal(reader.packets, ch.packets.length, ch.file);
      pagesTotal += reader.pages;
    }
    assert.equal(pagesTotal, 2309, 'multifd pages, 5 of them sent twice');
    assert.equal(carried.size, 2304);

    const zero = Buffer.alloc(PAGE_SIZE);
    const nonZero = new Set<number>();
    for (let off = 0; off < RAM_SIZE; off += PAGE_SIZE) {
      if (image.compare(zero, 0, PAGE_SIZE, off, off + PAGE_SIZE) !== 0) nonZero.add(off);
    }
    assert.equal(nonZero.size, 2304);
    assert.deepEqual([...carried].sort((a, b) => a - b), [...nonZero].sort((a, b) => a - b), 'multifd carries exactly the non-zero pages');
    assert.ok(dest.equals(image), 'zero pages (sent on the main channel in 7.2) were already zero');
  });

  it('main.bin is QEMU\'s QEVM stream, which our main channel refuses by name', () => {
    const main = read('main.bin');
    assert.equal(main.subarray(0, 4).toString('latin1'), 'QEVM');
    assert.equal(classifyConnection(main), 'unknown');
    const err = throwsCode(() => checkPreamble(main.subarray(0, 8)), 'MIGRATION_MAIN_BAD_FRAME', { field: 'magic', received: '0x5145564d' });
    assert.match(err.message, /QEMU/);
  });
});
