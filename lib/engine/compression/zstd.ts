/**
 * zstd (flag 0x04) with @bokuweb/zstd-wasm: zstd 1.5 compiled to WebAssembly, shipped in
 * the npm package (nothing downloaded at install). Its JS wrapper mallocs and copies per
 * call and sizes the output from the frame's own content-size field; we call the wasm
 * exports directly instead, through input and output buffers allocated once in the wasm
 * heap, and decompress into a buffer of exactly normal_pages × 4096 bytes, so a frame
 * that claims or holds more fails (dstSize_tooSmall) instead of growing memory.
 *
 * The wasm runs on the main thread: one packet at a time, synchronously. The library has
 * no streaming exports, so each packet is one frame.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { FLAG_ZSTD, PAGE_SIZE, PACKET_SLOTS, type PacketHeader, type PayloadDecoder } from '../../protocol';
import type { PacketErrorContext } from '../../protocol/packet';
import type { CompressionOps, Compressor } from './index';
import { badCompression, scatterPages } from './pages';

interface ZstdModule {
  HEAPU8: Uint8Array;
  _malloc(n: number): number;
  _ZSTD_compress(dst: number, dstCapacity: number, src: number, srcSize: number, level: number): number;
  _ZSTD_compressBound(n: number): number;
  _ZSTD_decompress(dst: number, dstCapacity: number, src: number, srcSize: number): number;
  _ZSTD_isError(code: number): number;
}

const require = createRequire(import.meta.url);
let loading: Promise<Heap> | null = null;
let heap: Heap | null = null;

/** One input and one output area in the wasm heap, shared by every channel (calls are synchronous). */
interface Heap {
  mod: ZstdModule;
  src: number;
  srcSize: number;
  dst: number;
  dstSize: number;
}

const MAX_PAGES_BYTES = PACKET_SLOTS * PAGE_SIZE;

async function load(): Promise<Heap> {
  loading ??= (async () => {
    const lib = require('@bokuweb/zstd-wasm') as { init(): Promise<void> };
    await lib.init();
    // The package exports only its JS wrapper; the emscripten Module it wraps (the wasm
    // exports) sits beside it, and the require cache gives us the instance init() set up.
    const main = require.resolve('@bokuweb/zstd-wasm');
    const mod = (require(path.join(path.dirname(main), 'module.js')) as { Module: ZstdModule }).Module;
    // The compressed side must hold a bound-sized frame; the page side a whole packet.
    const bound = mod._ZSTD_compressBound(MAX_PAGES_BYTES) + 64 * 1024;
    const size = Math.max(bound, MAX_PAGES_BYTES);
    const src = mod._malloc(size);
    const dst = mod._malloc(size);
    if (!src || !dst) throw new Error('zstd: cannot allocate its buffers in the wasm heap');
    heap = { mod, src, srcSize: size, dst, dstSize: size };
    return heap;
  })();
  return loading;
}

function loaded(): Heap {
  if (!heap) throw new Error('zstd used before zstdOps.load() finished');
  return heap;
}

class ZstdCompressor implements Compressor {
  constructor(private readonly level: number) {}

  async compress(payload: readonly Uint8Array[], bytes: number): Promise<Uint8Array> {
    const { mod, src, srcSize, dst, dstSize } = loaded();
    if (bytes > srcSize) throw new RangeError(`zstd: a ${bytes}-byte payload exceeds the ${srcSize}-byte packet buffer`);
    // HEAPU8 is replaced when the wasm memory grows: read it after every call into wasm.
    let at = src;
    for (const v of payload) {
      mod.HEAPU8.set(v, at);
      at += v.length;
    }
    const n = mod._ZSTD_compress(dst, dstSize, src, bytes, this.level);
    if (mod._ZSTD_isError(n)) throw new Error(`zstd: compression failed (code ${n})`);
    return mod.HEAPU8.slice(dst, dst + n);
  }
}

class ZstdDecoder implements PayloadDecoder {
  readonly flag = FLAG_ZSTD;

  decode(h: PacketHeader, payload: Uint8Array, region: (offset: number, length: number) => Uint8Array, where: PacketErrorContext): void {
    const want = h.normalPages * PAGE_SIZE;
    if (want === 0) {
      if (payload.length !== 0) throw badCompression(where, h, FLAG_ZSTD, 'no payload for a packet without pages', `${payload.length} bytes`);
      return;
    }
    const { mod, src, srcSize, dst } = loaded();
    if (payload.length > srcSize) throw badCompression(where, h, FLAG_ZSTD, `at most ${srcSize} bytes`, `${payload.length} bytes`);
    mod.HEAPU8.set(payload, src);
    const n = mod._ZSTD_decompress(dst, want, src, payload.length);
    if (mod._ZSTD_isError(n)) throw badCompression(where, h, FLAG_ZSTD, `a zstd frame of ${want} bytes (${h.normalPages} pages)`, `zstd error ${-n >>> 0}`);
    if (n !== want) throw badCompression(where, h, FLAG_ZSTD, `${want} bytes (${h.normalPages} pages)`, `${n} bytes`);
    scatterPages(h, mod.HEAPU8.subarray(dst, dst + want), region);
  }
}

export const zstdOps: CompressionOps = {
  name: 'zstd',
  flag: FLAG_ZSTD,
  levels: { min: 1, max: 19 },
  load: async () => {
    await load();
  },
  compressor: (level) => new ZstdCompressor(level),
  decoder: () => new ZstdDecoder(),
};
