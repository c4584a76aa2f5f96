import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { FLAG_SYNC, FLAG_ZLIB, PAGE_SIZE } from './constants';
import { encodePacketHeader, type PacketContext, type PacketHeader } from './packet';
import { PacketReader, type PacketSink, type PayloadDecoder } from './reader';
import { PACKET_FIXTURES, SLOTS, hex, pageBytes, splits, throwsCode } from './test-support';

const BIG = 2 ** 53;
const ctxFor = (over: Partial<PacketContext> = {}): PacketContext => ({
  blockSize: (name) => (name === 'mem' || name === 'pc.ram' ? BIG : undefined),
  compression: 0,
  channel: 3,
  peer: '10.0.0.9:5555',
  ...over,
});

interface Received {
  header: PacketHeader;
  /** [offset, bytes] per region, in call order. */
  regions: Array<[number, Uint8Array]>;
}

/** Records everything; regions are fresh buffers the reader (or "kernel") fills. */
class Recorder implements PacketSink {
  readonly events: string[] = [];
  readonly packets: Received[] = [];
  current: Received | null = null;
  header(h: PacketHeader): void {
    this.events.push(`header ${h.packetNum}`);
    this.current = { header: structuredClone(h), regions: [] };
  }
  region(h: PacketHeader, offset: number, length: number): Uint8Array {
    this.events.push(`region ${offset.toString(16)}+${length / PAGE_SIZE}`);
    const r = new Uint8Array(length);
    this.current!.regions.push([offset, r]);
    return r;
  }
  packet(h: PacketHeader): void {
    this.events.push(`packet ${h.packetNum}`);
    assert.deepEqual(h, this.current!.header, 'the header is unchanged until packet()');
    this.packets.push(this.current!);
    this.current = null;
  }
}

/** Region list -> one [offset, page bytes] per page. */
function pagesOf(regions: Array<[number, Uint8Array]>): Array<[number, Uint8Array]> {
  const out: Array<[number, Uint8Array]> = [];
  for (const [offset, bytes] of regions) {
    for (let at = 0; at < bytes.length; at += PAGE_SIZE) out.push([offset + at, bytes.subarray(at, at + PAGE_SIZE)]);
  }
  return out;
}

/** Uncompressed fixtures as full units: header bytes then one distinct page per normal page. */
const UNITS = PACKET_FIXTURES.filter((f) => (f.decoded.flags & FLAG_ZLIB) === 0).map((f, n) => {
  const pages = f.decoded.offsets.slice(0, f.decoded.normalPages).map((off, i): [number, Uint8Array] => [off, pageBytes(n * 16 + i)]);
  return { name: f.name, decoded: f.decoded, pages, bytes: Buffer.concat([hex(f.bytes), ...pages.map(([, p]) => p)]) };
});

function readAll(chunks: Uint8Array[], ctx = ctxFor()): Recorder {
  const sink = new Recorder();
  const reader = new PacketReader(sink, ctx, SLOTS);
  for (const c of chunks) reader.write(c);
  reader.end();
  return sink;
}

describe('PacketReader: fixtures through every chunking', () => {
  for (const u of UNITS) {
    it(`${u.name}: split at every byte and one byte at a time`, () => {
      for (const [label, chunks] of splits(u.bytes)) {
        const sink = readAll(chunks);
        assert.equal(sink.packets.length, 1, label);
        assert.deepEqual(sink.packets[0].header, u.decoded, label);
        assert.deepEqual(pagesOf(sink.packets[0].regions), u.pages, label);
      }
    });
  }

  it('all fixtures back to back, one byte at a time', () => {
    const stream = Buffer.concat(UNITS.map((u) => u.bytes));
    const sink = readAll([...stream].map((b) => Uint8Array.of(b)));
    assert.deepEqual(sink.packets.map((p) => p.header), UNITS.map((u) => u.decoded));
    assert.deepEqual(sink.packets.map((p) => pagesOf(p.regions)), UNITS.map((u) => u.pages));
  });
});

