/**
 * The console as an operator uses it, in a real browser against the real server: start a
 * migration from the form and watch every channel, find it in history, cancel one and see
 * its guest still running here, and be told what is wrong with a bad form.
 *
 * The fault lab: an operator injects a UUID mismatch and reads the diagnosis; a destination
 * of another "host" expecting another channel count refuses the migration, and the console
 * says which counts disagree.
 *
 * Screenshots of the live view are kept as artifacts (test-results/<test>/*.png) and
 * attached to the report.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { expect, test } from '@playwright/test';
import {
  ACCEPTED_OR_LATER,
  getMigration,
  listGuests,
  listMigrations,
  liveSeen,
  migrationIdOf,
  openConsole,
  openPage,
  recordLiveView,
  screenshot,
  setField,
  startDest,
  stopGuests,
} from './support';

/** Guests started by these tests, stopped at the end so the host stays quiet. */
const started = new Set<string>();
test.afterAll(async ({ request }) => {
  await stopGuests(request, started);
});

test('8 channels: every channel accepted and streaming, completion verified, then found in history', async ({ page, request }, testInfo) => {
  await recordLiveView(page);
  const form = await openConsole(page);
  await expect(form.locator('[name="destination"]')).toHaveValue('embedded');

  // 64 MiB of random RAM at 16 MiB/s: about 4 s of streaming, long enough to watch.
  await setField(form, 'channels', '8');
  await setField(form, 'ramSize', '64');
  await setField(form, 'maxBandwidth', '16');
  await form.getByTestId('start').click();

  await page.waitForURL(/\/migrations\/[^/]+$/, { timeout: 15_000 });
  const id = migrationIdOf(page);
  const state = page.getByTestId('migration-state');
  const rows = page.locator('tr[data-testid="channel-row"]');
  await expect(rows).toHaveCount(8);

  // Mid-transfer: active, with bytes flowing on some channel.
  await page.waitForFunction(
    () => {
      const s = document.querySelector('[data-testid="migration-state"]')?.textContent?.trim();
      if (s === 'completed' || s === 'failed' || s === 'cancelled') return true; // too late: fails below
      return (
        s === 'active' &&
        Array.from(document.querySelectorAll('[data-testid="channel-throughput"]')).some((c) => Number(c.getAttribute('data-bps')) > 0)
      );
    },
    null,
    { polling: 50, timeout: 20_000 },
  );
  await expect(state, 'the live view should show the migration active while it streams').toHaveText('active', { timeout: 100 });
  await screenshot(page, testInfo, 'live-view-mid-transfer');

  // Completion, with the digest verified by the destination.
  await expect(state).toHaveText('completed', { timeout: 45_000 });
  await expect(page.getByTestId('verified')).toBeVisible();
  const digest = page.getByTestId('digest');
  await expect(digest).toHaveText(/^\s*[0-9a-f]{16}\s*$/);
  const detail = await getMigration(request, id);
  started.add(detail.summary.uuid ?? '');
  expect(detail.summary.state).toBe('completed');
  expect(detail.snapshot.verified).toBe(true);
  expect((await digest.textContent())?.trim()).toBe(detail.snapshot.digest);
  await screenshot(page, testInfo, 'live-view-completed');
  // Ended: no channel and no chart header keeps a "now"; the chart says what it measures,
  // has a time axis and names each channel's band.
  await expect(page.getByTestId('chart-head')).toContainText('ended · peak');
  await expect(page.getByTestId('chart-head')).toContainText('on the wire');
  await expect(page.getByTestId('chart-head')).not.toContainText('now');
  await expect(page.getByTestId('chart-axis')).toContainText('start');
  await expect(page.getByTestId('chart-legend').locator('li')).toHaveText(['ch0', 'ch1', 'ch2', 'ch3', 'ch4', 'ch5', 'ch6', 'ch7']);
  await expect(page.locator('[data-testid="channel-throughput"]')).toHaveText(Array(8).fill('—'));

  // Every one of the 8 channels was seen accepted (or later) and with non-zero throughput.
  const seen = await liveSeen(page);
  const channels = Object.entries(seen.channels);
  expect(channels.map(([ch]) => ch).sort(), 'the channel rows the page showed').toHaveLength(8);
  for (const [ch, s] of channels) {
    expect(s.states.some((st) => ACCEPTED_OR_LATER.includes(st)), `channel ${ch} states seen: ${s.states.join(' → ')}`).toBe(true);
    expect(s.maxBps, `channel ${ch}: highest data-bps seen`).toBeGreaterThan(0);
  }
  expect(seen.states, 'the states the page showed').toContain('active');
  testInfo.annotations.push({ type: 'live view', description: `states ${seen.states.join(' → ')}; ${channels.map(([ch, s]) => `ch${ch} ${s.states.join('→')} max ${(s.maxBps / 1048576).toFixed(2)} MiB/s`).join('; ')}` });

  // A reload replays it; history lists it.
  await page.reload();
  await expect(state).toHaveText('completed');
  await expect(page.getByTestId('digest')).toHaveText(new RegExp(`^\\s*${detail.snapshot.digest}\\s*$`));
  await openPage(page, '/history');
  const row = page.locator(`[data-testid="history-row"][data-id="${id}"]`);
  await expect(row).toHaveCount(1);
  await expect(row).toHaveAttribute('data-state', 'completed');
  // ... and opens its (replayed) view.
  await row.getByRole('link').first().click();
  await page.waitForURL(`**/migrations/${encodeURIComponent(id)}`);
  await expect(state).toHaveText('completed');
  await expect(page.locator('tr[data-testid="channel-row"]')).toHaveCount(8);
  await expect(page.getByTestId('verified')).toBeVisible();
});

