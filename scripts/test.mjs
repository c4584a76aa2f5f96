/**
 * `npm test`: installs what is missing, type-checks, then runs every test: unit and
 * integration (real loopback TCP) with node's test runner, then the browser e2e specs
 * (Playwright with Debian's chromium, against the real server and a production build of the
 * console).
 *
 * Every step runs even when an earlier one failed (the e2e step needs chromium and the build,
 * and is skipped without them); the exit code is non-zero when any step failed or was
 * skipped. Each runner's own output (node's `ℹ tests/pass/fail` summary, Playwright's
 * `N passed`) goes through unchanged; a one-line-per-step summary follows at the end.
 */
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { ensureChromium, ensureNextBuild, ensureNodeModules, ensureQemu, nodeVersionOk, root } from './ensure.mjs';

nodeVersionOk();
ensureNodeModules();

/** @type {{ name: string, status: 'ok' | 'failed' | 'skipped', detail: string }[]} */
const results = [];
const E2E = 'e2e (playwright, chromium)';

/**
 * Runs one step with its output passed through (and kept, for the summary). Resolves to true
 * when it exited 0.
 */
async function step(name, cmd, args, env = {}) {
  console.error(`\n[test] ${name}`);
  const started = Date.now();
  const child = spawn(cmd, args, {
    cwd: root,
    env: { ...process.env, NEXT_TELEMETRY_DISABLED: '1', ...env },
    stdio: ['inherit', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (chunk) => {
    process.stdout.write(chunk);
    out += chunk.toString('utf8');
    if (out.length > 1 << 20) out = out.slice(-(1 << 19)); // the summary is at the end
  });
  // Ctrl-C reaches the child too (same process group); wait for it rather than dying first.
  const onSignal = () => {};
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const { code, signal } = await new Promise((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  ).finally(() => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  });
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  const ok = code === 0;
  results.push({ name, status: ok ? 'ok' : 'failed', detail: `${ok ? '' : `exit ${code ?? signal}, `}${secs} s${summarize(out)}` });
  if (!ok) console.error(`[test] ${name} failed (exit ${code ?? signal})`);
  return ok;
}

/** A step done in this process (installs, builds): true when it did not throw. */
function inline(name, fn) {
  console.error(`\n[test] ${name}`);
  const started = Date.now();
  try {
    fn();
    results.push({ name, status: 'ok', detail: `${((Date.now() - started) / 1000).toFixed(1)} s` });
    return true;
  } catch (err) {
    console.error(`[test] ${name} failed: ${err instanceof Error ? err.message : err}`);
    results.push({ name, status: 'failed', detail: err instanceof Error ? err.message : String(err) });
    return false;
  }
}

function skip(name, why) {
  console.error(`\n[test] ${name}: skipped (${why})`);
  results.push({ name, status: 'skipped', detail: why });
}

/** The counts a runner printed last: node's `ℹ tests 12` lines, or Playwright's `3 passed`. */
function summarize(out) {
  // eslint-disable-next-line no-control-regex
  const text = out.replace(/\x1b\[[0-9;]*m/g, '');
  const node = [...text.matchAll(/^ℹ (tests|pass|fail|cancelled|skipped|todo) (\d+)$/gm)];
  if (node.length) {
    const last = new Map(node.map((m) => [m[1], m[2]]));
    return `: ${[...last].map(([k, v]) => `${k} ${v}`).join(', ')}`;
  }
  const pw = [...text.matchAll(/^\s+(\d+) (passed|failed|flaky|skipped|did not run|interrupted)\b/gm)];
  return pw.length ? `: ${pw.map((m) => `${m[2]} ${m[1]}`).join(', ')}` : '';
}

/** Test files under the given folders (node 20's runner takes explicit paths). */
function testFiles(dirs) {
  const out = [];
  const walk = (d) => {
    for (const name of readdirSync(d)) {
      if (name === 'node_modules' || name.startsWith('.')) continue;
      const p = path.join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.test.ts')) out.push(path.relative(root, p));
    }
  };
  for (const d of dirs) walk(path.join(root, d));
  return out.sort();
}

const bin = (name) => path.join(root, 'node_modules', '.bin', name);

await step('typecheck', bin('tsc'), ['--noEmit', '-p', '.']);
// The integration tests migrate real QEMU guests: qemu-system-x86 from Debian when missing.
inline('qemu-system-x86 for the QEMU tests', ensureQemu);
const unitOk = await step('unit and integration tests', process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', ...testFiles(['lib', 'server', 'bench'])]);
// `npm run test:unit`: this far only.
if (process.argv.includes('--unit')) process.exit(unitOk && results.every((r) => r.status === 'ok') ? 0 : 1);

// The summary is printed however this ends: ensureChromium() exits (code 1) with the exact
// command to run when chromium is missing and this is not root.
process.on('exit', (code) => {
  if (!results.some((r) => r.name === E2E)) results.push({ name: E2E, status: 'skipped', detail: 'not run' });
  console.error('\n[test] summary');
  for (const r of results) console.error(`[test]   ${r.status.padEnd(7)} ${r.name}${r.detail ? ` (${r.detail})` : ''}`);
  const failed = results.filter((r) => r.status !== 'ok');
  if (failed.length) {
    console.error(`[test] FAILED: ${failed.map((r) => r.name).join('; ')}`);
    process.exitCode = code || 1;
  } else console.error('[test] all steps passed');
});

// The browser tests: chromium (apt-get as root), the production build (skipped when
// up to date), then Playwright (its webServer starts the real server on a fresh data dir).
const chromium = inline('chromium for the browser tests', ensureChromium);
const built = inline('console production build', ensureNextBuild);
if (!chromium) skip(E2E, 'no chromium');
else if (!built) skip(E2E, 'the console build failed');
else await step(E2E, bin('playwright'), ['test']);
