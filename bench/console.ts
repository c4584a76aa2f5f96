/**
 * `node --import tsx bench/console.ts [--channels 64] [--ram 512MiB] [--rate 64MiB/s]`
 *
 * How quickly the live view shows an update while a migration streams, and what the
 * console's server costs meanwhile. Starts the real console (production build; run
 * `next build` first, as `npm start` does), opens the live view of a bandwidth-capped
 * migration in Debian's chromium, and measures:
 *  - update latency: from a socket.io message arriving in the page to the DOM change it
 *    causes (a MutationObserver on the channel grid), in the page's own clock;
 *  - the longest main-thread task (PerformanceObserver 'longtask');
 *  - the server process's CPU share over the streaming window (/proc/PID/stat).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium } from '@playwright/test';
import { parseBytesPerSecond, parseSize } from '../lib/guest/units';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    channels: { type: 'string', default: '64' },
    ram: { type: 'string', default: '512MiB' },
    rate: { type: 'string', default: '64MiB/s' },
    port: { type: 'string', default: '3411' },
  },
});
const channels = Number(values.channels);
const ramSize = parseSize(values.ram!);
const rate = parseBytesPerSecond(values.rate!);
const port = Number(values.port);
const base = `http://127.0.0.1:${port}`;

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'multifd-console-bench-'));
const server = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts', '--listen', `127.0.0.1:${port}`], {
  cwd: ROOT,
  env: { ...process.env, MULTIFD_DATA_DIR: dataDir, NEXT_TELEMETRY_DISABLED: '1' },
  stdio: ['ignore', 'inherit', 'inherit'],
});
const ticks = () => {
  const f = readFileSync(`/proc/${server.pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime, in clock ticks (100/s)
};

try {
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/api/migrations`)).ok) break;
    } catch {
      // not up yet
    }
    if (i > 300) throw new Error('console did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.addInitScript(() => {
      const w = window as unknown as { __m: { msgs: number[]; muts: number[]; longest: number } };
      w.__m = { msgs: [], muts: [], longest: 0 };
      const Native = window.WebSocket;
      window.WebSocket = class extends Native {
        constructor(url: string | URL, protocols?: string | string[]) {
          super(url, protocols);
          this.addEventListener('message', () => w.__m.msgs.push(performance.now()));
        }
      } as typeof WebSocket;
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) w.__m.longest = Math.max(w.__m.longest, e.duration);
      }).observe({ type: 'longtask', buffered: true });
      new MutationObserver(() => w.__m.muts.push(performance.now())).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
    });
    const res = await fetch(`${base}/api/migrations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ channels, ramSize, maxBandwidth: rate }),
    });
    const started = (await res.json()) as { id: string };
    await page.goto(`${base}/migrations/${started.id}`);
    await page.locator('[data-testid="channel-row"][data-state="streaming"]').first().waitFor({ timeout: 30_000 });
    const t0 = Date.now();
    const c0 = ticks();
    await page.locator('[data-testid="migration-state"]', { hasText: /^(completed|failed|cancelled)$/ }).waitFor({ timeout: 600_000 });
    const wallS = (Date.now() - t0) / 1000;
    const cpuS = (ticks() - c0) / 100;
    const m = await page.evaluate(() => (window as unknown as { __m: { msgs: number[]; muts: number[]; longest: number } }).__m);
    // For each message, the first DOM change after it.
    const lat: number[] = [];
    let j = 0;
    for (const t of m.msgs) {
      while (j < m.muts.length && m.muts[j] < t) j++;
      if (j < m.muts.length && m.muts[j] - t < 2000) lat.push(m.muts[j] - t);
    }
    lat.sort((a, b) => a - b);
    const q = (p: number) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(1) : 'n/a');
    const state = await page.locator('[data-testid="migration-state"]').textContent();
    console.log(
      [
        `console with a ${channels}-channel migration of ${values.ram} at ${values.rate} (${state}):`,
        `  updates received in the page: ${m.msgs.length} over ${wallS.toFixed(1)} s (${(m.msgs.length / wallS).toFixed(1)}/s)`,
        `  message -> DOM updated: median ${q(0.5)} ms, p90 ${q(0.9)} ms, max ${q(1)} ms`,
        `  longest main-thread task: ${m.longest.toFixed(0)} ms`,
        `  server CPU while streaming: ${cpuS.toFixed(2)} s over ${wallS.toFixed(1)} s = ${((cpuS / wallS) * 100).toFixed(0)}% of one core (${os.cpus().length} cores; includes the source guest, the engine and the embedded destination)`,
      ].join('\n'),
    );
  } finally {
    await browser.close();
  }
} finally {
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
  rmSync(dataDir, { recursive: true, force: true });
}
