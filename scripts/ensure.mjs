/**
 * Installs what the project needs and is missing, using only Node's own modules (it runs
 * before node_modules exists): npm packages from the lock file, and for the browser tests
 * Debian's chromium via apt-get.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
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

/** Debian's chromium for Playwright; apt-get when root, else the exact command to run. */
export function ensureChromium() {
  if (existsSync(CHROMIUM)) return;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot) {
    console.error(`[ensure] ${CHROMIUM} is missing and this is not root. Run:\n  sudo apt-get update && sudo apt-get install -y chromium\nthen run the command again.`);
    process.exit(1);
  }
  console.error('[ensure] installing Debian chromium (apt-get)');
  run('apt-get', ['update'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  run('apt-get', ['install', '-y', '--no-install-recommends', 'chromium'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

export function nodeVersionOk() {
  const [major, minor] = process.versions.node.split('.').map(Number);
  if (major < 20 || (major === 20 && minor < 9)) {
    console.error(`multifd needs Node.js >= 20.9, this is ${process.versions.node}`);
    process.exit(1);
  }
}

export { execFileSync };
