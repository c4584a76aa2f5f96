/**
 * Initial RAM contents for a new source guest: random bytes from node:crypto, so every
 * guest differs and pages neither compress nor look like zero pages.
 *
 * Small guests are filled inline. Larger ones are split across a few worker threads:
 * writing fresh memory costs a page fault per 4 KiB, which is the bulk of the time (on
 * the Firecracker VMs we measured, ~1-2 s per GiB single-threaded against ~0.3 s per GiB
 * for the random bytes themselves) and parallelises.
 */
import { randomFillSync } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { InternalError } from '../errors/index';
import type { RamBlock } from './ram';

const CHUNK = 1 << 20;
/** Below this, spawning workers costs more than it saves. */
const INLINE_LIMIT = 64 << 20;
const MAX_FILL_WORKERS = 4;

interface Piece {
  sab: SharedArrayBuffer;
  offset: number;
  length: number;
}

export async function fillRandom(blocks: readonly RamBlock[]): Promise<void> {
  const total = blocks.reduce((n, b) => n + b.size, 0);
  const workers = Math.min(MAX_FILL_WORKERS, availableParallelism());
  if (total <= INLINE_LIMIT || workers < 2) {
    for (const b of blocks) {
      for (let o = 0; o < b.size; o += CHUNK) randomFillSync(b.bytes, o, Math.min(CHUNK, b.size - o));
    }
    return;
  }
  // Split the address space into `workers` contiguous ranges of whole MiB (or the rest).
  const share = Math.ceil(total / workers / CHUNK) * CHUNK;
  const plans: Piece[][] = Array.from({ length: workers }, () => []);
  for (const b of blocks) {
    for (let o = 0; o < b.size; ) {
      const w = Math.min(workers - 1, Math.floor((b.base + o) / share));
      const end = Math.min(b.size, (w + 1) * share - b.base);
      const length = w === workers - 1 ? b.size - o : end - o;
      plans[w].push({ sab: b.sab, offset: o, length });
      o += length;
    }
  }
  await Promise.all(plans.filter((p) => p.length > 0).map(runFillWorker));
}

function runFillWorker(pieces: Piece[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./fill-worker.mjs', import.meta.url), {
      // Plain JS: none of the parent's flags (a TS loader, --input-type, ...) apply to it.
      execArgv: [],
      workerData: { pieces },
    });
    let failure: unknown = null;
    worker.once('error', (err) => {
      failure = err;
    });
    worker.once('exit', (code) => {
      if (failure === null && code === 0) resolve();
      else {
        reject(
          new InternalError(`RAM fill worker failed: ${failure instanceof Error ? failure.message : `exit code ${code}`}`, {
            cause: failure ?? undefined,
          }),
        );
      }
    });
  });
}

/** 1 MiB of pseudo-text: words, numbers and punctuation from a fixed seed. */
let corpus: Uint8Array | null = null;
function textCorpus(): Uint8Array {
  if (corpus) return corpus;
  const words = (
    'the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were ' +
    'memory page guest channel migration kernel process file system user network socket buffer device driver module ' +
    'error warning info debug return value function struct const static void int char unsigned long size_t NULL'
  ).split(' ');
  const out = new Uint8Array(1 << 20);
  const enc = new TextEncoder();
  let seed = 0x9e3779b9;
  const rand = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0);
  let at = 0;
  while (at < out.length) {
    const r = rand();
    const w = r % 17 === 0 ? String(r % 100000) : words[r % words.length];
    const sep = r % 23 === 0 ? '.\n' : r % 7 === 0 ? ', ' : ' ';
    at += enc.encodeInto(w + sep, out.subarray(at)).written;
  }
  return (corpus = out);
}

/**
 * Text pages, the compressible end of what guests hold (page cache, logs, source): each a
 * 4 KiB slice of a pseudo-text corpus at a page-dependent offset, stamped with its page
 * number so no two pages are equal. `which(page)` picks the pages to overwrite (all: 'text'
 * fill; alternate runs of 16 pages over random RAM: 'mixed').
 */
export function fillText(blocks: readonly RamBlock[], which: (page: number) => boolean = () => true): void {
  const text = textCorpus();
  const span = text.length - 4096;
  for (const b of blocks) {
    const view = new DataView(b.bytes.buffer, b.bytes.byteOffset, b.bytes.byteLength);
    for (let p = 0; p < b.pages; p++) {
      if (!which(p)) continue;
      const from = (Math.imul(p + 1, 2654435761) >>> 0) % span;
      b.bytes.set(text.subarray(from, from + 4096), p * 4096);
      view.setUint32(p * 4096, p);
    }
  }
}
