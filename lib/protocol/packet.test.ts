import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { FLAG_SYNC, FLAG_ZLIB, FLAG_ZSTD, maxCompressedPayload } from './constants';
import { checkPacket, decodePacketHeader, encodePacketHeader, type PacketContext, type PacketHeader, type PacketToEncode } from './packet';
import { PACKET_FIXTURES, SLOTS, hex, throwsCode } from './test-support';

describe('packet header codec', () => {
  for (const f of PACKET_FIXTURES) {
    it(`decodes ${f.name}`, () => {
      assert.deepEqual(decodePacketHeader(hex(f.bytes), SLOTS), f.decoded);
    });
    if (f.encode) {
      const encode = f.encode;
      it(`encodes ${f.name}`, () => {
        assert.deepEqual(Buffer.from(encodePacketHeader(encode, SLOTS)), hex(f.bytes));
      });
    }
  }

  it('is 1344 bytes with the default 128 slots', () => {
    const h = encodePacketHeader({ normalPages: 0, packetNum: 0, ramblock: '', offsets: [] });
    assert.equal(h.length, 1344);
    assert.deepEqual(decodePacketHeader(h).pagesAlloc, 128);
  });

  it('encodes in place into a reused buffer, rewriting every byte', () => {
    const out = new Uint8Array(400).fill(0xaa);
    const written = encodePacketHeader(PACKET_FIXTURES[1].encode!, SLOTS, out);
    assert.equal(written.buffer, out.buffer);
    assert.deepEqual(Buffer.from(written), hex(PACKET_FIXTURES[1].bytes));
    const again = encodePacketHeader(PACKET_FIXTURES[0].encode!, SLOTS, out);
    assert.deepEqual(Buffer.from(again), hex(PACKET_FIXTURES[0].bytes));
    assert.equal(out[352], 0xaa, 'bytes past the header are not the encoder\'s');
    assert.throws(() => encodePacketHeader(PACKET_FIXTURES[0].encode!, SLOTS, new Uint8Array(351)), RangeError);
  });

  it('decodes into a reused object and offsets array', () => {
    const into = decodePacketHeader(hex(PACKET_FIXTURES[1].bytes), SLOTS);
    const offsets = into.offsets;
    const again = decodePacketHeader(hex(PACKET_FIXTURES[2].bytes), SLOTS, into);
    assert.equal(again, into);
    assert.equal(again.offsets, offsets);
    assert.deepEqual(again, PACKET_FIXTURES[2].decoded);
  });

  it('refuses to encode what the header cannot represent', () => {
    const base: PacketToEncode = { normalPages: 1, packetNum: 0, ramblock: 'mem', offsets: [0] };
    assert.throws(() => encodePacketHeader({ ...base, normalPages: 5, offsets: [0, 1, 2, 3, 4] }, SLOTS), RangeError);
    assert.throws(() => encodePacketHeader({ ...base, offsets: [] }, SLOTS), RangeError);
    assert.throws(() => encodePacketHeader({ ...base, offsets: [-4096] }, SLOTS), RangeError);
    assert.throws(() => encodePacketHeader({ ...base, offsets: [0.5] }, SLOTS), RangeError);
    assert.throws(() => encodePacketHeader({ ...base, ramblock: 'x'.repeat(256) }, SLOTS), RangeError);
    assert.throws(() => encodePacketHeader({ ...base, ramblock: 'a\0b' }, SLOTS), RangeError);
  });

  it('can encode semantic faults for injection (normal_pages above pages_alloc)', () => {
    const bytes = encodePacketHeader({ normalPages: 3, packetNum: 0, ramblock: 'mem', offsets: [0, 0x1000, 0x2000], pagesAlloc: 2 }, SLOTS);
    throwsCode(() => decodePacketHeader(bytes, SLOTS), 'MIGRATION_PACKET_BAD_HEADER', { field: 'normal_pages' });
  });
});

/** Fixture 1 with one field replaced: `hex` text patched by byte position. */
function patched(at: number, bytes: string): Buffer {
  const b = hex(PACKET_FIXTURES[1].bytes);
  hex(bytes).copy(b, at);
  return b;
}

describe('packet header structure errors', () => {
  const ctx = { channel: 2, peer: '10.0.0.2:40000', connection: 5 };
  const cases: Array<[string, Buffer, string, string, string]> = [
    ['magic', patched(0, '5145564d'), 'magic', '0x11223344', '0x5145564d'],
    ['version', patched(4, '00000002'), 'version', '1', '2'],
    ['pages_alloc above slots', patched(12, '00000005'), 'pages_alloc', '<= 4', '5'],
    ['normal_pages above pages_alloc', patched(12, '00000002 00000003'), 'normal_pages', '<= 2 (pages_alloc)', '3'],
    ['normal + zero above pages_alloc', patched(32, '00000003'), 'zero_pages', '<= 2 (pages_alloc - normal_pages)', '3'],
    ['ramblock without NUL', patched(64, '61*256'), 'ramblock', 'a NUL within 256 bytes', '256 bytes without a NUL'],
    ['offset at 2^53', patched(320 + 8, '0020000000000000'), 'offset', 'below 2^53', '0x20000000000000 (offset[1])'],
  ];
  for (const [name, bytes, field, expected, received] of cases) {
    it(`${name}: PacketBadHeaderError naming field ${field}`, () => {
      const err = throwsCode(() => decodePacketHeader(bytes, SLOTS, undefined, ctx), 'MIGRATION_PACKET_BAD_HEADER', {
        field,
        expected,
        received,
        channel: 2,
        peer: '10.0.0.2:40000',
        connection: 5,
      });
      assert.equal(err.message, `channel 2 from 10.0.0.2:40000: bad packet header: ${field} is ${received}, expected ${expected}`);
    });
  }

  it('a header shorter than 320 + 8 × slots is a short payload (field header)', () => {
    throwsCode(() => decodePacketHeader(hex(PACKET_FIXTURES[0].bytes).subarray(0, 351), SLOTS), 'MIGRATION_PACKET_SHORT_PAYLOAD', {
      field: 'header',
      expected: '352 bytes',
      received: '351 bytes',
    });
  });

  it('stale offsets past the used ones are never read, whatever they hold', () => {
    const b = patched(320 + 24, 'ffffffffffffffff'); // slot 3: unused (2 normal + 1 zero)
    assert.deepEqual(decodePacketHeader(b, SLOTS).offsets, [0x3000, 0x4000, 0x100000000]);
  });
});