describe('PacketReader', () => {
  it('frames uncompressed payloads by normal_pages, not a stale next_packet_size (QEMU 7.2)', () => {
    const stale = UNITS.find((u) => u.decoded.nextPacketSize === 0x80000 && u.decoded.normalPages === 0)!;
    const withPages = UNITS.find((u) => u.decoded.ramblock === 'pc.ram')!;
    const sink = readAll([Buffer.concat([stale.bytes, withPages.bytes])]);
    assert.deepEqual(sink.packets.map((p) => p.header.packetNum), [25n, 0x0102030405060708n]);
    assert.deepEqual(pagesOf(sink.packets[1].regions), withPages.pages);
  });

  it('write() stops right after a packet the sink holds (SYNC barrier) and leaves the rest', () => {
    const sync = UNITS[0];
    const next = UNITS[1];
    const sink = new Recorder();
    sink.packet = function (this: Recorder, h: PacketHeader) {
      Recorder.prototype.packet.call(this, h);
      return (h.flags & FLAG_SYNC) === 0;
    };
    const reader = new PacketReader(sink, ctxFor(), SLOTS);
    const stream = Buffer.concat([sync.bytes, next.bytes]);
    assert.equal(reader.write(stream), sync.bytes.length);
    assert.equal(reader.packets, 1);
    assert.equal(reader.atBoundary, true);
    assert.equal(reader.write(stream.subarray(sync.bytes.length)), next.bytes.length);
    reader.end();
    assert.deepEqual(sink.packets.map((p) => p.header), [sync.decoded, next.decoded]);
  });

  it('coalesces runs of contiguous offsets into one region each, in offset[] order', () => {
    const pages = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 20, 21, 5, 100, 101, 100];
    const offsets = pages.map((p) => p * PAGE_SIZE);
    const header = encodePacketHeader({ normalPages: offsets.length, packetNum: 1, ramblock: 'mem', offsets });
    const payload = Buffer.concat(pages.map((p, i) => pageBytes(p * 100 + i)));
    const sink = new Recorder();
    const reader = new PacketReader(sink, ctxFor());
    reader.write(header);
    // zero-copy: the region next() offers is the sink's own memory, a whole run at once
    const first = reader.next();
    assert.equal(first.buffer, sink.current!.regions[0][1].buffer);
    assert.equal(first.length, 10 * PAGE_SIZE);
    reader.write(payload);
    reader.end();
    assert.deepEqual(sink.events, ['header 1', 'region 0+10', 'region 14000+2', 'region 5000+1', 'region 64000+2', 'region 64000+1', 'packet 1']);
    assert.deepEqual(pagesOf(sink.packets[0].regions), offsets.map((o, i) => [o, pageBytes(pages[i] * 100 + i)]));
  });

  it('serves zero-copy reads: next() then advance(n) with whatever the kernel delivered', () => {
    const stream = Buffer.concat(UNITS.map((u) => u.bytes));
    const sink = new Recorder();
    const reader = new PacketReader(sink, ctxFor(), SLOTS);
    let at = 0;
    let reads = 0;
    while (at < stream.length) {
      const region = reader.next();
      assert.ok(region.length > 0);
      assert.equal(reader.next(), region, 'next() is stable until advance()');
      const n = Math.min(region.length, stream.length - at, 1 + ((reads * 7919) % 5000));
      region.set(stream.subarray(at, at + n));
      reader.advance(n);
      at += n;
      reads++;
    }
    reader.end();
    assert.deepEqual(sink.packets.map((p) => p.header), UNITS.map((u) => u.decoded));
    assert.equal(reader.packets, UNITS.length);
    assert.equal(reader.bytes, stream.length);
    assert.equal(reader.pages, UNITS.reduce((n, u) => n + u.decoded.normalPages, 0));
    assert.equal(reader.zeroPages, UNITS.reduce((n, u) => n + u.decoded.zeroPages, 0));
  });

  it('end() inside a header: PacketShortPayloadError with header byte counts', () => {
    const reader = new PacketReader(new Recorder(), ctxFor(), SLOTS);
    assert.equal(reader.atBoundary, true);
    reader.write(UNITS[0].bytes.subarray(0, 100));
    assert.equal(reader.atBoundary, false);
    const err = throwsCode(() => reader.end(), 'MIGRATION_PACKET_SHORT_PAYLOAD', {
      field: 'header',
      expected: '352 bytes',
      received: '100 bytes',
      channel: 3,
      peer: '10.0.0.9:5555',
    });
    assert.match(err.message, /^channel 3 from 10\.0\.0\.9:5555: stream ended 100 bytes into a 352-byte packet header$/);
  });

  it('end() inside a payload: PacketShortPayloadError saying payload bytes expected vs received', () => {
    const threeRuns = UNITS.find((u) => u.decoded.normalPages === 3)!; // runs [0x2000], [0x0, 0x1000]
    const reader = new PacketReader(new Recorder(), ctxFor(), SLOTS);
    reader.write(threeRuns.bytes.subarray(0, 352 + 4096 + 100));
    const err = throwsCode(() => reader.end(), 'MIGRATION_PACKET_SHORT_PAYLOAD', {
      field: 'payload',
      expected: '12288 bytes',
      received: '4196 bytes',
    });
    assert.match(err.message, /stream ended after 4196 of the 12288 payload bytes of packet 18446744073709551615$/);
  });

  it('end() at a packet boundary is a clean end, also with no packets at all', () => {
    new PacketReader(new Recorder(), ctxFor(), SLOTS).end();
    const sink = readAll([UNITS[0].bytes, UNITS[1].bytes]);
    assert.equal(sink.packets.length, 2);
  });

  it('header errors carry the channel context, before the sink hears of the packet', () => {
    const bad = Buffer.from(UNITS[1].bytes);
    bad.writeUInt32BE(0xdeadbeef, 0);
    const sink = new Recorder();
    const reader = new PacketReader(sink, ctxFor(), SLOTS);
    throwsCode(() => reader.write(bad), 'MIGRATION_PACKET_BAD_HEADER', { field: 'magic', channel: 3, peer: '10.0.0.9:5555' });
    assert.deepEqual(sink.events, []);
  });

  it('checkPacket failures stop the packet before any region is asked for', () => {
    const sink = new Recorder();
    const reader = new PacketReader(sink, ctxFor({ blockSize: (n) => (n === 'pc.ram' ? 0x4000 : undefined) }), SLOTS);
    throwsCode(() => reader.write(UNITS[1].bytes), 'MIGRATION_PACKET_OFFSET_OUT_OF_RANGE', { channel: 3 });
    assert.deepEqual(sink.events, []);
    const reader2 = new PacketReader(sink, ctxFor({ blockSize: () => undefined }), SLOTS);
    throwsCode(() => reader2.write(UNITS[1].bytes), 'MIGRATION_PACKET_UNKNOWN_RAMBLOCK');
    // SYNC without pages and with an empty ramblock passes the same strict context
    const reader3 = new PacketReader(sink, ctxFor({ blockSize: () => undefined }), SLOTS);
    reader3.write(UNITS[0].bytes);
    assert.equal(reader3.packets, 1);
  });

  it('the first error sticks: every later call throws it, next() still offers a region', () => {
    const bad = Buffer.from(UNITS[1].bytes);
    bad.writeUInt32BE(9, 4);
    const reader = new PacketReader(new Recorder(), ctxFor(), SLOTS);
    const err = throwsCode(() => reader.write(bad), 'MIGRATION_PACKET_BAD_HEADER', { field: 'version' });
    assert.ok(reader.next().length > 0);
    assert.throws(() => reader.advance(1), (e) => e === err);
    assert.throws(() => reader.write(UNITS[0].bytes), (e) => e === err);
    assert.throws(() => reader.end(), (e) => e === err);
    assert.equal(reader.atBoundary, false);
  });

  it('rejects advance() beyond the offered region, and a sink region of the wrong size', () => {
    const reader = new PacketReader(new Recorder(), ctxFor(), SLOTS);
    assert.throws(() => reader.advance(353), RangeError);
    assert.throws(() => reader.advance(0), RangeError);
    const sink = new Recorder();
    sink.region = () => new Uint8Array(100);
    throwsCode(() => new PacketReader(sink, ctxFor(), SLOTS).write(UNITS[1].bytes), 'MIGRATION_INTERNAL', { channel: 3 });
  });

  it('compressed packets: refused without a decoder for the negotiated method', () => {
    const zlib = PACKET_FIXTURES.find((f) => f.decoded.flags === FLAG_ZLIB)!;
    const noneCtx = new PacketReader(new Recorder(), ctxFor(), SLOTS);
    throwsCode(() => noneCtx.write(hex(zlib.bytes)), 'MIGRATION_PACKET_BAD_HEADER', { field: 'flags', expected: 'compression none' });
    const zlibCtx = new PacketReader(new Recorder(), ctxFor({ compression: FLAG_ZLIB, blockSize: () => BIG }), SLOTS);
    throwsCode(() => zlibCtx.write(hex(zlib.bytes)), 'MIGRATION_PACKET_BAD_HEADER', { field: 'flags', received: 'compression zlib' });
    assert.throws(() => new PacketReader(new Recorder(), ctxFor(), SLOTS, { flag: FLAG_ZLIB, decode() {} }), TypeError);
  });

  it('compressed packets: a plugged-in decoder gets next_packet_size bytes and fills the regions', () => {
    // A stand-in method: one payload byte per page, the page filled with it.
    const fill: PayloadDecoder = {
      flag: FLAG_ZLIB,
      decode(h, payload, region) {
        assert.equal(payload.length, h.nextPacketSize);
        for (let i = 0; i < h.normalPages; i++) region(h.offsets[i], PAGE_SIZE).fill(payload[i]);
      },
    };
    const offsets = [0x1000, 0x5000];
    const stream = Buffer.concat([
      encodePacketHeader({ flags: FLAG_ZLIB, normalPages: 2, packetNum: 1, ramblock: 'mem', offsets, nextPacketSize: 2 }, SLOTS),
      Uint8Array.of(0xaa, 0xbb),
      encodePacketHeader({ flags: FLAG_ZLIB | FLAG_SYNC, normalPages: 0, packetNum: 2, ramblock: '', offsets: [], nextPacketSize: 0 }, SLOTS),
    ]);
    for (const [label, chunks] of splits(stream)) {
      const sink = new Recorder();
      const reader = new PacketReader(sink, ctxFor({ compression: FLAG_ZLIB }), SLOTS, fill);
      for (const c of chunks) reader.write(c);
      reader.end();
      assert.deepEqual(sink.packets.map((p) => p.header.packetNum), [1n, 2n], label);
      assert.deepEqual(pagesOf(sink.packets[0].regions), [
        [0x1000, new Uint8Array(PAGE_SIZE).fill(0xaa)],
        [0x5000, new Uint8Array(PAGE_SIZE).fill(0xbb)],
      ], label);
    }
  });
});

