// The guest's workload: runs in a worker_thread, writes into guest RAM (shared memory)
// and marks the dirty bitmap. Plain JS so it runs without a TS loader.
//
// workerData: {
//   blocks: [{ sab, dirtySab, pages }]   guest RAM blocks in address order
//   ctrl:   SharedArrayBuffer            control block, layout in control.ts
//   layout: CONTROL                      indices and codes from control.ts
// }
//
// A touch writes 8 random 64-bit words at random 8-byte slots of one page, THEN sets the
// page's dirty bit: the migration clears bits at the start of a round, so marking first
// could lose a write made between the mark and the clear.
//
// Pacing: a token bucket of pages (rate / 4096 per second, at most 20 ms of burst),
// sleeping with Atomics.wait on CMD in slices of at most 10 ms so that a pause, resume,
// stop or workload change (all notified on CMD) wakes it at once. At rate 0 it writes as
// fast as it can, checking CMD every BATCH touches.
//
// Throttle (auto-converge): the model of QEMU's vCPU throttle, which makes a vCPU sleep for
// a share of its time. The worker runs for (1 - throttle) of every THROTTLE_PERIOD_MS and
// sleeps the rest, so a workload that needs all its CPU (random:max) dirties memory
// (1 - throttle) as fast, and one that needs little (a slow paced rate) is not slowed until
// the throttle leaves it less CPU than it needs, as with a real guest. QEMU keeps the run
// slice at 10 ms and stretches the sleep (990 ms at 99%); a fixed 10 ms period instead keeps
// even a 99% throttle smooth at the scale of a short pre-copy round, with the same share.
// The throttle is read once per batch; while throttled, batches are small (THROTTLED_BATCH)
// so a run slice ends on time.
import { workerData } from 'node:worker_threads';

const { blocks, ctrl, layout: L } = workerData;

const i32 = new Int32Array(ctrl);
const i64 = new BigInt64Array(ctrl);
const f64 = new Float64Array(ctrl);

const ram = blocks.map((b) => new Int32Array(b.sab));
const dirty = blocks.map((b) => new Int32Array(b.dirtySab));
const starts = [];
let totalPages = 0;
for (const b of blocks) {
  starts.push(totalPages);
  totalPages += b.pages;
}
const single = blocks.length === 1;

const BATCH = 256;
const THROTTLED_BATCH = 16;
const THROTTLE_PERIOD_MS = 10;
const SLICE_MS = 10;
const BURST_S = 0.02;
const PUBLISH_MS = 5;
const WORDS_PER_TOUCH = 8;
const PAGE_WORDS32 = 1024;

// xorshift128 (Marsaglia); state never all zero.
let s0 = Atomics.load(i32, L.RNG) | 0;
let s1 = Atomics.load(i32, L.RNG + 1) | 0;
let s2 = Atomics.load(i32, L.RNG + 2) | 0;
let s3 = Atomics.load(i32, L.RNG + 3) | 0;
if ((s0 | s1 | s2 | s3) === 0) s3 = 1;
let cursor = Number(Atomics.load(i64, L.CURSOR));
if (!(cursor >= 0 && cursor < totalPages)) cursor = 0;
let touches = Number(Atomics.load(i64, L.TOUCHES));

function next() {
  const t = s0 ^ (s0 << 11);
  s0 = s1;
  s1 = s2;
  s2 = s3;
  s3 = s3 ^ (s3 >>> 19) ^ (t ^ (t >>> 8));
  return s3;
}

function touch(page) {
  let b = 0;
  if (!single) {
    b = starts.length - 1;
    while (starts[b] > page) b--;
  }
  const local = page - starts[b];
  const words = ram[b];
  const base = local * PAGE_WORDS32;
  for (let k = 0; k < WORDS_PER_TOUCH; k++) {
    const slot = base + ((next() & 511) << 1);
    words[slot] = next();
    words[slot + 1] = next();
  }
  Atomics.or(dirty[b], local >>> 5, 1 << (local & 31));
  touches++;
}

