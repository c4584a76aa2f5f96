/**
 * Installs what the project needs and is missing, using only Node's own modules (it runs
 * before node_modules exists): npm packages from the lock file, the console's production
 * Next.js build when its sources changed, and Debian's chromium (browser tests) and
 * qemu-system-x86 (tests against real QEMU) via apt-get.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed with exit code ${r.status ?? r.signal}`);
  }
}

/** npm ci when node_modules is absent or older than the lock file. */
export function ensureNodeModules() {
  const lock = path.join(root, 'package-lock.json');
  const stamp = path.join(root, 'node_modules', '.package-lock.json');
  if (existsSync(stamp) && statSync(stamp).mtimeMs >= statSync(lock).mtimeMs) return;
  console.error('[ensure] installing npm packages (npm ci)');
  run('npm', ['ci', '--no-audit', '--no-fund']);
}

export const CHROMIUM = '/usr/bin/chromium';
export const QEMU = '/usr/bin/qemu-system-x86_64';

let aptUpdated = false;

/**
 * A Debian package that provides `file`: apt-get (update once per run, then install) when
 * root, else the exact command to run, and exit.
 */
function ensureDebian(pkg, file, why) {
  if (existsSync(file)) return;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot) {
    console.error(`[ensure] ${file} (${why}) is missing and this is not root. Run:\n  sudo apt-get update && sudo apt-get install -y ${pkg}\nthen run the command again.`);
    process.exit(1);
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  console.error(`[ensure] installing Debian ${pkg} (apt-get)`);
  if (!aptUpdated) run('apt-get', ['update'], { env });
  aptUpdated = true;
  run('apt-get', ['install', '-y', '--no-install-recommends', pkg], { env });
}

/** Debian's chromium for Playwright. */
export function ensureChromium() {
  ensureDebian('chromium', CHROMIUM, 'for the browser tests');
}

/** Debian's QEMU 7.2, for the tests that migrate real QEMU guests. */
export function ensureQemu() {
  ensureDebian('qemu-system-x86', QEMU, 'for the tests against real QEMU');
}

/**
 * What the console's production build is made from: the pages, the contracts they import
 * (and lib/errors, which the contracts import), static files, Next's and TypeScript's config,
 * and the installed packages.
 */
const NEXT_INPUT_DIRS = ['app', 'lib/contracts', 'lib/errors', 'public'];
const NEXT_INPUT_FILES = ['tsconfig.json', 'package-lock.json'];

/**
 * Newest mtime (ms) under `dir`, recursively: of its files, and of the folders themselves (a
 * deleted or renamed file changes its folder's mtime). 0 when `dir` is absent.
 */
function newestUnder(dir) {
  let newest;
  let entries;
  try {
    newest = statSync(dir).mtimeMs;
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0; // absent
  }
  for (const e of entries) {
    if (e.name === 'node_modules') continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestUnder(p));
    else if (e.isFile()) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * Why `.next` must be (re)built, or null when it is up to date: no .next/BUILD_ID, or a
 * source of the build newer than it.
 */
export function nextBuildStaleReason() {
  const stamp = path.join(root, '.next', 'BUILD_ID');
  if (!existsSync(stamp)) return 'no production build yet (.next/BUILD_ID is missing)';
  const built = statSync(stamp).mtimeMs;
  const configs = readdirSync(root).filter((n) => /^next\.config\.[cm]?[jt]s$/.test(n));
  for (const f of [...NEXT_INPUT_FILES, ...configs]) {
    const p = path.join(root, f);
    if (existsSync(p) && statSync(p).mtimeMs > built) return `${f} changed since the last build`;
  }
  for (const d of NEXT_INPUT_DIRS) {
    if (newestUnder(path.join(root, d)) > built) return `${d}/ changed since the last build`;
  }
  return null;
}

/** `next build` (production) when the build is missing or older than its sources. */
export function ensureNextBuild() {
  const why = nextBuildStaleReason();
  if (!why) {
    console.error('[ensure] console build is up to date (.next)');
    return;
  }
  console.error(`[ensure] building the console for production (next build): ${why}`);
  run(path.join(root, 'node_modules', '.bin', 'next'), ['build'], { env: { ...process.env, NEXT_TELEMETRY_DISABLED: '1' } });
}

export function nodeVersionOk() {
  const [major, minor] = process.versions.node.split('.').map(Number);
  if (major < 20 || (major === 20 && minor < 9)) {
    console.error(`multifd needs Node.js >= 20.9, this is ${process.versions.node}`);
    process.exit(1);
  }
}

export { execFileSync };
