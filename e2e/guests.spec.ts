/**
 * The guests of this host as an operator manages them in the browser: a failed migration is
 * retried with the same guest (not a new one), an existing guest is migrated from the form,
 * the live view says where the guest is after each outcome, and idle guests are stopped at
 * once after a confirmation. Guests do not pile up: every run here ends with one guest.
 */
import { expect, test } from '@playwright/test';
import { listGuests, migrationIdOf, openConsole, openPage, setField, stopGuests, waitForEnd, type MigrationSummary } from './support';

const started = new Set<string>();
test.afterAll(async ({ request }) => {
  await stopGuests(request, started);
});

test('a failed migration is retried with the same guest; the form migrates an existing guest; "Stop idle guests" asks first', async ({ page, request }) => {
  const res = await request.post('/api/migrations', { data: { channels: 2, ramSize: 16 << 20, inject: ['ch1:uuid'] } });
  expect(res.status(), await res.text()).toBe(201);
  const first = (await res.json()) as MigrationSummary;
  started.add(first.uuid!);
  expect((await waitForEnd(request, first.id)).summary.state).toBe('failed');

  // The failed run's page says the guest is still here, and offers the retry.
  await openPage(page, `/migrations/${encodeURIComponent(first.id)}`);
  await expect(page.getByTestId('eta-why')).toContainText('the source guest keeps running, unchanged');
  const retry = page.getByTestId('retry');
  await expect(retry).toHaveText('Retry without the faults');
  await retry.click();
  await page.waitForURL((u) => u.pathname.startsWith('/migrations/') && !u.pathname.endsWith(encodeURIComponent(first.id)));
  const second = migrationIdOf(page);
  const detail = await waitForEnd(request, second);
  expect(detail.summary.state, detail.summary.errorMessage ?? '').toBe('completed');
  expect(detail.summary.uuid, 'the same guest').toBe(first.uuid);
  expect(detail.config.inject).toEqual([]);
  await expect(page.getByTestId('eta-why')).toContainText('the guest runs on this host (arrived)');
  expect((await listGuests(request)).filter((g) => g.uuid === first.uuid)).toHaveLength(1);

  // From the guest table into the form, and migrated again: still one guest.
  const form = await openConsole(page);
  const row = page.locator(`[data-testid="guest-row"][data-uuid="${first.uuid}"]`);
  await row.getByTestId('migrate-guest').click();
  await expect(form.locator('[name="guest"]')).toHaveValue(first.uuid!);
  await expect(form.locator('[name="ramSize"]')).toBeDisabled();
  await setField(form, 'channels', '3');
  await form.getByTestId('start').click();
  await page.waitForURL(/\/migrations\//);
  const third = await waitForEnd(request, migrationIdOf(page));
  expect(third.summary.state, third.summary.errorMessage ?? '').toBe('completed');
  expect(third.summary.uuid).toBe(first.uuid);
  expect(third.summary.channels).toBe(3);

  // Stop idle guests: nothing happens until the operator says yes.
  await openConsole(page);
  const stopIdle = page.getByTestId('stop-idle-guests');
  page.once('dialog', (d) => void d.dismiss());
  await stopIdle.click();
  await expect(row).toHaveCount(1);
  page.once('dialog', (d) => {
    expect(d.message()).toMatch(/Stop \d+ idle guests?/);
    void d.accept();
  });
  await stopIdle.click();
  await expect(page.getByTestId('guest-row')).toHaveCount(0);
  expect(await listGuests(request)).toEqual([]);
  started.clear();

  // The first run's page now says its guest is gone, and offers no retry.
  await openPage(page, `/migrations/${encodeURIComponent(first.id)}`);
  await expect(page.getByTestId('eta-why')).toContainText('the source guest is no longer on this host');
  await expect(page.getByTestId('retry')).toHaveCount(0);
});