function publish() {
  Atomics.store(i32, L.RNG, s0);
  Atomics.store(i32, L.RNG + 1, s1);
  Atomics.store(i32, L.RNG + 2, s2);
  Atomics.store(i32, L.RNG + 3, s3);
  Atomics.store(i64, L.CURSOR, BigInt(cursor));
  Atomics.store(i64, L.TOUCHES, BigInt(touches));
}

// Workload parameters, re-read whenever GEN moves (seqlock: retry if it moved meanwhile).
let gen = -1;
let kind = L.IDLE;
let pagesPerSecond = 0;
let span = totalPages;

function loadParams() {
  for (;;) {
    const g = Atomics.load(i32, L.GEN);
    const k = f64[L.KIND];
    const rate = f64[L.RATE];
    const size = f64[L.SIZE];
    if (Atomics.load(i32, L.GEN) !== g) continue;
    gen = g;
    kind = k;
    pagesPerSecond = rate / 4096;
    span = size > 0 ? Math.min(totalPages, Math.max(1, Math.ceil(size / 4096))) : totalPages;
    return;
  }
}

function pick() {
  if (kind === L.SWEEP) {
    const p = cursor;
    cursor = cursor + 1 === totalPages ? 0 : cursor + 1;
    return p;
  }
  // random and hotset: uniform over the first `span` pages.
  return Math.floor(((next() >>> 0) / 4294967296) * span);
}

let allowance = 0;
let last = performance.now();
let lastPublish = last;
/** Start of the current throttle period. */
let periodStart = last;

Atomics.store(i32, L.READY, 1);
Atomics.notify(i32, L.READY);

for (;;) {
  const cmd = Atomics.load(i32, L.CMD);
  if (cmd === L.STOP) {
    publish();
    break;
  }
  if (cmd === L.PAUSE) {
    publish();
    Atomics.compareExchange(i32, L.CMD, L.PAUSE, L.PAUSED);
    Atomics.notify(i32, L.CMD);
    continue;
  }
  if (cmd === L.PAUSED) {
    Atomics.wait(i32, L.CMD, L.PAUSED);
    // Coming back: no burst for the time spent paused.
    allowance = 0;
    last = performance.now();
    periodStart = last;
    continue;
  }
  if (Atomics.load(i32, L.GEN) !== gen) {
    loadParams();
    allowance = 0;
    last = performance.now();
  }
  if (kind === L.IDLE || totalPages === 0) {
    publish();
    Atomics.wait(i32, L.CMD, L.RUN, 100);
    continue;
  }
  const now = performance.now();
  const throttle = Atomics.load(i32, L.THROTTLE) / 1e6;
  let budget = BATCH;
  if (throttle > 0) {
    if (now - periodStart >= THROTTLE_PERIOD_MS) {
      periodStart = now;
    } else if (now - periodStart >= THROTTLE_PERIOD_MS * (1 - throttle)) {
      // This period's run share is spent: sleep out the rest of it. A pause or stop (a
      // notify on CMD) ends the sleep at once; the loop then starts over from the top.
      if (now - lastPublish >= PUBLISH_MS) {
        publish();
        lastPublish = now;
      }
      Atomics.wait(i32, L.CMD, L.RUN, periodStart + THROTTLE_PERIOD_MS - now);
      continue;
    }
    budget = THROTTLED_BATCH;
  }
  if (pagesPerSecond > 0) {
    allowance += ((now - last) * pagesPerSecond) / 1000;
    last = now;
    const cap = Math.max(1, pagesPerSecond * BURST_S);
    if (allowance > cap) allowance = cap;
    budget = Math.min(budget, Math.floor(allowance));
    if (budget === 0) {
      if (now - lastPublish >= PUBLISH_MS) {
        publish();
        lastPublish = now;
      }
      const waitMs = Math.min(SLICE_MS, ((1 - allowance) * 1000) / pagesPerSecond);
      Atomics.wait(i32, L.CMD, L.RUN, Math.max(0.2, waitMs));
      continue;
    }
    allowance -= budget;
  }
  for (let k = 0; k < budget; k++) touch(pick());
  if (now - lastPublish >= PUBLISH_MS) {
    publish();
    lastPublish = now;
  }
}
