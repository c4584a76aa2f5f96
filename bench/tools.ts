/**
 * External tools the benchmark compares against (iperf3, QEMU): found on PATH, or installed
 * with Debian's apt-get when missing and we run as root. Otherwise the caller gets the
 * reason, to print where the rows would have been.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { findExecutable } from '../lib/qemu/process';

export type Tool = { path: string; installed: boolean } | { path: null; reason: string };

const APT_TIMEOUT_MS = 15 * 60_000;
const OUTPUT_KEEP = 4 * 1024;

/** `apt-get update` runs once per process, before the first install. */
let aptUpdated: Promise<void> | null = null;

/** Runs apt-get with the given arguments; rejects with the end of its output on failure. */
function aptGet(args: string[], log: (s: string) => void): Promise<void> {
  log(`apt-get ${args.join(' ')}`);
  return new Promise<void>((resolve, reject) => {
    const child = spawn('apt-get', args, {
      // stdout and stderr kept, not shown: the bench's stdout is its table.
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    let out = '';
    const keep = (d: Buffer) => {
      out = (out + d.toString('utf8')).slice(-OUTPUT_KEEP);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => child.kill('SIGKILL'), APT_TIMEOUT_MS);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`apt-get: ${err.message}`));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`apt-get ${args.join(' ')} failed (${signal ? `signal ${signal}` : `exit code ${code}`}): ${out.trim().split('\n').slice(-5).join(' | ')}`));
    });
  });
}

/**
 * The path of `binary`; when it is missing, installs Debian package `pkg` (`apt-get update`
 * once, then `apt-get install -y --no-install-recommends pkg`) if this process is root and
 * apt-get exists. Never throws: a failure comes back as `{ path: null, reason }`.
 */
export async function ensureDebianPackage(binary: string, pkg: string, log: (s: string) => void): Promise<Tool> {
  const found = findExecutable(binary);
  if (found) return { path: found, installed: false };
  const manual = `install it with: sudo apt-get update && sudo apt-get install -y ${pkg}`;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    return { path: null, reason: `${binary} is not on PATH and this is not root; ${manual}` };
  }
  if (!findExecutable('apt-get')) return { path: null, reason: `${binary} is not on PATH and there is no apt-get (not Debian); install package ${pkg} or its equivalent` };
  try {
    aptUpdated ??= aptGet(['update'], log);
    await aptUpdated;
  } catch (err) {
    aptUpdated = null; // a later call may try again
    return { path: null, reason: `${binary} is missing and ${(err as Error).message}` };
  }
  try {
    await aptGet(['install', '-y', '--no-install-recommends', pkg], log);
  } catch (err) {
    return { path: null, reason: `${binary} is missing and ${(err as Error).message}` };
  }
  // Debian installs into /usr/bin, which a minimal PATH may lack.
  const after = findExecutable(binary) ?? (existsSync(`/usr/bin/${binary}`) ? `/usr/bin/${binary}` : null);
  return after ? { path: after, installed: true } : { path: null, reason: `apt-get installed ${pkg} but ${binary} is still not found` };
}
