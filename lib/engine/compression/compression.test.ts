import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import { before, describe, it } from 'node:test';
import { COMPRESSION_FLAGS, FLAG_SYNC, PAGE_SIZE, PacketReader, encodePacketHeader, type PacketHeader, type PacketSink } from '../../protocol';
import { COMPRESSION_OPS, compressionOps } from './index';

const SLOTS = 128;
const BLOCK = 4096 * PAGE_SIZE;

/** Pages of three kinds: random (incompressible), text-like, and mostly zero with a stamp. */
function page(kind: 'random' | 'text' | 'sparse', n: number): Uint8Array {
  if (kind === 'random') return new Uint8Array(randomBytes(PAGE_SIZE));
  const p = new Uint8Array(PAGE_SIZE);
  if (kind === 'sparse') {
    new DataView(p.buffer).setUint32(128, n + 1);
    return p;
  }
  const words = ['page', 'dirty', 'channel', 'sync', 'guest', 'memory', 'round'];
  let at = 0;
  for (let i = n; at < PAGE_SIZE; i++) at += new TextEncoder().encodeInto(`${words[i % words.length]} ${i} `, p.subarray(at)).written;
  return p;
}

/** A sink over one block of memory. */
class Memory implements PacketSink {
  readonly bytes = new Uint8Array(BLOCK);
  packets = 0;
  header(): void {}
  region(_h: PacketHeader, offset: number, length: number): Uint8Array {
    return this.bytes.subarray(offset, offset + length);
  }
  packet(): void {
    this.packets++;
  }
}

const ctx = (compression: number) => ({ blockSize: (n: string) => (n === 'mem' ? BLOCK : undefined), compression, channel: 5, peer: 'p:1', connection: 9 });

/** One frame of `pages`, as a one-channel migration's compressor makes it (its workers released after). */
async function compress(method: 'zlib' | 'zstd', pages: Uint8Array[]): Promise<Uint8Array> {
  const set = (await compressionOps(method).compressors(1, 1))!;
  try {
    return await set.forChannel(0).compress(pages, pages.length * PAGE_SIZE);
  } finally {
    await set.close();
  }
}

/** One compressed packet as the source sends it: header with flag + next_packet_size, then the frame. */
async function packet(method: 'zlib' | 'zstd', pages: Array<[number, Uint8Array]>, num: number, frame?: Uint8Array): Promise<Uint8Array> {
  const ops = compressionOps(method);
  const body = frame ?? (await compress(method, pages.map(([, p]) => p)));
  const header = encodePacketHeader(
    { flags: ops.flag, normalPages: pages.length, packetNum: num, ramblock: 'mem', offsets: pages.map(([o]) => o), nextPacketSize: body.length },
    SLOTS,
  );
  return Buffer.concat([header, body]);
}

