/**
 * `npm test`: installs what is missing, type-checks, then runs every test: unit and
 * integration (real loopback TCP) with node's test runner, and the browser e2e specs.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { ensureNodeModules, nodeVersionOk, root } from './ensure.mjs';

nodeVersionOk();
ensureNodeModules();

function step(name, cmd, args, env = {}) {
  console.error(`\n[test] ${name}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, env: { ...process.env, NEXT_TELEMETRY_DISABLED: '1', ...env } });
  if (r.status !== 0) {
    console.error(`[test] ${name} failed (exit ${r.status ?? r.signal})`);
    process.exit(r.status || 1);
  }
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

step('typecheck', bin('tsc'), ['--noEmit', '-p', '.']);
step('unit and integration tests', process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', ...testFiles(['lib', 'server'])]);