test('cancel a running migration: cancelled, and the guest still runs on the source', async ({ page, request }, testInfo) => {
  const form = await openConsole(page);
  // 256 MiB at 16 MiB/s: 16 s, surely still running when cancelled.
  await setField(form, 'channels', '4');
  await setField(form, 'ramSize', '256');
  await setField(form, 'maxBandwidth', '16');
  await form.getByTestId('start').click();

  await page.waitForURL(/\/migrations\/[^/]+$/, { timeout: 15_000 });
  const id = migrationIdOf(page);
  const state = page.getByTestId('migration-state');
  await expect(state).toHaveText('active', { timeout: 20_000 });
  // Bytes flowing before it is cancelled (the screenshot shows a transfer under way).
  await expect
    .poll(() => page.locator('[data-testid="channel-throughput"]').evaluateAll((cells) => cells.some((c) => Number(c.getAttribute('data-bps')) > 0)), {
      timeout: 10_000,
      intervals: [50],
    })
    .toBe(true);
  await expect(state).toHaveText('active', { timeout: 100 });
  const { summary } = await getMigration(request, id);
  const uuid = summary.uuid;
  expect(uuid, 'the migration names its guest').toBeTruthy();
  started.add(uuid!);
  await screenshot(page, testInfo, 'live-view-before-cancel');

  await page.getByTestId('cancel').click();
  await expect(state).toHaveText('cancelled', { timeout: 15_000 });
  await expect(page.getByTestId('failure')).toHaveAttribute('data-code', 'MIGRATION_CANCELLED');
  await screenshot(page, testInfo, 'live-view-cancelled');
  expect((await getMigration(request, id)).summary.state).toBe('cancelled');

  // Export: the timeline as a JSON file, ending with the cancellation.
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export').click()]);
  const exported = JSON.parse(await readFile(await download.path(), 'utf8')) as { id: string; events: Array<{ type: string }> };
  expect(exported.id).toBe(id);
  expect(exported.events.at(-1)?.type).toBe('cancelled');

  // The guest carries on where it was: on this host, created here, running.
  const guest = (await listGuests(request)).find((g) => g.uuid === uuid);
  expect(guest, `guest ${uuid} in GET /api/guests`).toBeTruthy();
  expect(guest).toMatchObject({ origin: 'created', state: 'running', migrating: null });
  await openPage(page, '/');
  const row = page.locator(`[data-testid="guest-row"][data-uuid="${uuid}"]`);
  await expect(row).toHaveCount(1);
  await expect(row).toHaveAttribute('data-origin', 'created');
  await expect(row).toHaveAttribute('data-state', 'running');
  await expect(page.locator(`[data-testid="migration-row"][data-id="${id}"]`)).toHaveAttribute('data-state', 'cancelled');

  // And the operator can stop it from the list.
  page.on('dialog', (d) => void d.accept());
  await row.getByTestId('stop-guest').click();
  await expect(row).toHaveCount(0);
  expect((await listGuests(request)).some((g) => g.uuid === uuid)).toBe(false);
  started.delete(uuid!);
});

