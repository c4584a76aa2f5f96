/**
 * Browser tests of the console (e2e/), with Debian's chromium (scripts/ensure.mjs installs it;
 * never `playwright install`), against the real server in production mode (`next build` first:
 * `npm test` does it) on its own port and a fresh, empty data directory.
 *
 * MULTIFD_E2E_PORT changes the port (default 3123, so a running `npm start` on 3000 does not
 * collide); MULTIFD_E2E_KEEP_DATA=1 keeps the data directory (its path is printed) for a
 * post-mortem of the history database.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defineConfig } from '@playwright/test';

const port = Number(process.env.MULTIFD_E2E_PORT ?? 3123);
const baseURL = `http://127.0.0.1:${port}`;

// This file is loaded by the runner and again by each worker: only the first creates the data
// directory, the others (which inherit the environment) reuse it; the creator removes it.
let dataDir = process.env.MULTIFD_E2E_DATA_DIR;
if (!dataDir) {
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'multifd-e2e-'));
  process.env.MULTIFD_E2E_DATA_DIR = dataDir;
  const created = dataDir;
  process.on('exit', () => {
    if (process.env.MULTIFD_E2E_KEEP_DATA) console.error(`[e2e] history kept in ${created}`);
    else rmSync(created, { recursive: true, force: true });
  });
}

export default defineConfig({
  testDir: 'e2e',
  outputDir: 'test-results',
  fullyParallel: false,
  workers: 1,
  retries: 0,
  forbidOnly: !!process.env.CI,
  timeout: 60_000,
  expect: { timeout: 10_000 },
  reporter: 'list',
  use: {
    baseURL,
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
    viewport: { width: 1440, height: 900 },
    screenshot: 'only-on-failure',
    trace: 'off',
  },
  webServer: {
    command: `node --import tsx server/main.ts --listen 127.0.0.1:${port} --data-dir ${JSON.stringify(dataDir)}`,
    url: `${baseURL}/api/migrations`,
    env: { MULTIFD_DATA_DIR: dataDir, NEXT_TELEMETRY_DISABLED: '1' },
    reuseExistingServer: false,
    timeout: 120_000,
    stdout: 'pipe',
    stderr: 'pipe',
    // SIGTERM lets the server cancel what runs and close the history database.
    gracefulShutdown: { signal: 'SIGTERM', timeout: 10_000 },
  },
});
