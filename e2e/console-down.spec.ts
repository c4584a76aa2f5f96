/**
 * The console dies under a live view: a console started here runs a slow migration, the
 * browser watches it, and the console is killed (SIGKILL, as a crash or an OOM kill would).
 * The view must not look live: it says since when the console has not answered, shows no
 * ETA, and Cancel is disabled.
 */
import path from 'node:path';
import { expect, test } from '@playwright/test';
import { startConsoleProcess, type ConsoleProcess } from './support';

const port = Number(process.env.MULTIFD_E2E_DOWN_PORT ?? 3127);
const base = `http://127.0.0.1:${port}`;
let server: ConsoleProcess | null = null;

test.beforeAll(async ({}, testInfo) => {
  server = await startConsoleProcess(path.resolve(testInfo.project.testDir, '..'), `127.0.0.1:${port}`);
});

test.afterAll(async () => {
  await server?.kill();
});

test('a console killed mid-migration: the live view says it is not answering, no ETA, Cancel disabled', async ({ page, request }) => {
  // 64 MiB at 1 MiB/s: a minute or more, far longer than this test watches it.
  const res = await request.post(`${base}/api/migrations`, { data: { channels: 2, ramSize: 64 << 20, maxBandwidth: 1 << 20 } });
  expect(res.status(), await res.text()).toBe(201);
  const { id } = (await res.json()) as { id: string };
  await page.goto(`${base}/migrations/${encodeURIComponent(id)}`);
  await expect(page.getByTestId('migration-state')).toHaveText('active', { timeout: 20_000 });
  const cancel = page.getByTestId('cancel');
  await expect(cancel).toBeEnabled();
  await expect(page.getByTestId('offline')).toHaveCount(0);

  await server!.kill();

  await expect(page.getByTestId('offline')).toContainText('The console has not answered since', { timeout: 15_000 });
  await expect(cancel).toBeDisabled();
  await expect(page.getByTestId('eta')).toHaveText('ETA —');
  await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'disconnected');
});
