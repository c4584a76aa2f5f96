/**
 * Helpers for the CLI tests: the real `multifd` command in child processes (bin/multifd.mjs
 * under this Node), its ndjson stdout parsed line by line, and a registry so every process
 * a test started is killed afterwards, whatever happened.
 */
import { handshake, rawConnect as connectAndWrite } from '../../lib/engine/test-support';
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (bin/multifd.mjs is resolved from here). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** One parsed ndjson line: every line has at least these. */
export interface Line {
  type: string;
  time: number;
  [key: string]: unknown;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const live = new Set<ChildProcess>();

/** SIGKILLs every process still running that a helper here started. */
export function killAll(): void {
  for (const c of live) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
  live.clear();
}

// Last resort: the runner exiting (even on an uncaught error) takes its children along.
process.once('exit', killAll);

export class Cli {
  readonly child: ChildProcess;
  readonly args: string[];
  /** Parsed stdout lines, in order. */
  readonly lines: Line[] = [];
  /** stdout lines that are not a JSON object with `type` and `time`. */
  readonly badLines: string[] = [];
  stderr = '';
  readonly exited: Promise<Exit>;
  private partial = '';
  private readonly waiters = new Set<() => void>();

  /** `wrap`: a command that runs ours, e.g. ['ip', 'netns', 'exec', 'mfd-a'] (it must exec it). */
  constructor(args: string[], wrap: readonly string[] = []) {
    this.args = args;
    const argv = [process.execPath, 'bin/multifd.mjs', ...args];
    const [cmd, ...rest] = [...wrap, ...argv];
    this.child = spawn(cmd, rest, {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1' },
    });
    live.add(this.child);
    this.child.stdout!.setEncoding('utf8');
    this.child.stderr!.setEncoding('utf8');
    this.child.stdout!.on('data', (s: string) => this.onStdout(s));
    this.child.stderr!.on('data', (s: string) => (this.stderr += s));
    this.exited = new Promise<Exit>((resolve) => {
      this.child.once('error', () => resolve({ code: null, signal: null }));
      // 'close': the exit and the end of stdout/stderr, so every line has been seen.
      this.child.once('close', (code, signal) => {
        live.delete(this.child);
        if (this.partial) this.onLine(this.partial);
        this.partial = '';
        resolve({ code, signal });
        this.wake();
      });
    });
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Lines that are migration events (they carry a `role`), not the CLI's own lines. */
  get events(): Line[] {
    return this.lines.filter((l) => typeof l.role === 'string');
  }

  private onStdout(s: string): void {
    const parts = (this.partial + s).split('\n');
    this.partial = parts.pop()!;
    for (const p of parts) this.onLine(p);
    this.wake();
  }

  private onLine(raw: string): void {
    if (raw.trim() === '') return;
    try {
      const v = JSON.parse(raw) as unknown;
      if (v && typeof v === 'object' && !Array.isArray(v) && typeof (v as Line).type === 'string' && typeof (v as Line).time === 'number') {
        this.lines.push(v as Line);
        return;
      }
    } catch {
      // recorded below
    }
    this.badLines.push(raw);
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** The first line (from the start) that satisfies `pred`; fails after `ms` or on exit. */
  waitFor(pred: (l: Line) => boolean, ms: number, what = 'a matching line'): Promise<Line> {
    return new Promise<Line>((resolve, reject) => {
      const check = () => {
        const l = this.lines.find(pred);
        if (l) {
          done();
          resolve(l);
        } else if (!this.alive && this.child.stdout!.readableEnded) {
          done();
          reject(new Error(`${what}: the process ended first (${this.describe()})`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${what}: none within ${ms} ms (${this.describe()})`));
      }, ms);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Waits for the exit; SIGKILLs the process and fails if it takes longer than `ms`. */
  async exit(ms: number): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.kill();
        reject(new Error(`still running after ${ms} ms (${this.describe()})`));
      }, ms);
    });
    try {
      return await Promise.race([this.exited, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.alive) this.child.kill(signal);
  }

  /** For failure messages: the command, stderr, and the last lines of stdout. */
  describe(): string {
    const tail = this.lines
      .filter((l) => l.type !== 'progress')
      .slice(-6)
      .map((l) => JSON.stringify(l).slice(0, 300));
    return `multifd ${this.args.join(' ')}; exit ${this.child.exitCode ?? this.child.signalCode ?? 'pending'}; stderr: ${JSON.stringify(this.stderr.slice(-800))}; last lines: ${tail.join(' | ')}`;
  }
}

/** Starts `multifd ...args`. */
export function start(args: string[], wrap: readonly string[] = []): Cli {
  return new Cli(args, wrap);
}

/** Runs `multifd ...args` to its end (SIGKILLed and failed after `ms`). */
export async function run(args: string[], ms: number): Promise<{ cli: Cli; exit: Exit; durationMs: number }> {
  const t0 = Date.now();
  const cli = new Cli(args);
  const exit = await cli.exit(ms);
  return { cli, exit, durationMs: Date.now() - t0 };
}

/** A destination on 127.0.0.1, port 0, ndjson: started and its port read from the first line. */
export async function startDest(extra: string[], ms = 10_000): Promise<{ cli: Cli; port: number; address: string }> {
  const cli = start(['dest', '--listen', '127.0.0.1:0', '--events', 'ndjson', ...extra]);
  const first = await cli.waitFor(() => true, ms, 'the listening line');
  if (first.type !== 'listening' || typeof first.address !== 'string') {
    cli.kill();
    throw new Error(`first line is not {"type":"listening"}: ${JSON.stringify(first)}`);
  }
  const m = /^127\.0\.0\.1:(\d+)$/.exec(first.address);
  if (!m || Number(m[1]) === 0) {
    cli.kill();
    throw new Error(`listening on an unexpected address: ${first.address}`);
  }
  return { cli, port: Number(m[1]), address: first.address };
}

/** A loopback port nothing listens on (bound to 0, then closed). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}


const sockets = new Set<net.Socket>();

/** Connects to 127.0.0.1:port, writes `bytes` (then closes our side if `end`). */
export async function rawConnect(port: number, bytes: Uint8Array, end = false): Promise<net.Socket> {
  const s = await connectAndWrite(port, bytes, end);
  sockets.add(s);
  s.once('close', () => sockets.delete(s));
  return s;
}

/** Destroys every raw socket still open. */
export function closeSockets(): void {
  for (const s of sockets) s.destroy();
  sockets.clear();
}

/** A stack trace line as V8 prints it: "    at fn (file:line:col)". */
export const STACK_LINE = /^\s+at .+:\d+:\d+\)?$/m;

export { handshake };
