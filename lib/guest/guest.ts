/**
 * The built-in guest (DESIGN 5): RAM blocks, a workload worker that writes into them and
 * marks their dirty bitmaps, and a device state that lets the workload carry on after a
 * migration.
 *
 *   created ──start()──▶ running ◀──resume()── paused
 *      │                    └──────pause()──────▶ ▲
 *      └──────────pause() / resumeFrom(ds)────────┘ (resumeFrom goes to running)
 *   any ──stop()──▶ stopped (final)
 *
 * Thread ownership: RAM and dirty bitmaps are written by the worker while running; the
 * control block (control.ts) carries commands and the workload's position. An idle
 * workload has no worker at all, so an idle guest's RAM cannot change.
 *
 * start/pause/resume/resumeFrom/stop run one at a time, in call order.
 */
import { reclaimReleasedRam } from './reclaim';
import { getRandomValues } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { v4 as uuidv4 } from 'uuid';
import { ConfigInvalidError, InternalError } from '../errors/index';
import { PAGE_SIZE } from '../protocol/constants';
import { CONTROL, ControlBlock } from './control';
import { decodeDeviceState, encodeDeviceState, type RngState } from './device';
import { fillRandom, fillText } from './fill';

export const GUEST_FILLS = ['random', 'zero', 'text', 'mixed'] as const;
export type GuestFill = (typeof GUEST_FILLS)[number];
import { allocateBlocks, type RamBlock, type RamBlockSpec } from './ram';
import { MiB } from './units';
import { formatWorkload, IDLE, validateWorkload, type Workload } from './workload';

export type GuestState = 'created' | 'running' | 'paused' | 'stopped';

export interface GuestOptions {
  uuid?: string;
  name?: string;
  blocks?: RamBlockSpec[];
  /** One block named 'pc.ram' of this size when `blocks` is not given (default 64 MiB). */
  ramSize?: number;
  /**
   * Initial RAM contents; default 'random' (incompressible). 'text': every page text-like
   * (compresses several times over); 'mixed': alternate runs of 16 random and 16 text pages.
   */
  fill?: GuestFill;
  /** Default idle. */
  workload?: Workload;
  /** Seeds the workload's RNG (which pages it picks, what it writes); default random. */
  seed?: number;
}

export interface GuestStats {
  state: GuestState;
  workload: string;
  bytesDirtied: number;
  dirtyPages: number;
}

export const DEFAULT_RAM_SIZE = 64 * MiB;
export const DEFAULT_BLOCK_NAME = 'pc.ram';
export const DEFAULT_GUEST_NAME = 'guest';
/** How long pause() and start() wait for the worker before giving up. */
export const WORKER_ACK_TIMEOUT_MS = 5000;
/** The most the vCPU can be throttled: QEMU's max-cpu-throttle default, 99%. */
export const MAX_THROTTLE = 0.99;

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const NIL_UUID = '00000000-0000-0000-0000-000000000000';

