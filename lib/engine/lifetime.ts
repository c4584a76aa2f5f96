/**
 * Everything a migration starts — timers, sockets, cleanups — is registered here, so that
 * one call releases all of it on every path, failure and cancel included.
 */
import type { Socket } from 'node:net';

export class Deferred<T> {
  readonly promise: Promise<T>;
  resolve!: (v: T) => void;
  reject!: (e: unknown) => void;
  settled = false;
  constructor() {
    this.promise = new Promise<T>((res, rej) => {
      this.resolve = (v) => {
        if (this.settled) return;
        this.settled = true;
        res(v);
      };
      this.reject = (e) => {
        if (this.settled) return;
        this.settled = true;
        rej(e);
      };
    });
    // A rejection nobody awaited yet must not become an unhandled rejection.
    this.promise.catch(() => {});
  }
}

export class Lifetime {
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly sockets = new Set<Socket>();
  private readonly cleanups: Array<() => void> = [];
  private readonly ended = new Deferred<never>();
  private reason: unknown = null;
  private done = false;

  get isEnded(): boolean {
    return this.done;
  }

  timeout(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
    return t;
  }

  interval(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setInterval(fn, ms);
    this.timers.add(t);
    return t;
  }

  clear(t: NodeJS.Timeout | null | undefined): void {
    if (!t) return;
    clearTimeout(t);
    this.timers.delete(t);
  }

  socket<S extends Socket>(s: S): S {
    if (this.done) {
      s.destroy();
      return s;
    }
    this.sockets.add(s);
    s.once('close', () => this.sockets.delete(s));
    return s;
  }

  /** Stops tracking a socket: its owner ends it gracefully (e.g. after a last frame). */
  release(s: Socket): void {
    this.sockets.delete(s);
  }

  defer(fn: () => void): void {
    if (this.done) fn();
    else this.cleanups.push(fn);
  }

  /** Resolves with p, or rejects with the end reason if the lifetime ends first. */
  until<T>(p: Promise<T>): Promise<T> {
    return Promise.race([p, this.ended.promise]);
  }

  sleep(ms: number): Promise<void> {
    return this.until(new Promise<void>((res) => this.timeout(ms, res)));
  }

  /** Releases everything, once. Awaiters of until() get `reason`. */
  end(reason: unknown): void {
    if (this.done) return;
    this.done = true;
    this.reason = reason;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    for (const fn of this.cleanups.splice(0)) {
      try {
        fn();
      } catch {
        // cleanup is best effort; the first error already decided the outcome
      }
    }
    this.ended.reject(reason);
  }

  get endReason(): unknown {
    return this.reason;
  }
}
