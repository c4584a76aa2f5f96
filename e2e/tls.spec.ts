/**
 * TLS from the console, in a real browser: a second console, started here with x509
 * credentials made for the run (its embedded destination requires a client certificate, its
 * migrations present one), migrates a guest with every channel over TLS 1.3 and shows the
 * TLS step of each channel's handshake; a channel told to check another host name fails the
 * migration with MIGRATION_TLS_HOSTNAME_MISMATCH naming that channel, the guest runs on,
 * and the same migration in clear is refused by the destination with MIGRATION_TLS_REQUIRED.
 */
import path from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { makeTestPki, type TestPki } from '../lib/engine/tls-test-support';
import { startConsoleProcess, type ConsoleProcess } from './support';

const port = Number(process.env.MULTIFD_E2E_TLS_PORT ?? 3125);
const base = `http://127.0.0.1:${port}`;
let server: ConsoleProcess | null = null;
let pki: TestPki | null = null;
const started = new Set<string>();

test.beforeAll(async ({}, testInfo) => {
  const root = path.resolve(testInfo.project.testDir, '..');
  pki = await makeTestPki();
  const tls = ['--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--tls-ca', pki.ca, '--tls-require-client-cert'];
  server = await startConsoleProcess(root, `127.0.0.1:${port}`, tls);
});

test.afterAll(async ({ request }) => {
  for (const uuid of started) await request.post(`${base}/api/guests/${uuid}/stop`).catch(() => {});
  await server?.stop();
  await pki?.cleanup();
});

async function openForm(page: Page) {
  await page.goto(`${base}/`);
  await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'connected', { timeout: 15_000 });
  const form = page.getByTestId('new-migration');
  await expect(form.getByTestId('start')).toBeEnabled({ timeout: 15_000 });
  return form;
}

async function set(form: ReturnType<Page['getByTestId']>, name: string, value: string) {
  const field = form.locator(`[name="${name}"]`);
  if ((await field.evaluate((el) => el.tagName.toLowerCase())) === 'select') await field.selectOption(value);
  else await field.fill(value);
}

test('x509 with client certificates: every channel secured, the TLS step in each handshake, verified', async ({ page, request }) => {
  const form = await openForm(page);
  // The form says what its default means: this console's credential set, by name and kind.
  await expect(form.locator('[name="tls"] option').first()).toHaveText('on: default (x509, client certificate)');
  await set(form, 'channels', '4');
  await set(form, 'ramSize', '32');
  await form.getByTestId('start').click();
  await page.waitForURL(/\/migrations\/[^/]+$/, { timeout: 15_000 });
  await expect(page.getByTestId('migration-state')).toHaveText('completed', { timeout: 45_000 });
  const id = decodeURIComponent(new URL(page.url()).pathname.split('/').pop()!);
  const detail = await (await request.get(`${base}/api/migrations/${id}`)).json();
  started.add(detail.summary.uuid);
  expect(detail.snapshot.tls).toBe('x509');
  expect(detail.snapshot.verified).toBe(true);

  await expect(page.getByTestId('channel-security')).toContainText('TLS x509');
  const cells = page.getByTestId('channel-handshake');
  await expect(cells).toHaveCount(4);
  for (const cell of await cells.all()) {
    await expect(cell).toHaveAttribute('data-security', /^TLSv1\.3 \S+ x509/);
    // connect, then tls, then the multifd handshake: the TLS step has its place in the timeline.
    await expect(cell).toContainText(/connect [^·]+ · tls [^·]+ · sent [^·]+ · accepted/);
  }
});

test('ch2 checks another host name: MIGRATION_TLS_HOSTNAME_MISMATCH on channel 2, the guest runs on; in clear the destination refuses', async ({ page, request }) => {
  const form = await openForm(page);
  await set(form, 'channels', '4');
  await set(form, 'ramSize', '16');
  await form.getByTestId('fault-lab-toggle').click();
  await form.getByTestId('add-fault').click();
  await set(form, 'inject.0.channel', '2');
  await set(form, 'inject.0.kind', 'tls-hostname');
  await expect(form.getByTestId('fault-spec')).toHaveText('ch2:tls-hostname');
  await form.getByTestId('start').click();
  await page.waitForURL(/\/migrations\/[^/]+$/, { timeout: 15_000 });
  await expect(page.getByTestId('migration-state')).toHaveText('failed', { timeout: 20_000 });
  await expect(page.getByTestId('failure-code')).toHaveText('MIGRATION_TLS_HOSTNAME_MISMATCH');
  await expect(page.getByTestId('failure-channel')).toHaveText('2');
  const id = decodeURIComponent(new URL(page.url()).pathname.split('/').pop()!);
  const detail = await (await request.get(`${base}/api/migrations/${id}`)).json();
  const uuid = detail.summary.uuid as string;
  started.add(uuid);
  const guests = (await (await request.get(`${base}/api/guests`)).json()).guests as Array<{ uuid: string; state: string }>;
  expect(guests.find((g) => g.uuid === uuid)?.state).toBe('running');

  // A migration in clear to the same destination: refused by name.
  const form2 = await openForm(page);
  await set(form2, 'channels', '2');
  await set(form2, 'tls', 'off');
  await form2.getByTestId('start').click();
  await page.waitForURL(/\/migrations\/[^/]+$/, { timeout: 15_000 });
  await expect(page.getByTestId('migration-state')).toHaveText('failed', { timeout: 20_000 });
  await expect(page.getByTestId('failure-code')).toHaveText('MIGRATION_TLS_REQUIRED');
  await expect(page.getByTestId('channel-security')).toContainText('in clear');
  const id2 = decodeURIComponent(new URL(page.url()).pathname.split('/').pop()!);
  started.add((await (await request.get(`${base}/api/migrations/${id2}`)).json()).summary.uuid);
});