type WaitAsync = (
  ta: Int32Array,
  index: number,
  value: number,
  timeout?: number,
) => { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

export class Guest {
  readonly uuid: string;
  readonly name: string;
  readonly blocks: RamBlock[];
  readonly ramSize: number;
  readonly pageCount: number;

  #state: GuestState = 'created';
  #workload: Workload;
  readonly #ctrl = new ControlBlock();
  readonly #byName: Map<string, RamBlock>;
  #worker: Worker | null = null;
  /** Resolves when the current worker has exited. */
  #workerGone: Promise<void> = Promise.resolve();
  #lastError: Error | null = null;
  #resolveStopped!: () => void;
  readonly #stopped = new Promise<void>((resolve) => {
    this.#resolveStopped = resolve;
  });
  /** Tail of the queue of lifecycle operations. */
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(uuid: string, name: string, blocks: RamBlock[], workload: Workload, rng: RngState) {
    this.uuid = uuid;
    this.name = name;
    this.blocks = blocks;
    this.ramSize = blocks.reduce((n, b) => n + b.size, 0);
    this.pageCount = this.ramSize / PAGE_SIZE;
    this.#byName = new Map(blocks.map((b) => [b.name, b]));
    this.#workload = validateWorkload(workload, this.ramSize);
    this.#ctrl.setWorkload(this.#workload);
    this.#ctrl.setPosition(rng, 0, 0);
  }

  /** A source guest: RAM filled (random by default), not yet running. */
  static async create(opts: GuestOptions = {}): Promise<Guest> {
    if (!opts || typeof opts !== 'object') throw new ConfigInvalidError('expected guest options');
    const uuid = opts.uuid === undefined ? uuidv4() : checkUuid(opts.uuid);
    const name = checkName(opts.name);
    const specs = layout(opts);
    const fill = opts.fill ?? 'random';
    if (!GUEST_FILLS.includes(fill)) {
      throw new ConfigInvalidError(`guest fill must be one of ${GUEST_FILLS.join(', ')}, received '${String(fill)}'`, {
        expected: GUEST_FILLS.join(', '),
        received: String(fill),
      });
    }
    const ramSize = specs.reduce((n, s) => n + s.size, 0);
    const workload = validateWorkload(opts.workload ?? IDLE, ramSize);
    const rng = opts.seed === undefined ? randomRng() : seedRng(opts.seed);
    const blocks = allocateBlocks(specs);
    if (fill === 'random' || fill === 'mixed') await fillRandom(blocks);
    if (fill === 'text') fillText(blocks);
    if (fill === 'mixed') fillText(blocks, (p) => ((p >> 4) & 1) === 1);
    return new Guest(uuid, name, blocks, workload, rng);
  }

  /** Destination side: a guest of the given shape with zeroed RAM, not running, to receive pages into. */
  static incoming(opts: { uuid: string; name?: string; blocks: RamBlockSpec[] }): Guest {
    if (!opts || typeof opts !== 'object') throw new ConfigInvalidError('expected incoming guest options');
    if (opts.uuid === undefined) throw new ConfigInvalidError('an incoming guest needs the uuid of the migration');
    const uuid = checkUuid(opts.uuid);
    const name = checkName(opts.name);
    return new Guest(uuid, name, allocateBlocks(opts.blocks), IDLE, randomRng());
  }

  get state(): GuestState {
    return this.#state;
  }

  get workload(): Workload {
    return this.#workload;
  }

  /** Takes effect at once when running (a worker is started if there was none). */
  set workload(w: Workload) {
    if (this.#state === 'stopped') throw new InternalError('guest is stopped');
    this.#workload = validateWorkload(w, this.ramSize);
    this.#ctrl.setWorkload(this.#workload);
    if (this.#state === 'running' && this.#workload.kind !== 'idle') {
      this.#enqueue(async () => {
        if (this.#state === 'running') await this.#ensureWorker();
      }).catch((err: unknown) => {
        this.#lastError = err as Error;
      });
    }
  }

  /**
   * The vCPU throttle (auto-converge): the share of time, 0..MAX_THROTTLE, the workload is
   * kept from running (workload-worker.mjs). Not part of the device state: it belongs to
   * the host that applies it, so a migrated guest runs at full speed where it arrives.
   */
  get throttle(): number {
    return this.#ctrl.throttlePpm / 1e6;
  }

  /** Takes effect within one throttle period (10 ms); any state, stopped included. */
  set throttle(fraction: number) {
    if (typeof fraction !== 'number' || !(fraction >= 0 && fraction <= MAX_THROTTLE)) {
      throw new ConfigInvalidError(`guest throttle must be from 0 to ${MAX_THROTTLE}, received ${String(fraction)}`, {
        expected: `0..${MAX_THROTTLE}`,
        received: String(fraction),
      });
    }
    this.#ctrl.throttlePpm = Math.round(fraction * 1e6);
  }

  /** The last worker failure (crash, failed start, missed pause acknowledgement), or null. */
  get lastError(): Error | null {
    return this.#lastError;
  }

  block(name: string): RamBlock | undefined {
    return this.#byName.get(name);
  }

  /** Starts the workload. From 'paused' it is the same as resume(). */
  start(): Promise<void> {
    return this.#enqueue(() => this.#run());
  }

  /**
   * Stops the workload writing. Resolves once the worker has acknowledged, so every write
   * made before is in RAM and marked dirty. Returns the device state.
   */
  pause(): Promise<Uint8Array> {
    return this.#enqueue(async () => {
      this.#assertNotStopped('pause');
      if (this.#state === 'running') await this.#pauseWorker();
      this.#state = 'paused';
      return this.deviceState();
    });
  }

  /** Carries on after a failed migration, from where it was. */
  resume(): Promise<void> {
    return this.#enqueue(() => this.#run());
  }

  /** Destination: runs the workload from a device state received from the source. */
  resumeFrom(deviceState: Uint8Array): Promise<void> {
    return this.#enqueue(async () => {
      this.#assertNotStopped('resumeFrom');
      if (this.#state === 'running') throw new InternalError('resumeFrom() on a guest that is already running');
      const ds = decodeDeviceState(deviceState);
      if (ds.ramSize !== this.ramSize) {
        throw new ConfigInvalidError(
          `device state is for a guest of ${ds.ramSize} bytes of RAM, this guest has ${this.ramSize}`,
          { expected: String(this.ramSize), received: String(ds.ramSize) },
        );
      }
      // A worker left from before would carry its own position: replace it.
      await this.#killWorker();
      this.#workload = ds.workload;
      this.#ctrl.setWorkload(ds.workload);
      this.#ctrl.setPosition(ds.rng, ds.cursor, ds.bytesDirtied / PAGE_SIZE);
      await this.#run();
    });
  }

  /** The device state; only while the workload cannot move (not running, or idle). */
  deviceState(): Uint8Array {
    if (this.#state === 'running' && this.#worker !== null && this.#workload.kind !== 'idle') {
      throw new InternalError('deviceState() needs a paused guest: pause() first');
    }
    return encodeDeviceState({
      workload: this.#workload,
      ramSize: this.ramSize,
      rng: this.#ctrl.rng,
      cursor: this.#ctrl.cursor % this.pageCount,
      bytesDirtied: this.#ctrl.touches * PAGE_SIZE,
    });
  }

  /** Terminates the worker and releases it; idempotent. The guest cannot run again. */
  stop(): Promise<void> {
    if (this.#state === 'stopped') return this.#queue.then(() => undefined);
    return this.#enqueue(async () => {
      if (this.#state === 'stopped') return;
      this.#state = 'stopped';
      await this.#killWorker();
      this.#resolveStopped();
      // Its RAM goes back to the host once nothing holds the guest (lib/guest/reclaim.ts).
      reclaimReleasedRam();
    });
  }

  /** Resolves once the guest has stopped (whoever stopped it). */
  get stopped(): Promise<void> {
    return this.#stopped;
  }

  stats(): GuestStats {
    let dirtyPages = 0;
    for (const b of this.blocks) dirtyPages += b.dirty.count();
    return {
      state: this.#state,
      workload: formatWorkload(this.#workload),
      bytesDirtied: this.#ctrl.touches * PAGE_SIZE,
      dirtyPages,
    };
  }

  // --- internals ------------------------------------------------------------------------

  #enqueue<T>(op: () => Promise<T>): Promise<T> {
    const result = this.#queue.then(op);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  #assertNotStopped(what: string): void {
    if (this.#state === 'stopped') throw new InternalError(`${what}() on a stopped guest`);
  }

  async #run(): Promise<void> {
    this.#assertNotStopped('start');
    if (this.#state === 'running') return;
    if (this.#workload.kind !== 'idle') await this.#ensureWorker();
    this.#state = 'running';
  }

  /** Makes the worker run: wakes a paused one, or spawns one and waits until it is in its loop. */
  async #ensureWorker(): Promise<void> {
    if (this.#worker) {
      this.#ctrl.command(CONTROL.RUN);
      return;
    }
    const ctrl = this.#ctrl;
    Atomics.store(ctrl.i32, CONTROL.READY, 0);
    ctrl.command(CONTROL.RUN);
    const worker = new Worker(new URL('./workload-worker.mjs', import.meta.url), {
      // Plain JS: none of the parent's flags (a TS loader, --input-type, ...) apply to it.
      execArgv: [],
      workerData: {
        blocks: this.blocks.map((b) => ({ sab: b.sab, dirtySab: b.dirty.sab, pages: b.pages })),
        ctrl: ctrl.sab,
        layout: CONTROL,
      },
    });
    this.#worker = worker;
    this.#workerGone = new Promise<void>((resolve) => {
      worker.on('error', (err) => {
        this.#lastError = new InternalError(`workload worker failed: ${err.message}`, { cause: err });
      });
      worker.once('exit', () => {
        if (this.#worker === worker) this.#worker = null;
        resolve();
      });
    });
    const ready = await waitFor(ctrl.i32, CONTROL.READY, (v) => v === 1, WORKER_ACK_TIMEOUT_MS, this.#workerGone);
    if (!ready) {
      const why = this.#lastError?.message ?? `no sign of life within ${WORKER_ACK_TIMEOUT_MS} ms`;
      await this.#killWorker();
      throw new InternalError(`workload worker did not start: ${why}`);
    }
  }

  async #pauseWorker(): Promise<void> {
    if (!this.#worker) return;
    this.#ctrl.command(CONTROL.PAUSE);
    const acked = await waitFor(
      this.#ctrl.i32,
      CONTROL.CMD,
      (v) => v === CONTROL.PAUSED,
      WORKER_ACK_TIMEOUT_MS,
      this.#workerGone,
    );
    // A worker that exited cannot write either.
    if (acked || !this.#worker) return;
    // It may be mid-write with its dirty bit not yet set: no pause can be promised.
    const err = new InternalError(`workload worker did not acknowledge pause within ${WORKER_ACK_TIMEOUT_MS} ms`);
    this.#lastError = err;
    await this.#killWorker();
    throw err;
  }

  async #killWorker(): Promise<void> {
    const worker = this.#worker;
    if (!worker) return;
    this.#ctrl.command(CONTROL.STOP);
    await worker.terminate();
    await this.#workerGone;
    if (this.#worker === worker) this.#worker = null;
  }
}

/**
 * Waits until pred(i32[index]) holds, `abort` settles, or the timeout passes; returns
 * whether pred holds at the end. A ref'd timer keeps the process alive meanwhile
 * (a pending Atomics.waitAsync does not).
 */
async function waitFor(
  i32: Int32Array,
  index: number,
  pred: (v: number) => boolean,
  timeoutMs: number,
  abort: Promise<void>,
): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  const aborted = abort.then(() => 'abort' as const);
  try {
    for (;;) {
      const v = Atomics.load(i32, index);
      if (pred(v)) return true;
      const w = waitAsync(i32, index, v, timeoutMs);
      if (!w.async) continue;
      const outcome = await Promise.race([w.value, timedOut, aborted]);
      if (outcome === 'timeout' || outcome === 'abort') return pred(Atomics.load(i32, index));
    }
  } finally {
    clearTimeout(timer);
  }
}

