/**
 * `npm start`: installs what is missing, then runs a demo migration on loopback (a
 * destination and a source in two processes) with a live progress display.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { ensureNodeModules, nodeVersionOk, root } from './ensure.mjs';

nodeVersionOk();
ensureNodeModules();

const cli = path.join(root, 'bin', 'multifd.mjs');
const port = process.env.MULTIFD_DEMO_PORT ?? '4444';
const listen = `127.0.0.1:${port}`;
const dest = spawn(process.execPath, [cli, 'dest', '--listen', listen, '--once'], { stdio: ['ignore', 'inherit', 'inherit'], cwd: root });
await new Promise((r) => setTimeout(r, 1500));
const src = spawn(
  process.execPath,
  [cli, 'migrate', '--to', listen, '--channels', '4', '--ram-size', '512MiB', '--workload', 'random:32', ...process.argv.slice(2)],
  { stdio: 'inherit', cwd: root },
);
const code = await new Promise((r) => src.on('exit', (c) => r(c ?? 1)));
const destCode = await new Promise((r) => (dest.exitCode !== null ? r(dest.exitCode) : dest.on('exit', (c) => r(c ?? 1))));
process.exit(code || destCode);
