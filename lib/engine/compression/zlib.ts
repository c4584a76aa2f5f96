/**
 * zlib (flag 0x02) with node:zlib. Send: each packet's pages become one zlib stream,
 * deflated on libuv's thread pool, so several channels compress in parallel and the main
 * thread keeps hashing and writing. Receive: inflated synchronously (some 450 MB/s here),
 * never past the packet's normal_pages × 4096 bytes, so a hostile frame cannot make us
 * allocate more than one packet's worth.
 */
import zlib from 'node:zlib';
import { promisify } from 'node:util';
import { FLAG_ZLIB, PAGE_SIZE, type PacketHeader, type PayloadDecoder } from '../../protocol';
import type { PacketErrorContext } from '../../protocol/packet';
import type { CompressionOps, Compressor } from './index';
import { badCompression, copyPayload, nothingToDecode, scatterPages } from './pages';

const deflate = promisify(zlib.deflate);

/** Pages sampled per packet to tell whether it compresses at all (odd: no power-of-two stride). */
const PROBE_PAGES = 5;
/** A sample that deflates to more than this share of its size is taken as incompressible. */
const PROBE_GAIN = 0.92;

/**
 * Whether any of a few pages spread over the packet deflates (level 1) by at least 8 %.
 * Deflate searches for matches in random bytes for nothing, at ~35 MB/s a core here, where
 * it stores them (level 0) at memory speed: an incompressible packet goes as stored blocks,
 * still one valid zlib stream for any zlib receiver. The probe costs ~0.5 ms a packet.
 */
function worthDeflating(input: Uint8Array): boolean {
  const pages = input.length / PAGE_SIZE;
  for (let k = 0; k < PROBE_PAGES && k < pages; k++) {
    const p = Math.floor(((k + 0.5) * pages) / PROBE_PAGES);
    const sample = input.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE);
    // A small window and state: a 4 KiB sample needs no more, and the context is made per call.
    if (zlib.deflateRawSync(sample, { level: 1, windowBits: 12, memLevel: 2 }).length < PAGE_SIZE * PROBE_GAIN) return true;
  }
  return false;
}

class ZlibCompressor implements Compressor {
  constructor(private readonly level: number) {}

  async compress(payload: readonly Uint8Array[], bytes: number): Promise<Uint8Array> {
    // One copy gathers the runs (and takes them out of the guest's reach) before the
    // thread pool reads them.
    const input = copyPayload(payload, bytes, Buffer.allocUnsafe(bytes));
    return deflate(input, { level: worthDeflating(input) ? this.level : 0 });
  }
}

class ZlibDecoder implements PayloadDecoder {
  readonly flag = FLAG_ZLIB;

  decode(h: PacketHeader, payload: Uint8Array, region: (offset: number, length: number) => Uint8Array, where: PacketErrorContext): void {
    if (nothingToDecode(where, h, FLAG_ZLIB, payload)) return;
    const want = h.normalPages * PAGE_SIZE;
    let out: Buffer;
    try {
      out = zlib.inflateSync(payload, { maxOutputLength: want });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const why = e.code === 'ERR_BUFFER_TOO_LARGE' ? `more than ${want} bytes` : `${e.code ?? 'error'}: ${e.message}`;
      throw badCompression(where, h, FLAG_ZLIB, `${want} bytes (${h.normalPages} pages)`, why);
    }
    if (out.length !== want) throw badCompression(where, h, FLAG_ZLIB, `${want} bytes (${h.normalPages} pages)`, `${out.length} bytes`);
    scatterPages(h, out, region);
  }
}

export const zlibOps: CompressionOps = {
  name: 'zlib',
  flag: FLAG_ZLIB,
  levels: { min: 1, max: 9 },
  load: async () => {},
  // Stateless, on libuv's thread pool: one compressor serves every channel.
  compressors: async (level) => {
    const c = new ZlibCompressor(level);
    return { forChannel: () => c, close: async () => {} };
  },
  decoder: () => new ZlibDecoder(),
};
