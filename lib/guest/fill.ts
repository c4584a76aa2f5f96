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
