/**
 * `npm start`: installs what is missing, builds the console for production when its sources
 * changed, then serves it (Next.js pages, REST API, socket.io, embedded destination) at
 * http://127.0.0.1:3000. HOST and PORT are honoured; arguments are passed to server/main.ts
 * (`npm start -- --listen 0.0.0.0:8080`, `--data-dir DIR`, `--dev` for Next's dev mode
 * without a build). Ctrl-C (or SIGTERM) stops the server cleanly.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { ensureNextBuild, ensureNodeModules, nodeVersionOk, root } from './ensure.mjs';

nodeVersionOk();
ensureNodeModules();

const args = process.argv.slice(2);
const dev = args.includes('--dev');
if (!dev) {
  try {
    ensureNextBuild();
  } catch (err) {
    console.error(`[start] ${err instanceof Error ? err.message : err}`);
    process.exit(1);
  }
}

/** Where the server will listen: --listen HOST:PORT, else HOST and PORT, else 127.0.0.1:3000. */
function address() {
  const i = args.findIndex((a) => a === '--listen' || a.startsWith('--listen='));
  if (i >= 0) {
    const v = args[i].includes('=') ? args[i].slice('--listen='.length) : args[i + 1];
    const m = /^(\[[^\]]+\]|[^:]+|.*):(\d+)$/.exec(v ?? '');
    if (m) return { host: m[1].replace(/^\[|\]$/g, ''), port: m[2] };
  }
  return { host: process.env.HOST || '127.0.0.1', port: process.env.PORT || '3000' };
}
const { host, port } = address();
const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
const url = `http://${shown.includes(':') ? `[${shown}]` : shown}:${port}`;

const env = { ...process.env, NEXT_TELEMETRY_DISABLED: process.env.NEXT_TELEMETRY_DISABLED ?? '1' };
const server = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'server', 'main.ts'), ...args], {
  cwd: root,
  env,
  stdio: 'inherit',
});
console.error(`[start] starting the multifd console on ${url} ...`);

// Signals go to the server, which closes migrations, guests and history before it exits; this
// process exits with it.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    if (server.exitCode === null && server.signalCode === null) server.kill(sig);
  });
}
server.on('error', (err) => {
  console.error(`[start] could not start the server: ${err.message}`);
  process.exit(1);
});
server.on('exit', (code, signal) => {
  if (signal) {
    process.exitCode = 1;
    console.error(`[start] server ended by ${signal}`);
  } else process.exitCode = code ?? 1;
  clearTimeout(readyTimer);
});

// Say where to point the browser once the console answers.
let readyTimer;
const deadline = Date.now() + 120_000;
const probe = async () => {
  if (server.exitCode !== null || server.signalCode !== null) return;
  try {
    const res = await fetch(`${url}/api/migrations`, { signal: AbortSignal.timeout(2000) });
    const body = await res.json();
    // Ours, not something else that answers on this port.
    if (!res.ok || !Array.isArray(body?.migrations)) throw new Error(`HTTP ${res.status}`);
    console.error(`[start] the multifd console is ready: open ${url}  (Ctrl-C stops it)`);
    return;
  } catch {
    if (Date.now() > deadline) {
      console.error(`[start] ${url} still does not answer after 120 s`);
      return;
    }
  }
  readyTimer = setTimeout(probe, 250);
};
readyTimer = setTimeout(probe, 250);
