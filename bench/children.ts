/**
 * Child processes for the benchmark: each one's stdout read as ndjson, its stderr kept
 * (the tail, for error messages), and every one of them tracked so that any way out of
 * the benchmark (success, failure, timeout, Ctrl-C) ends them all.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export type Json = Record<string, unknown> & { type?: unknown; time?: unknown };

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const STDERR_KEEP = 8 * 1024;

export interface SpawnOptions {
  /**
   * What to run with `args` instead of node (process.execPath), e.g. `ip` for
   * `ip netns exec NS node ...`. Signals, exit status and stdout are this command's.
   */
  command?: string;
}

export class Child {
  readonly proc: ChildProcess;
  /** Every JSON line of stdout but `progress` events (counted instead). */
  readonly lines: Json[] = [];
  progressEvents = 0;
  /** The latest `progress` event: what a migration stopped short of its end had done. */
  lastProgress: Json | null = null;
  private stderrTail = '';
  private exitInfo: Exit | null = null;
  readonly exited: Promise<Exit>;
  private readonly waiters = new Set<() => void>();

  constructor(
    readonly name: string,
    args: string[],
    cwd: string,
    env: NodeJS.ProcessEnv = process.env,
    options: SpawnOptions = {},
  ) {
    this.proc = spawn(options.command ?? process.execPath, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise<Exit>((resolve) => {
      this.proc.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        this.wake();
        resolve(this.exitInfo);
      });
      // spawn failures (ENOENT, ...) come as 'error' without 'exit'.
      this.proc.once('error', (err) => {
        this.stderrTail += `\nspawn error: ${err.message}`;
        this.exitInfo ??= { code: null, signal: null };
        this.wake();
        resolve(this.exitInfo);
      });
    });
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      const t = line.trim();
      if (!t) return;
      let obj: Json;
      try {
        obj = JSON.parse(t) as Json;
      } catch {
        obj = { type: 'text', text: t };
      }
      if (obj.type === 'progress') {
        this.progressEvents++;
        this.lastProgress = obj;
      } else this.lines.push(obj);
      this.wake();
    });
    this.proc.stderr!.on('data', (d: Buffer) => {
      this.stderrTail = (this.stderrTail + d.toString('utf8')).slice(-STDERR_KEEP);
    });
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  get alive(): boolean {
    return this.exitInfo === null;
  }

  get stderr(): string {
    return this.stderrTail.trim();
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** The first stdout line matching `pred`; rejects on timeout or if the child exits first. */
  waitFor(pred: (o: Json) => boolean, timeoutMs: number, what: string): Promise<Json> {
    return new Promise<Json>((resolve, reject) => {
      const check = () => {
        const hit = this.lines.find(pred);
        if (hit) return done(() => resolve(hit));
        if (this.exitInfo) {
          return done(() => reject(new Error(`${this.name} exited (${describeExit(this.exitInfo!)}) before ${what}${this.stderrSuffix()}`)));
        }
      };
      const timer = setTimeout(() => done(() => reject(new Error(`${this.name}: no ${what} within ${timeoutMs} ms${this.stderrSuffix()}`))), timeoutMs);
      const done = (f: () => void) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        f();
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Resolves with the exit, or rejects after `timeoutMs` (the child is left to killAll). */
  async exit(timeoutMs: number): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.name} did not exit within ${timeoutMs} ms${this.stderrSuffix()}`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  stderrSuffix(): string {
    const s = this.stderr;
    return s ? `\n--- ${this.name} stderr (tail) ---\n${s.split('\n').slice(-15).join('\n')}` : '';
  }

  kill(signal: NodeJS.Signals): void {
    if (this.alive && this.proc.pid !== undefined) {
      try {
        this.proc.kill(signal);
      } catch {
        // already gone
      }
    }
  }
}

export function describeExit(e: Exit): string {
  return e.signal ? `signal ${e.signal}` : `code ${e.code}`;
}

/** Every child the benchmark started, so that each way out can end them. */
export class Children {
  private readonly all = new Set<Child>();

  constructor(private readonly cwd: string) {}

  /** Runs node with `args` (or `options.command`, see SpawnOptions), tracked until it exits. */
  spawn(name: string, args: string[], env?: NodeJS.ProcessEnv, options?: SpawnOptions): Child {
    const c = new Child(name, args, this.cwd, env, options);
    this.all.add(c);
    void c.exited.then(() => this.all.delete(c));
    return c;
  }

  get running(): Child[] {
    return [...this.all].filter((c) => c.alive);
  }

  /** SIGTERM, then SIGKILL for whoever is still there after `graceMs`. */
  async stopAll(graceMs = 3000): Promise<void> {
    const live = this.running;
    if (live.length === 0) return;
    for (const c of live) c.kill('SIGTERM');
    const timer = setTimeout(() => {
      for (const c of live) c.kill('SIGKILL');
    }, graceMs);
    await Promise.all(live.map((c) => c.exited));
    clearTimeout(timer);
  }

  /** Synchronous last resort (process 'exit' handler). */
  killAllNow(): void {
    for (const c of this.running) c.kill('SIGKILL');
  }
}