function checkUuid(uuid: string): string {
  if (typeof uuid !== 'string' || !UUID_RE.test(uuid)) {
    throw new ConfigInvalidError(`guest uuid must look like 7c9e6679-7425-40de-944b-e07fc1f90ae7, received '${String(uuid)}'`, {
      expected: 'a UUID (8-4-4-4-12 hex digits)',
      received: String(uuid),
    });
  }
  const lower = uuid.toLowerCase();
  if (lower === NIL_UUID) {
    throw new ConfigInvalidError('guest uuid must not be all zeros', { expected: 'a non-nil UUID', received: uuid });
  }
  return lower;
}

function checkName(name: string | undefined): string {
  if (name === undefined) return DEFAULT_GUEST_NAME;
  if (typeof name !== 'string' || name.length === 0) {
    throw new ConfigInvalidError(`guest name must be a non-empty string, received ${JSON.stringify(name)}`);
  }
  return name;
}

function layout(opts: GuestOptions): RamBlockSpec[] {
  const { blocks, ramSize } = opts;
  if (ramSize !== undefined && (typeof ramSize !== 'number' || !Number.isSafeInteger(ramSize) || ramSize <= 0 || ramSize % PAGE_SIZE !== 0)) {
    throw new ConfigInvalidError(`guest RAM size must be a positive multiple of ${PAGE_SIZE} bytes, received ${String(ramSize)}`, {
      expected: `a positive multiple of ${PAGE_SIZE}`,
      received: String(ramSize),
    });
  }
  if (blocks === undefined) return [{ name: DEFAULT_BLOCK_NAME, size: ramSize ?? DEFAULT_RAM_SIZE }];
  if (!Array.isArray(blocks)) throw new ConfigInvalidError('guest blocks must be an array of {name, size}');
  const total = blocks.reduce((n, b) => n + (typeof b?.size === 'number' ? b.size : 0), 0);
  if (ramSize !== undefined && ramSize !== total) {
    throw new ConfigInvalidError(`guest RAM size ${ramSize} does not match its blocks, which add up to ${total}`, {
      expected: String(total),
      received: String(ramSize),
    });
  }
  // allocateBlocks validates each one.
  return blocks.map((b) => ({ name: b?.name, size: b?.size }) as RamBlockSpec);
}

function randomRng(): RngState {
  const r = getRandomValues(new Uint32Array(4));
  if ((r[0] | r[1] | r[2] | r[3]) === 0) r[3] = 1;
  return [r[0], r[1], r[2], r[3]];
}

/** splitmix32 expansion of a seed into a non-zero xorshift128 state. */
export function seedRng(seed: number): RngState {
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) {
    throw new ConfigInvalidError(`guest seed must be an integer, received ${String(seed)}`, {
      expected: 'a safe integer',
      received: String(seed),
    });
  }
  let x = (seed ^ Math.floor(seed / 2 ** 32)) | 0;
  const out: number[] = [];
  for (let i = 0; i < 4; i++) {
    x = (x + 0x9e3779b9) | 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    z ^= z >>> 16;
    out.push(z >>> 0);
  }
  if ((out[0] | out[1] | out[2] | out[3]) === 0) out[3] = 1;
  return out as RngState;
}
