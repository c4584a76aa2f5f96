/**
 * PacketScanner, what the relay watches each multifd channel with: the real QEMU 7.2
 * channels in any chunking give the capture README's counts; header faults are typed,
 * next_packet_size of a compressed packet included.
 */
import { strict as assert } from 'node:assert';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FLAG_ZLIB, encodeHandshake, encodePacketHeader, maxCompressedPayload } from './index';
import { PacketScanner } from './scanner';
import { throwsCode } from './test-support';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const VECTORS = path.resolve(repoRoot, '..', 'shared', 'vectors', 'qemu-7.2-multifd-4ch');
const present = existsSync(VECTORS);

const ctx = { channel: 0, blockSize: () => 64 * 1024 * 1024, compression: null };
const U = '7c9e6679-7425-40de-944b-e07fc1f90ae7';

function scan(bytes: Uint8Array, size: number, compression: number | null = null): PacketScanner {
  const s = new PacketScanner({}, { ...ctx, compression });
  for (let i = 0; i < bytes.length; i += size) s.write(bytes.subarray(i, i + size));
  return s;
}

describe('PacketScanner', () => {
  it('the QEMU 7.2 channels, in any chunking: the README\'s packets, SYNCs and pages, ending between packets', { skip: present ? false : `test vectors not found at ${VECTORS}` }, () => {
    const want: Record<string, [number, number, number, number]> = {
      'ch-1.bin': [2, 8, 3, 517],
      'ch-2.bin': [0, 8, 3, 640],
      'ch-3.bin': [1, 8, 3, 640],
      'ch-4.bin': [3, 7, 3, 512],
    };
    for (const [file, [id, packets, syncs, pages]] of Object.entries(want)) {
      const bytes = readFileSync(path.join(VECTORS, file));
      for (const size of [1, 7, 1344, 4096, bytes.length]) {
        const s = scan(bytes, size);
        assert.deepEqual([s.handshake?.id, s.packets, s.syncs, s.pages, s.bytes, s.atBoundary], [id, packets, syncs, pages, bytes.length, true], `${file} in ${size}-byte chunks`);
      }
    }
  });

  it('a compressed packet whose next_packet_size is above the bound: MIGRATION_PACKET_BAD_HEADER naming the field', () => {
    const max = maxCompressedPayload(128);
    const ok = Buffer.concat([encodeHandshake({ uuid: U, id: 0 }), encodePacketHeader({ flags: FLAG_ZLIB, normalPages: 1, packetNum: 0, ramblock: 'mem', offsets: [0], nextPacketSize: max }), Buffer.alloc(max)]);
    assert.equal(scan(ok, 4096).packets, 1);
    const bad = Buffer.concat([encodeHandshake({ uuid: U, id: 0 }), encodePacketHeader({ flags: FLAG_ZLIB, normalPages: 1, packetNum: 0, ramblock: 'mem', offsets: [0], nextPacketSize: max + 1 })]);
    throwsCode(() => scan(bad, 4096), 'MIGRATION_PACKET_BAD_HEADER', { field: 'next_packet_size', received: String(max + 1) });
  });

  it('pages_alloc 0 in the first packet: MIGRATION_PACKET_BAD_HEADER, and every later write throws the same', () => {
    const bad = Buffer.concat([encodeHandshake({ uuid: U, id: 0 }), encodePacketHeader({ normalPages: 0, packetNum: 0, ramblock: '', offsets: [], pagesAlloc: 0 })]);
    const s = new PacketScanner({}, { ...ctx });
    const err = throwsCode(() => s.write(bad), 'MIGRATION_PACKET_BAD_HEADER', { field: 'pages_alloc' });
    assert.throws(() => s.write(Buffer.alloc(1)), (e) => e === err);
  });
});
