/**
 * Populates a destination guest's RAM in a worker thread while the migration fills it.
 *
 * The first write to each 4 KiB page of fresh memory costs a kernel page fault that
 * allocates and zeroes it. On the destination that cost lands on the thread that reads
 * the channels (the kernel copies a socket's bytes straight into guest RAM), where it was
 * the largest single share of the destination's CPU time. Taking the faults on another
 * thread, in the order the source sends pages, lets the receive thread copy into pages
 * that already exist. Like QEMU's preallocation threads, but overlapped with the transfer
 * instead of before it.
 *
 * stop() ends the worker promptly (it looks at a flag every MiB) and is safe to call at
 * any time, any number of times; the worker ending by itself is normal.
 */
import { Worker } from 'node:worker_threads';
import type { RamBlock } from './ram';

export class Populator {
  readonly #stop = new Int32Array(new SharedArrayBuffer(4));
  /** Resolves when the worker has exited (done, stopped or failed: populating is only an optimisation). */
  readonly exited: Promise<void>;

  constructor(blocks: readonly RamBlock[]) {
    const worker = new Worker(new URL('./populate-worker.mjs', import.meta.url), {
      // Plain JS: none of the parent's flags (a TS loader, --input-type, ...) apply to it.
      execArgv: [],
      workerData: { blocks: blocks.map((b) => ({ sab: b.sab, size: b.size })), stop: this.#stop },
    });
    // A worker that cannot start or fails leaves the pages to fault on first write, as
    // without it: nothing to report but the slower transfer.
    worker.on('error', () => {});
    this.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
  }

  stop(): void {
    Atomics.store(this.#stop, 0, 1);
  }
}
