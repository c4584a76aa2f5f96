/**
 * The control block shared between the guest (main thread) and its workload worker:
 * one small SharedArrayBuffer, viewed as Int32 (commands, RNG), BigInt64 (counters) and
 * Float64 (workload parameters). The worker gets this layout in its workerData, so the
 * offsets live here only.
 *
 *   byte  view     field      written by  meaning
 *      0  i32[0]   CMD        both        RUN / PAUSE (main) → PAUSED (worker ack) / STOP
 *      4  i32[1]   READY      worker      1 once the worker entered its loop
 *      8  i32[2]   GEN        main        bumped after each parameter change (seqlock)
 *     12  i32[3]   THROTTLE   main        vCPU throttle: share of each period the worker sleeps, ppm
 *     16  i32[4-7] RNG        worker*     xorshift128 state
 *     32  i64[4]   CURSOR     worker*     sweep cursor, page index in guest address space
 *     40  i64[5]   TOUCHES    worker*     pages touched so far (bytesDirtied / 4096)
 *     48  f64[6]   KIND       main        workload kind code (device.ts WORKLOAD_KIND_CODES)
 *     56  f64[7]   RATE       main        bytes per second, 0 = max
 *     64  f64[8]   SIZE       main        hotset size / random working set, 0 = all RAM
 *
 * (*) The worker owns RNG/CURSOR/TOUCHES while it runs and publishes them every few ms
 * and whenever it acknowledges PAUSE or STOP; the main thread writes them only while no
 * worker runs (before spawning one, e.g. from a received device state).
 * Every wake-up (pause, resume, stop, parameter change) is an Atomics.notify on CMD.
 * THROTTLE is read by the worker at every slice: it needs no wake-up (see the worker).
 */
import type { Workload } from './workload';
import { WORKLOAD_KIND_CODES, type RngState } from './device';

export const CONTROL = {
  // i32 indices
  CMD: 0,
  READY: 1,
  GEN: 2,
  THROTTLE: 3,
  RNG: 4,
  // i64 indices
  CURSOR: 4,
  TOUCHES: 5,
  // f64 indices
  KIND: 6,
  RATE: 7,
  SIZE: 8,
  // CMD values
  RUN: 0,
  PAUSE: 1,
  PAUSED: 2,
  STOP: 3,
  // kind codes
  IDLE: 0,
  RANDOM: 1,
  HOTSET: 2,
  SWEEP: 3,
} as const;

export type ControlLayout = typeof CONTROL;

const CONTROL_BYTES = 128;

export class ControlBlock {
  readonly sab = new SharedArrayBuffer(CONTROL_BYTES);
  readonly i32 = new Int32Array(this.sab);
  readonly i64 = new BigInt64Array(this.sab);
  readonly f64 = new Float64Array(this.sab);

  get cmd(): number {
    return Atomics.load(this.i32, CONTROL.CMD);
  }

  command(value: number): void {
    Atomics.store(this.i32, CONTROL.CMD, value);
    Atomics.notify(this.i32, CONTROL.CMD);
  }

  setWorkload(w: Workload): void {
    this.f64[CONTROL.KIND] = WORKLOAD_KIND_CODES.indexOf(w.kind);
    this.f64[CONTROL.RATE] = w.kind === 'idle' ? 0 : w.rate;
    this.f64[CONTROL.SIZE] = w.kind === 'hotset' ? w.size : w.kind === 'random' ? (w.workingSet ?? 0) : 0;
    Atomics.add(this.i32, CONTROL.GEN, 1);
    Atomics.notify(this.i32, CONTROL.CMD);
  }

  /** The vCPU throttle in parts per million of each period (0 = full speed). */
  get throttlePpm(): number {
    return Atomics.load(this.i32, CONTROL.THROTTLE);
  }

  set throttlePpm(ppm: number) {
    Atomics.store(this.i32, CONTROL.THROTTLE, ppm);
  }

  get rng(): RngState {
    const r = CONTROL.RNG;
    return [0, 1, 2, 3].map((i) => Atomics.load(this.i32, r + i) >>> 0) as RngState;
  }

  get cursor(): number {
    return Number(Atomics.load(this.i64, CONTROL.CURSOR));
  }

  get touches(): number {
    return Number(Atomics.load(this.i64, CONTROL.TOUCHES));
  }

  /** Only while no worker runs. */
  setPosition(rng: RngState, cursor: number, touches: number): void {
    for (let i = 0; i < 4; i++) Atomics.store(this.i32, CONTROL.RNG + i, rng[i] | 0);
    Atomics.store(this.i64, CONTROL.CURSOR, BigInt(cursor));
    Atomics.store(this.i64, CONTROL.TOUCHES, BigInt(touches));
  }
}