test('an invalid form shows the field errors next to channels and starts nothing', async ({ page, request }) => {
  const before = (await listMigrations(request)).length;
  const form = await openConsole(page);
  const channels = form.locator('[name="channels"]');
  const error = page.getByTestId('error-channels');

  for (const [value, message] of [
    ['0', /at least 1/],
    ['256', /at most 255/],
  ] as const) {
    await setField(form, 'channels', value);
    await form.getByTestId('start').click();
    await expect(error, `error shown for channels=${value}`).toBeVisible();
    await expect(error).toHaveText(message);
    // The box in error takes the focus, so the fix goes where the operator already is.
    await expect(channels).toBeFocused();
    await expect(page).toHaveURL(/\/$/);
    // "Next to the field": the message sits within a line or two of the input.
    const [a, b] = [await channels.boundingBox(), await error.boundingBox()];
    expect(a && b, 'channels input and its error are laid out').toBeTruthy();
    const gap = Math.max(0, b!.y - (a!.y + a!.height), a!.y - (b!.y + b!.height));
    expect(gap, `vertical gap between the channels input and its error (channels=${value})`).toBeLessThan(80);
  }
  expect((await listMigrations(request)).length, 'no migration was created').toBe(before);
});

test('fault lab: a UUID mismatch injected on channel 2 fails, and the diagnosis shows both UUIDs and the likely cause', async ({ page, request }, testInfo) => {
  const form = await openConsole(page);
  await setField(form, 'channels', '4');
  await setField(form, 'ramSize', '16');

  // The lab is folded away until asked for.
  await expect(form.getByTestId('add-fault')).toHaveCount(0);
  await form.getByTestId('fault-lab-toggle').click();
  await form.getByTestId('add-fault').click();
  const row = form.getByTestId('fault-row');
  await expect(row).toHaveCount(1);
  await setField(form, 'inject.0.channel', '2');
  await setField(form, 'inject.0.kind', 'uuid');
  await expect(row.getByTestId('fault-spec')).toHaveText('ch2:uuid');
  await expect(form.getByTestId('fault-count')).toHaveText(/1 fault/);
  await form.getByTestId('start').click();

  await page.waitForURL(/\/migrations\/[^/]+$/, { timeout: 15_000 });
  const id = migrationIdOf(page);
  await expect(page.getByTestId('migration-state')).toHaveText('failed', { timeout: 20_000 });
  const { summary } = await getMigration(request, id);
  started.add(summary.uuid ?? '');
  expect(summary.inject).toEqual(['ch2:uuid']);

  // Never mistaken for a real failure: the header says it was asked for.
  await expect(page.getByTestId('injected')).toContainText('fault lab: ch2:uuid');
  await expect(page.getByTestId('failure-code')).toHaveText('MIGRATION_CHANNEL_UUID_MISMATCH');
  await expect(page.getByTestId('failure-channel')).toHaveText('2');

  const diagnosis = page.getByTestId('diagnosis');
  await expect(diagnosis).toBeVisible();
  const diff = diagnosis.getByTestId('uuid-diff');
  await expect(diff).toHaveCount(1);
  await expect(diff).toHaveAttribute('data-channel', '2');
  // Both UUIDs side by side: expected is this guest's, received is not; differing bytes marked.
  await expect(diff.getByTestId('uuid-expected')).toHaveText(summary.uuid!);
  const received = (await diff.getByTestId('uuid-received').textContent())?.trim() ?? '';
  expect(received).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  expect(received).not.toBe(summary.uuid);
  expect(await diff.locator('mark').count(), 'highlighted characters in the uuid diff').toBeGreaterThan(0);
  await expect(diff.locator('mark').first()).toBeVisible();
  await expect(page.getByTestId('likely-cause')).toContainText("channel 2's connection carried another guest's uuid");
  await expect(page.getByTestId('cause-injected')).toContainText('ch2:uuid');
  // The handshake line of the channel it points at, and the grid row.
  await expect(diagnosis.locator('[data-testid="diagnosis-channel"][data-channel="2"]')).toContainText(/rejected/);
  await expect(page.locator('tr[data-testid="channel-row"][data-channel="2"]')).toHaveAttribute('data-state', 'rejected');
  await screenshot(page, testInfo, 'fault-lab-uuid-mismatch');

  // History marks it too.
  await openPage(page, '/history');
  const hrow = page.locator(`[data-testid="history-row"][data-id="${id}"]`);
  await expect(hrow).toHaveAttribute('data-state', 'failed');
  await expect(hrow.getByTestId('row-injected')).toContainText('ch2:uuid');
});

