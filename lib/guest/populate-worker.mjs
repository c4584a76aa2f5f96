// Faults in fresh guest RAM ahead of the migration that fills it (lib/guest/populate.ts).
//
// Each page gets an atomic compare-and-swap of 0 for 0 on its first word: a locked
// read-modify-write, so one write fault allocates and zeroes the page here, yet the value
// never changes, so a page the receiver already wrote keeps its bytes whichever access
// comes first. (Atomics.add would fault twice per page here: its load first maps the
// shared zero page, then the write replaces it, with a TLB flush across threads.)
//
// workerData: { blocks: [{ sab, size }], stop: Int32Array on a SharedArrayBuffer (1 = stop) }
import { workerData } from 'node:worker_threads';

const PAGE_WORDS = 4096 / 4;
/** Pages between looks at the stop flag (1 MiB). */
const STRIDE = 256;

const { blocks, stop } = workerData;
outer: for (const { sab, size } of blocks) {
  const words = new Int32Array(sab, 0, size / 4);
  const pages = size / 4096;
  for (let p = 0; p < pages; p += STRIDE) {
    if (Atomics.load(stop, 0) !== 0) break outer;
    const end = Math.min(pages, p + STRIDE);
    for (let q = p; q < end; q++) Atomics.compareExchange(words, q * PAGE_WORDS, 0, 0);
  }
}
