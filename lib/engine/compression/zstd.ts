/**
 * zstd (flag 0x04) with @bokuweb/zstd-wasm: zstd 1.5 compiled to WebAssembly, shipped in
 * the npm package (nothing downloaded at install). Its JS wrapper mallocs and copies per
 * call and sizes the output from the frame's own content-size field; we call the wasm
 * exports directly instead, through input and output buffers allocated once in the wasm
 * heap, and decompress into a buffer of exactly normal_pages × 4096 bytes, so a frame
 * that claims or holds more fails (dstSize_tooSmall) instead of growing memory.
 *
 * Decoding runs on the main thread, synchronously (300-600 MB/s here). Compressing is
 * slower (100-200 MB/s a core) and runs in worker threads, one wasm instance each, as many
 * as the migration has channels up to one per core, each channel bound to one of them, as
 * QEMU compresses in each channel's own thread. The library has no streaming exports, so
 * each packet is one frame.
 */
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { InternalError } from '../../errors';
import { FLAG_ZSTD, PAGE_SIZE, PACKET_SLOTS, type PacketHeader, type PayloadDecoder } from '../../protocol';
import type { PacketErrorContext } from '../../protocol/packet';
import type { CompressionOps, Compressor } from './index';
import { badCompression, copyPayload, nothingToDecode, scatterPages } from './pages';

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
    heap = { mod, src, srcSize: size, dst };
    return heap;
  })();
  return loading;
}

function loaded(): Heap {
  if (!heap) throw new Error('zstd used before zstdOps.load() finished');
  return heap;
}

interface Pending {
  resolve(frame: Uint8Array): void;
  reject(err: Error): void;
  /** The channel's input buffer, handed back by the worker with the answer. */
  home: ZstdCompressor;
}

/** One worker thread and the requests it has not answered. */
class ZstdWorker {
  readonly worker: Worker;
  readonly ready: Promise<void>;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private failure: Error | null = null;

  constructor() {
    // Plain JS: none of the parent's flags (a TS loader, ...) apply to it.
    this.worker = new Worker(new URL('./zstd-worker.mjs', import.meta.url), { execArgv: [] });
    this.ready = new Promise<void>((resolve, reject) => {
      this.worker.once('message', (m: { ready?: boolean; failed?: string }) => {
        if (m.ready) resolve();
        else reject(new InternalError(`zstd worker could not start: ${m.failed ?? 'no reason given'}`));
        this.worker.on('message', (r: { id: number; output?: ArrayBuffer; error?: string; input: ArrayBuffer }) => this.answer(r));
      });
      this.worker.once('error', (err) => {
        this.fail(new InternalError(`zstd worker failed: ${err.message}`, { cause: err }));
        reject(this.failure);
      });
      this.worker.once('exit', (code) => {
        this.fail(new InternalError(`zstd worker exited (code ${code})`));
        reject(this.failure);
      });
    });
    // A failed start is reported through ready; nobody may be listening yet.
    this.ready.catch(() => {});
  }

  compress(home: ZstdCompressor, input: ArrayBuffer, length: number, level: number): Promise<Uint8Array> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<Uint8Array>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, home });
      this.worker.postMessage({ id, input, length, level }, [input]);
    });
  }

  private answer(r: { id: number; output?: ArrayBuffer; error?: string; input: ArrayBuffer }): void {
    const p = this.pending.get(r.id);
    if (!p) return;
    this.pending.delete(r.id);
    p.home.input = r.input;
    if (r.output) p.resolve(new Uint8Array(r.output));
    else p.reject(new InternalError(r.error ?? 'zstd worker gave no frame'));
  }

  /** Why it can no longer compress, or null. */
  get failed(): Error | null {
    return this.failure;
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const p of this.pending.values()) {
      // The buffer went to the worker with the request and is gone with it.
      p.home.input = new ArrayBuffer(MAX_PAGES_BYTES);
      p.reject(this.failure);
    }
    this.pending.clear();
  }

  async close(): Promise<void> {
    this.fail(new InternalError('zstd workers closed'));
    await this.worker.terminate();
  }
}

class ZstdCompressor implements Compressor {
  /** Where the payload is gathered; lent to the worker for each packet and handed back. */
  input: ArrayBuffer | null = new ArrayBuffer(MAX_PAGES_BYTES);

  constructor(
    private readonly worker: ZstdWorker,
    private readonly level: number,
  ) {}

  async compress(payload: readonly Uint8Array[], bytes: number): Promise<Uint8Array> {
    // A dead worker's own error, not a symptom of it.
    const failed = this.worker.failed;
    if (failed) throw failed;
    const input = this.input;
    // One packet at a time per channel (the pump awaits each): the buffer is always home here.
    if (!input) throw new InternalError('zstd: a channel compressed two packets at once');
    if (bytes > input.byteLength) throw new RangeError(`zstd: a ${bytes}-byte payload exceeds the ${input.byteLength}-byte packet buffer`);
    copyPayload(payload, bytes, new Uint8Array(input));
    this.input = null;
    return this.worker.compress(this, input, bytes, this.level);
  }
}

class ZstdDecoder implements PayloadDecoder {
  readonly flag = FLAG_ZSTD;

  decode(h: PacketHeader, payload: Uint8Array, region: (offset: number, length: number) => Uint8Array, where: PacketErrorContext): void {
    if (nothingToDecode(where, h, FLAG_ZSTD, payload)) return;
    const want = h.normalPages * PAGE_SIZE;
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
  compressors: async (level, channels) => {
    const n = Math.max(1, Math.min(channels, availableParallelism()));
    const workers = Array.from({ length: n }, () => new ZstdWorker());
    const close = async () => {
      await Promise.all(workers.map((w) => w.close()));
    };
    try {
      await Promise.all(workers.map((w) => w.ready));
    } catch (err) {
      await close();
      throw err;
    }
    const perChannel = new Map<number, ZstdCompressor>();
    return {
      forChannel: (channel) => {
        let c = perChannel.get(channel);
        if (!c) perChannel.set(channel, (c = new ZstdCompressor(workers[channel % n], level)));
        return c;
      },
      close,
    };
  },
  decoder: () => new ZstdDecoder(),
};