describe('compression methods', () => {
  before(async () => {
    for (const ops of Object.values(COMPRESSION_OPS)) await ops.load();
  });

  it('flags are QEMU’s: none 0, zlib 0x02, zstd 0x04', () => {
    assert.equal(COMPRESSION_OPS.none.flag, 0);
    assert.equal(COMPRESSION_OPS.zlib.flag, 0x02);
    assert.equal(COMPRESSION_OPS.zstd.flag, 0x04);
    assert.equal(COMPRESSION_OPS.none.compressors(1, 4), null);
  });

  for (const method of ['zlib', 'zstd'] as const) {
    for (const kind of ['random', 'text', 'sparse'] as const) {
      it(`${method}: ${kind} pages at scattered offsets arrive intact, any chunking`, async () => {
        // Runs and gaps: offsets 0,1,2, 7, 9,10, then 100..(100+120).
        const idx = [0, 1, 2, 7, 9, 10, ...Array.from({ length: 120 }, (_, i) => 100 + i)];
        const pages = idx.map((p, i): [number, Uint8Array] => [p * PAGE_SIZE, page(kind, i)]);
        const stream = Buffer.concat([
          await packet(method, pages, 1),
          encodePacketHeader({ flags: FLAG_SYNC | COMPRESSION_FLAGS[method], normalPages: 0, packetNum: 2, ramblock: '', offsets: [], nextPacketSize: 0 }, SLOTS),
        ]);
        for (const chunk of [stream.length, 1000, 7]) {
          const mem = new Memory();
          const r = new PacketReader(mem, ctx(COMPRESSION_FLAGS[method]), SLOTS, compressionOps(method).decoder());
          for (let at = 0; at < stream.length; at += chunk) r.write(stream.subarray(at, at + chunk));
          r.end();
          assert.equal(mem.packets, 2);
          for (const [off, p] of pages) assert.deepEqual(mem.bytes.subarray(off, off + PAGE_SIZE), p);
          assert.equal(r.pages, pages.length);
          assert.equal(r.payloadBytes, stream.length - 2 * encodePacketHeader({ normalPages: 0, packetNum: 0, ramblock: '', offsets: [] }, SLOTS).length);
          if (kind !== 'random') assert.ok(r.payloadBytes * 3 < pages.length * PAGE_SIZE, `${kind} pages compress at least 3:1`);
        }
      });
    }

    it(`${method}: a corrupt frame fails with MIGRATION_PACKET_BAD_COMPRESSION naming the channel`, async () => {
      const pages = [0, 1, 2].map((p): [number, Uint8Array] => [p * PAGE_SIZE, page('text', p)]);
      const good = await packet(method, pages, 1);
      const bad = Uint8Array.from(good);
      const hdr = good.length - (await compress(method, pages.map(([, p]) => p))).length;
      for (let i = hdr + 4; i < bad.length; i += 3) bad[i] ^= 0x5a;
      const r = new PacketReader(new Memory(), ctx(COMPRESSION_FLAGS[method]), SLOTS, compressionOps(method).decoder());
      assert.throws(() => r.write(bad), (e: { code: string; channel: number; message: string }) => {
        assert.equal(e.code, 'MIGRATION_PACKET_BAD_COMPRESSION');
        assert.equal(e.channel, 5);
        assert.match(e.message, new RegExp(`channel 5 .*${method} payload of packet 1`));
        return true;
      });
    });

    it(`${method}: a frame holding more pages than the header lists is refused, not written past`, async () => {
      const four = [0, 1, 2, 3].map((p): [number, Uint8Array] => [p * PAGE_SIZE, page('text', p)]);
      const frame = await compress(method, four.map(([, p]) => p));
      // The header claims two pages but the frame inflates to four.
      const lying = await packet(method, four.slice(0, 2), 1, frame);
      const mem = new Memory();
      const r = new PacketReader(mem, ctx(COMPRESSION_FLAGS[method]), SLOTS, compressionOps(method).decoder());
      assert.throws(() => r.write(lying), { code: 'MIGRATION_PACKET_BAD_COMPRESSION' });
      assert.equal(mem.bytes.subarray(0, 4 * PAGE_SIZE).some((b) => b !== 0), false, 'nothing written');
      // And fewer: a frame of two pages for a header of four.
      const two = await compress(method, four.slice(0, 2).map(([, p]) => p));
      const r2 = new PacketReader(new Memory(), ctx(COMPRESSION_FLAGS[method]), SLOTS, compressionOps(method).decoder());
      const short = await packet(method, four, 1, two);
      assert.throws(() => r2.write(short), { code: 'MIGRATION_PACKET_BAD_COMPRESSION' });
    });

    it(`${method}: a packet with another method's flag is refused as a bad header`, async () => {
      const other = method === 'zlib' ? 'zstd' : 'zlib';
      const pages = [[0, page('text', 0)]] as Array<[number, Uint8Array]>;
      const r = new PacketReader(new Memory(), ctx(COMPRESSION_FLAGS[method]), SLOTS, compressionOps(method).decoder());
      const foreign = await packet(other, pages, 1);
      assert.throws(() => r.write(foreign), { code: 'MIGRATION_PACKET_BAD_HEADER', field: 'flags' });
    });
  }

  it('zstd: a worker that dies fails its channel with its own error, every time after too', async () => {
    const set = (await compressionOps('zstd').compressors(1, 1))!;
    try {
      const c = set.forChannel(0);
      const pages = [page('text', 1)];
      assert.ok((await c.compress(pages, PAGE_SIZE)).length > 0);
      // The worker thread goes away (a crash, an OOM kill of the thread).
      await (c as unknown as { worker: { worker: { terminate(): Promise<number> } } }).worker.worker.terminate();
      for (let i = 0; i < 2; i++) {
        await assert.rejects(c.compress(pages, PAGE_SIZE), (e: { code: string; message: string }) => e.code === 'MIGRATION_INTERNAL' && /zstd worker exited/.test(e.message));
      }
    } finally {
      await set.close();
    }
  });

  it('zlib: a bomb (512 KiB of zeros claimed as one page) stops at one page of output', () => {
    const bomb = zlib.deflateSync(Buffer.alloc(128 * PAGE_SIZE));
    const header = encodePacketHeader({ flags: 0x02, normalPages: 1, packetNum: 1, ramblock: 'mem', offsets: [0], nextPacketSize: bomb.length }, SLOTS);
    const r = new PacketReader(new Memory(), ctx(0x02), SLOTS, compressionOps('zlib').decoder());
    assert.throws(() => r.write(Buffer.concat([header, bomb])), (e: { code: string; received: string }) => e.code === 'MIGRATION_PACKET_BAD_COMPRESSION' && /more than 4096 bytes/.test(e.received));
  });
});