describe('PacketReader property', () => {
  const PROP_SLOTS = 8;
  const pageIndex = fc.nat(63);
  const normalOffsets = fc.oneof(
    fc.array(pageIndex, { maxLength: PROP_SLOTS }),
    fc.tuple(fc.nat(56), fc.integer({ min: 1, max: PROP_SLOTS })).map(([start, n]) => Array.from({ length: n }, (_, i) => start + i)),
  );
  const packet = fc
    .record({
      normal: normalOffsets,
      zero: fc.array(pageIndex, { maxLength: PROP_SLOTS }),
      flags: fc.constantFrom(0, FLAG_SYNC),
      packetNum: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      ramblock: fc.constantFrom('mem', 'pc.ram'),
      seed: fc.nat(1000),
    })
    .map((p) => ({ ...p, zero: p.zero.slice(0, PROP_SLOTS - p.normal.length) }));

  it('random packets, encoded and cut at random, come out as the same headers and page bytes', () => {
    fc.assert(
      fc.property(fc.array(packet, { minLength: 1, maxLength: 6 }), fc.array(fc.integer({ min: 1, max: 9000 }), { minLength: 1, maxLength: 20 }), (packets, cuts) => {
        const parts: Uint8Array[] = [];
        const expected = packets.map((p) => {
          const offsets = [...p.normal, ...p.zero].map((i) => i * PAGE_SIZE);
          parts.push(encodePacketHeader({ ...p, normalPages: p.normal.length, zeroPages: p.zero.length, offsets }, PROP_SLOTS));
          const pages = p.normal.map((i, k): [number, Uint8Array] => [i * PAGE_SIZE, pageBytes(p.seed + k)]);
          for (const [, bytes] of pages) parts.push(bytes);
          const header: PacketHeader = {
            magic: 0x11223344, version: 1, flags: p.flags, pagesAlloc: PROP_SLOTS, normalPages: p.normal.length,
            nextPacketSize: p.normal.length * PAGE_SIZE, packetNum: p.packetNum, zeroPages: p.zero.length,
            ramblock: p.ramblock, offsets,
          };
          return { header, pages };
        });
        const stream = Buffer.concat(parts);
        const sink = new Recorder();
        const reader = new PacketReader(sink, ctxFor(), PROP_SLOTS);
        for (let at = 0, i = 0; at < stream.length; i++) {
          const n = cuts[i % cuts.length];
          reader.write(stream.subarray(at, at + n));
          at += n;
        }
        reader.end();
        assert.deepEqual(sink.packets.map((p) => p.header), expected.map((e) => e.header));
        assert.deepEqual(sink.packets.map((p) => pagesOf(p.regions)), expected.map((e) => e.pages));
      }),
      { numRuns: 200 },
    );
  });
});
