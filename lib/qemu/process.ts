/**
 * Running real QEMU processes for benchmarks, tests and relays: spawn with arguments, wait
 * for the QMP socket, stop with a bounded wait, and the file-backed guest RAM in /dev/shm
 * that lets us read a guest's memory from outside (memory-backend-file, share=on).
 *
 * Everything started or created here is also kept in a module-wide registry so that a
 * signal or exit handler can end it synchronously with `cleanupAllNow()`: a QEMU left
 * behind keeps gigabytes of /dev/shm and a CPU.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomFill } from 'node:crypto';
import { accessSync, constants as fsConstants, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** crypto.randomFill as a promise (promisify picks the wrong overload for the types). */
function randomFillAsync(buf: Buffer, offset: number, size: number): Promise<void> {
  return new Promise((resolve, reject) => randomFill(buf, offset, size, (err) => (err ? reject(err) : resolve())));
}

export const QEMU_X86_64 = 'qemu-system-x86_64';

export interface QemuExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export const describeQemuExit = (e: QemuExit) => (e.signal ? `signal ${e.signal}` : `code ${e.code}`);

/** The first executable `name` on PATH (or `name` itself when it is a path), or null. */
export function findExecutable(name: string): string | null {
  const dirs = name.includes('/') ? [''] : (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
  for (const dir of dirs) {
    const p = dir ? path.join(dir, name) : name;
    try {
      accessSync(p, fsConstants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

// ---- registry, for signal and exit handlers -----------------------------------------------------

const liveProcesses = new Set<QemuProcess>();
const ownedPaths = new Set<string>();

/**
 * SIGKILLs every QEMU started here that still runs and removes every RAM file and temporary
 * directory created here and not removed yet. Synchronous, for `process.on('exit')` and
 * signal handlers.
 */
export function cleanupAllNow(): void {
  for (const p of liveProcesses) p.killNow();
  for (const p of ownedPaths) rmSync(p, { recursive: true, force: true });
  ownedPaths.clear();
}

/** Removes a file or directory created here (absent is fine) and forgets it. */
export function removePath(p: string): void {
  rmSync(p, { recursive: true, force: true });
  ownedPaths.delete(p);
}

/** A fresh private directory (for QMP sockets and the like), removed by cleanupAllNow too. */
export function makeTempDir(prefix = 'multifd-qemu-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  ownedPaths.add(dir);
  return dir;
}

// ---- processes ----------------------------------------------------------------------------------

const STDERR_KEEP = 8 * 1024;
const USER_HZ = 100; // Linux's clock ticks in /proc/PID/stat

export interface ProcessStats {
  cpuUserMs: number;
  cpuSystemMs: number;
  /** VmHWM: peak resident set, shared file pages (the guest RAM) included. */
  maxRssBytes: number;
}

export class QemuProcess {
  readonly proc: ChildProcess;
  readonly exited: Promise<QemuExit>;
  private exitInfo: QemuExit | null = null;
  private stderrTail = '';

  private constructor(
    readonly name: string,
    readonly binary: string,
    readonly args: readonly string[],
  ) {
    // stdout too: QEMU prints little there, but a full pipe would block it.
    this.proc = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    liveProcesses.add(this);
    const keep = (d: Buffer) => {
      this.stderrTail = (this.stderrTail + d.toString('utf8')).slice(-STDERR_KEEP);
    };
    this.proc.stdout!.on('data', keep);
    this.proc.stderr!.on('data', keep);
    this.exited = new Promise<QemuExit>((resolve) => {
      const done = (e: QemuExit) => {
        liveProcesses.delete(this);
        this.exitInfo ??= e;
        resolve(this.exitInfo);
      };
      this.proc.once('exit', (code, signal) => done({ code, signal }));
      // A spawn failure (ENOENT, EACCES) comes as 'error' without 'exit'.
      this.proc.once('error', (err) => {
        this.stderrTail += `\nspawn error: ${err.message}`;
        done({ code: null, signal: null });
      });
    });
  }

  static spawn(name: string, binary: string, args: readonly string[]): QemuProcess {
    return new QemuProcess(name, binary, args);
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  get alive(): boolean {
    return this.exitInfo === null;
  }

  get exit(): QemuExit | null {
    return this.exitInfo;
  }

  /** What QEMU wrote (stdout and stderr, the last 8 KiB), trimmed. */
  get output(): string {
    return this.stderrTail.trim();
  }

  /** For error messages: the command and the end of its output. */
  describe(): string {
    const out = this.output;
    return `${this.name} (${this.binary} ${this.args.join(' ')})${out ? `\n--- ${this.name} output (tail) ---\n${out.split('\n').slice(-15).join('\n')}` : ''}`;
  }

  /** CPU and peak RSS from /proc (Linux, while it runs); null otherwise. */
  stats(): ProcessStats | null {
    if (!this.alive || this.pid === undefined) return null;
    try {
      // Fields after the command name, which is in parentheses and may hold spaces.
      const stat = readFileSync(`/proc/${this.pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
      const hwm = /^VmHWM:\s+(\d+) kB/m.exec(status);
      return {
        cpuUserMs: (Number(fields[11]) * 1000) / USER_HZ,
        cpuSystemMs: (Number(fields[12]) * 1000) / USER_HZ,
        maxRssBytes: hwm ? Number(hwm[1]) * 1024 : 0,
      };
    } catch {
      return null;
    }
  }

  /** SIGKILL now, without waiting (exit handlers). */
  killNow(): void {
    if (this.alive) this.proc.kill('SIGKILL');
  }

  /**
   * SIGTERM (QEMU exits cleanly on it), SIGKILL after `graceMs`, then waits at most
   * `killWaitMs` more. Resolves with the exit; rejects only if even SIGKILL did not end it
   * in time (a process stuck in the kernel).
   */
  async stop(graceMs = 3000, killWaitMs = 5000): Promise<QemuExit> {
    if (!this.alive) return this.exitInfo!;
    this.proc.kill('SIGTERM');
    if (await this.exitsWithin(graceMs)) return this.exitInfo!;
    this.proc.kill('SIGKILL');
    if (await this.exitsWithin(killWaitMs)) return this.exitInfo!;
    throw new Error(`${this.name} (pid ${this.pid}) still runs ${killWaitMs} ms after SIGKILL`);
  }

  private async exitsWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    });
    try {
      return await Promise.race([this.exited.then(() => true), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * Resolves when `socketPath` exists as a socket. Rejects when `proc` exits first (with its
 * output, which says why: a bad option, a busy file) or after `timeoutMs`.
 */
export async function waitForSocket(socketPath: string, timeoutMs: number, proc?: QemuProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc && !proc.alive) throw new Error(`${proc.name} exited (${describeQemuExit(proc.exit!)}) before creating ${socketPath}: ${proc.describe()}`);
    try {
      if ((await stat(socketPath)).isSocket()) return;
    } catch {
      // not there yet
    }
    if (Date.now() >= deadline) throw new Error(`${socketPath} did not appear within ${timeoutMs} ms${proc ? `: ${proc.describe()}` : ''}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ---- guest RAM files ------------------------------------------------------------------------------

const FILL_CHUNK = 16 * 1024 * 1024;

/**
 * Creates `filePath` (removing what was there) of `bytes` bytes: 'random' writes fresh
 * random bytes throughout, so no page is zero (QEMU would send a zero page as a flag, not
 * data) and no two pages are alike; 'zero' only sets the size (a sparse tmpfs file, for a
 * destination). Registered for cleanupAllNow; remove it with removePath.
 */
export async function createRamFile(filePath: string, bytes: number, fill: 'random' | 'zero'): Promise<void> {
  if (!Number.isSafeInteger(bytes) || bytes <= 0 || bytes % 4096 !== 0) throw new RangeError(`RAM size must be a positive multiple of 4 KiB, got ${bytes}`);
  rmSync(filePath, { force: true });
  ownedPaths.add(filePath);
  const fh = await open(filePath, 'wx', 0o600);
  try {
    await fh.truncate(bytes);
    if (fill === 'random') {
      const chunk = Buffer.allocUnsafe(Math.min(FILL_CHUNK, bytes));
      for (let off = 0; off < bytes; off += chunk.length) {
        const n = Math.min(chunk.length, bytes - off);
        // randomFill runs in libuv's pool: the event loop (signal handlers) stays free.
        await randomFillAsync(chunk, 0, n);
        await fh.write(chunk, 0, n, off);
      }
    }
  } catch (err) {
    await fh.close().catch(() => undefined);
    removePath(filePath);
    throw err;
  }
  await fh.close();
}

export interface PausedGuestOptions {
  /** memory-backend-file path (in /dev/shm for speed), created beforehand with createRamFile. */
  ramPath: string;
  ramBytes: number;
  qmpSocket: string;
  /** Both sides of a multifd migration must share it: QEMU checks it in every channel's handshake. */
  uuid: string;
  name: string;
  /** 'defer' for a destination (then migrate-incoming over QMP). */
  incoming?: string;
  /** The machine type (default 'none': no CPU, no device); its RAM is the backend either way. */
  machine?: string;
  /** More arguments, e.g. ['-device', 'VGA']. */
  extra?: readonly string[];
}

/**
 * QEMU arguments for a guest with no devices and no CPU running (`-S`, `-machine none`)
 * whose only memory is the shared RAM file: its RAM never changes, and after a migration
 * the destination's file holds exactly what arrived.
 */
export function pausedGuestArgs(o: PausedGuestOptions): string[] {
  if (o.ramBytes % (1024 * 1024) !== 0) throw new RangeError(`QEMU -m needs a whole number of MiB, got ${o.ramBytes} bytes`);
  // QEMU's option syntax splits on commas; a path holding one would be misread.
  for (const p of [o.ramPath, o.qmpSocket]) if (p.includes(',')) throw new RangeError(`path for QEMU must not contain a comma: ${p}`);
  const args = [
    '-nodefaults', '-display', 'none', '-S', '-accel', 'tcg',
    '-machine', `${o.machine ?? 'none'},memory-backend=mem`,
    '-m', `${o.ramBytes / (1024 * 1024)}M`,
    '-object', `memory-backend-file,id=mem,size=${o.ramBytes},mem-path=${o.ramPath},share=on`,
    '-qmp', `unix:${o.qmpSocket},server=on,wait=off`,
    '-name', o.name,
    '-uuid', o.uuid,
  ];
  if (o.extra) args.push(...o.extra);
  if (o.incoming) args.push('-incoming', o.incoming);
  return args;
}
