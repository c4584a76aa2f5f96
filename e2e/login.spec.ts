/**
 * The console's login in a real browser: a second console, started here on 0.0.0.0 (beyond
 * loopback) with MULTIFD_CONSOLE_TOKEN, sends a stranger to /login; a wrong token is
 * refused on the page; the right one opens the console, whose socket then connects; the
 * REST API refuses a request without the session.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { expect, test } from '@playwright/test';
import { startConsoleProcess, type ConsoleProcess } from './support';

const token = randomBytes(32).toString('hex');
const port = Number(process.env.MULTIFD_E2E_LOGIN_PORT ?? 3124);
const base = `http://127.0.0.1:${port}`;
let server: ConsoleProcess | null = null;

test.beforeAll(async ({}, testInfo) => {
  server = await startConsoleProcess(path.resolve(testInfo.project.testDir, '..'), `0.0.0.0:${port}`, [], { MULTIFD_CONSOLE_TOKEN: token });
});

test.afterAll(async () => {
  await server?.stop();
});

test('beyond loopback the console asks for its token: wrong refused, right lets in, REST needs the session', async ({ page, request }) => {
  const rest = await request.get(`${base}/api/migrations`);
  expect(rest.status()).toBe(401);

  await page.goto(`${base}/history`);
  await expect(page).toHaveURL(/\/login\?next=%2Fhistory$/);
  const submit = page.getByTestId('login-submit');
  await page.getByTestId('login-token').fill(randomBytes(32).toString('hex'));
  await expect(submit).toBeEnabled();
  await submit.click();
  await expect(page.getByTestId('login-error')).toContainText('not the console token');

  await page.getByTestId('login-token').fill(token);
  await submit.click();
  await expect(page).toHaveURL(`${base}/history`);
  await expect(page.getByRole('heading', { name: 'History' })).toBeVisible();
  // The page's socket.io connection got in with the session cookie.
  await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'connected');
  const cookie = (await page.context().cookies()).find((c) => c.name === 'multifd_session');
  expect(cookie?.httpOnly).toBe(true);
  expect(cookie?.sameSite).toBe('Strict');
});

test('the login never sends the browser to another site, however `next` is spelled', async ({ page }) => {
  for (const next of ['/\\evil.example/', '//evil.example/', 'https://evil.example/']) {
    await page.context().clearCookies();
    await page.goto(`${base}/login?next=${encodeURIComponent(next)}`);
    await page.getByTestId('login-token').fill(token);
    await page.getByTestId('login-submit').click();
    await expect(page).toHaveURL(`${base}/`);
  }
});