test('count mismatch: a multifd dest expecting 4 channels refuses a source opening 8, and the likely cause names both counts', async ({ page, request }, testInfo) => {
  const root = path.resolve(testInfo.project.testDir, '..');
  const dest = await startDest(root, ['--channels', '4']);
  try {
    const form = await openConsole(page);
    await setField(form, 'destination', dest.address);
    await setField(form, 'channels', '8');
    await setField(form, 'ramSize', '16');
    await form.getByTestId('start').click();

    await page.waitForURL(/\/migrations\/[^/]+$/, { timeout: 15_000 });
    const id = migrationIdOf(page);
    await expect(page.getByTestId('migration-state'), dest.output()).toHaveText('failed', { timeout: 20_000 });
    const { summary } = await getMigration(request, id);
    started.add(summary.uuid ?? '');
    expect(summary.errorCode).toBe('MIGRATION_CHANNEL_COUNT_MISMATCH');
    await expect(page.getByTestId('failure-code')).toHaveText('MIGRATION_CHANNEL_COUNT_MISMATCH');
    await expect(page.getByTestId('diagnosis')).toBeVisible();
    const cause = page.getByTestId('likely-cause');
    await expect(cause).toContainText('destination expects 4 channels, source opened 8');
    await expect(cause).toHaveText(/\b4\b.*\b8\b/);
    // No fault was injected: nothing says so.
    await expect(page.getByTestId('injected')).toHaveCount(0);
    // What to do, and a retry that does it: the same guest, 4 channels, the same destination.
    await expect(page.getByTestId('advice')).toContainText('set Channels to 4, or restart the destination with --channels 8');
    await screenshot(page, testInfo, 'count-mismatch');
    const retry = page.getByTestId('retry');
    await expect(retry).toHaveText('Retry with 4 channels');
    await retry.click();
    await page.waitForURL((u) => u.pathname.startsWith('/migrations/') && !u.pathname.endsWith(encodeURIComponent(id)), { timeout: 15_000 });
    const fixed = await getMigration(request, migrationIdOf(page));
    expect(fixed.summary.uuid, 'the same guest').toBe(summary.uuid);
    expect(fixed.summary.channels).toBe(4);
    expect(fixed.summary.destination).toBe(dest.address);
    await expect(page.getByTestId('migration-state'), dest.output()).toHaveText('completed', { timeout: 20_000 });
  } finally {
    await dest.stop();
  }
});

test('fault lab ch2:dup: the diagnosis names channel 2, which sent channel 3\'s id, not its victim', async ({ page, request }) => {
  const res = await request.post('/api/migrations', { data: { channels: 4, ramSize: 16 << 20, inject: ['ch2:dup'] } });
  expect(res.status(), await res.text()).toBe(201);
  const { id, uuid } = (await res.json()) as { id: string; uuid: string };
  started.add(uuid);
  await openPage(page, `/migrations/${encodeURIComponent(id)}`);
  await expect(page.getByTestId('migration-state')).toHaveText('failed', { timeout: 20_000 });
  await expect(page.getByTestId('failure-code')).toHaveText('MIGRATION_CHANNEL_ID_DUPLICATE');
  await expect(page.getByTestId('likely-cause')).toContainText("channel 2 sent channel 3's id");
  await expect(page.getByTestId('cause-injected')).toContainText('ch2:dup');
  await expect(page.getByTestId('advice')).toContainText('retry without it');
  await expect(page.getByTestId('retry')).toHaveText('Retry without the faults');
});

test('fault lab: faults the form can tell are wrong are shown under the fault lab, and nothing starts', async ({ page, request }, testInfo) => {
  const before = (await listMigrations(request)).length;
  const form = await openConsole(page);
  await setField(form, 'channels', '4');
  await form.getByTestId('fault-lab-toggle').click();
  await form.getByTestId('add-fault').click();
  await form.getByTestId('add-fault').click();
  await expect(form.getByTestId('fault-row')).toHaveCount(2);
  // Two faults on one channel, and a channel that does not exist.
  await setField(form, 'inject.0.channel', '1');
  await setField(form, 'inject.1.channel', '1');
  await setField(form, 'inject.1.kind', 'magic');
  await form.getByTestId('start').click();
  const error = page.getByTestId('error-inject');
  await expect(error).toContainText('ch1:magic');
  await expect(error).toContainText('already has a fault');
  await setField(form, 'inject.1.channel', '9');
  await expect(error, 'the message goes with the rows it was about').toHaveCount(0);
  await form.getByTestId('start').click();
  await expect(error).toContainText('ch9:magic: channel 9 does not exist');
  // The fault-lab fieldset holds the message.
  await expect(form.getByTestId('fault-lab').getByTestId('error-inject')).toHaveCount(1);
  await screenshot(page, testInfo, 'fault-lab-form-errors');
  await expect(page).toHaveURL(/\/$/);
  expect((await listMigrations(request)).length, 'no migration was created').toBe(before);

  // Removing the bad row leaves a valid lab.
  await form.getByTestId('fault-row').nth(1).getByTestId('remove-fault').click();
  await expect(form.getByTestId('fault-row')).toHaveCount(1);
  await expect(form.getByTestId('fault-spec')).toHaveText('ch1:uuid');
});