describe('checkPacket (before touching memory)', () => {
  const BLOCK = 64 * 1024;
  const ctx = (over: Partial<PacketContext> = {}): PacketContext => ({
    blockSize: (name) => (name === 'mem' ? BLOCK : undefined),
    compression: 0,
    channel: 1,
    peer: '10.0.0.2:40000',
    ...over,
  });
  const header = (over: Partial<PacketHeader> = {}): PacketHeader => ({
    magic: 0x11223344, version: 1, flags: 0, pagesAlloc: 4, normalPages: 2, nextPacketSize: 8192,
    packetNum: 9n, zeroPages: 1, ramblock: 'mem', offsets: [0, 0x1000, BLOCK - 4096], ...over,
  });

  it('passes a good packet, offsets up to the last page of the block', () => {
    checkPacket(header(), ctx(), SLOTS);
  });

  it('compression bits must equal the negotiated method (field flags)', () => {
    throwsCode(() => checkPacket(header({ flags: FLAG_ZLIB }), ctx(), SLOTS), 'MIGRATION_PACKET_BAD_HEADER', {
      field: 'flags',
      expected: 'compression none',
      received: 'compression zlib (flags 0x00000002)',
      channel: 1,
    });
    throwsCode(() => checkPacket(header({ flags: FLAG_SYNC }), ctx({ compression: FLAG_ZSTD }), SLOTS), 'MIGRATION_PACKET_BAD_HEADER', {
      field: 'flags',
      expected: 'compression zstd',
    });
    checkPacket(header({ flags: FLAG_SYNC }), ctx(), SLOTS);
  });

  it('a packet with pages must name a known ramblock', () => {
    const err = throwsCode(() => checkPacket(header({ ramblock: 'pc.ram' }), ctx(), SLOTS), 'MIGRATION_PACKET_UNKNOWN_RAMBLOCK', {
      received: 'pc.ram',
      channel: 1,
    });
    assert.match(err.message, /^channel 1 from 10\.0\.0\.2:40000: received packet 9 for ramblock "pc\.ram" but this migration has no such block$/);
    // zero pages alone count as pages
    throwsCode(() => checkPacket(header({ ramblock: '', normalPages: 0, zeroPages: 1, offsets: [0] }), ctx(), SLOTS), 'MIGRATION_PACKET_UNKNOWN_RAMBLOCK');
  });

  it('a page-less SYNC packet may have an empty or unknown ramblock (QEMU)', () => {
    checkPacket(header({ flags: FLAG_SYNC, ramblock: '', normalPages: 0, zeroPages: 0, offsets: [] }), ctx(), SLOTS);
    checkPacket(header({ flags: 0, ramblock: 'gone', normalPages: 0, zeroPages: 0, offsets: [] }), ctx(), SLOTS);
  });

  it('an unaligned offset is out of range (names offset, block and size)', () => {
    const err = throwsCode(() => checkPacket(header({ offsets: [0, 0x1001, 0] }), ctx(), SLOTS), 'MIGRATION_PACKET_OFFSET_OUT_OF_RANGE', {
      field: 'offset',
      received: '0x1001',
      expected: 'page-aligned, 0x0..0xf000 (ramblock "mem" is 65536 bytes)',
    });
    assert.match(err.message, /offset 0x1001 in packet 9, which is not 4096-aligned: ramblock "mem" is 65536 bytes$/);
  });

  it('an offset whose page ends past the block is out of range, zero pages included', () => {
    throwsCode(() => checkPacket(header({ offsets: [0, BLOCK, 0] }), ctx(), SLOTS), 'MIGRATION_PACKET_OFFSET_OUT_OF_RANGE', {
      received: '0x10000',
    });
    const err = throwsCode(() => checkPacket(header({ offsets: [0, 0x1000, BLOCK + 4096] }), ctx(), SLOTS), 'MIGRATION_PACKET_OFFSET_OUT_OF_RANGE');
    assert.match(err.message, /which is outside the block: ramblock "mem" is 65536 bytes$/);
    // a block smaller than a page has no valid offset
    throwsCode(() => checkPacket(header({ offsets: [0, 0, 0] }), ctx({ blockSize: () => 100 }), SLOTS), 'MIGRATION_PACKET_OFFSET_OUT_OF_RANGE');
  });

  it('with compression, next_packet_size is bounded; without, it is ignored', () => {
    const max = maxCompressedPayload(SLOTS);
    checkPacket(header({ flags: FLAG_ZLIB, nextPacketSize: max }), ctx({ compression: FLAG_ZLIB }), SLOTS);
    throwsCode(() => checkPacket(header({ flags: FLAG_ZLIB, nextPacketSize: max + 1 }), ctx({ compression: FLAG_ZLIB }), SLOTS), 'MIGRATION_PACKET_BAD_HEADER', {
      field: 'next_packet_size',
      expected: `<= ${max}`,
      received: String(max + 1),
    });
    checkPacket(header({ nextPacketSize: 0xffffffff }), ctx(), SLOTS);
  });
});
