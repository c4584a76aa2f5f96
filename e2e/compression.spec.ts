/**
 * Compression from the console: an operator picks zstd for a guest of text pages and reads
 * the compression ratio of every channel in the live view; a zlib level out of range is
 * refused next to its field before anything starts.
 */
import { expect, test } from '@playwright/test';
import { getMigration, migrationIdOf, openConsole, setField, stopGuests } from './support';

const started = new Set<string>();
test.afterAll(async ({ request }) => {
  await stopGuests(request, started);
});

test('zstd on text RAM: completed, every channel shows its ratio, the summary names the method', async ({ page, request }) => {
  const form = await openConsole(page);
  await setField(form, 'channels', '4');
  await setField(form, 'ramSize', '32');
  await setField(form, 'fill', 'text');
  await setField(form, 'compression', 'zstd');
  await form.getByTestId('start').click();
  await page.waitForURL(/\/migrations\/[^/]+$/, { timeout: 15_000 });
  const id = migrationIdOf(page);
  await expect(page.getByTestId('migration-state')).toHaveText('completed', { timeout: 45_000 });

  const m = await getMigration(request, id);
  if (m.snapshot?.uuid) started.add(m.snapshot.uuid);
  expect(m.snapshot?.compression).toBe('zstd');

  const ratios = page.getByTestId('channel-ratio');
  await expect(ratios).toHaveCount(4);
  for (const cell of await ratios.all()) {
    const r = Number(await cell.getAttribute('data-ratio'));
    // Text pages: several times smaller on the wire; the cell shows it as N.NN×.
    expect(r).toBeGreaterThan(3);
    await expect(cell).toHaveText(/^\d+\.\d\d×$/);
  }
  await expect(page.getByTestId('compression')).toContainText('zstd');
});

test('zlib level 12 is refused at its field, nothing starts', async ({ page }) => {
  const form = await openConsole(page);
  await setField(form, 'compression', 'zlib');
  await setField(form, 'compressionLevel', '12');
  await form.getByTestId('start').click();
  await expect(form).toContainText('zlib compression level must be 1 to 9');
  await expect(page).toHaveURL(/\/$/);
});
