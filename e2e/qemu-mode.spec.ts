/**
 * QEMU mode, as an operator uses it: two real QEMU 7.2 processes started here (paused guests,
 * `-machine none`, 64 MiB of file-backed RAM in /dev/shm, the same `-uuid`, the destination
 * with `-incoming defer`), their QMP sockets typed into the console's QEMU tab; the console
 * drives the migration through its relay and the live view shows the relay's channels and
 * QEMU's own figures. Then the same with a wrong UUID injected by the relay on channel 2: QEMU
 * fails it, and the console names channel 2 and the code.
 *
 * A QEMU that migrated is a paused destination, and a failed pair is left in QEMU's failed
 * state: each test starts a fresh pair, and every QEMU and file is removed after each test
 * (and again after all, should a hook have been cut short). Skipped, with the reason, when
 * QEMU is not installed.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import {
  QEMU_X86_64,
  QemuProcess,
  cleanupAllNow,
  createRamFile,
  findExecutable,
  makeTempDir,
  pausedGuestArgs,
  removePath,
  waitForSocket,
} from '../lib/qemu/process';
import { ACCEPTED_OR_LATER, getMigration, migrationIdOf, openConsole, screenshot, setField } from './support';

const qemu = findExecutable(QEMU_X86_64);

const MiB = 1024 * 1024;
const RAM = 64 * MiB;
const CHANNELS = 4;
const START_TIMEOUT_MS = 15_000;

interface Pair {
  uuid: string;
  sourceQmp: string;
  destinationQmp: string;
  source: QemuProcess;
  destination: QemuProcess;
}

/** What a test created, undone in reverse order after it, whatever happened. */
let cleanups: Array<() => Promise<void> | void> = [];

async function cleanUp(): Promise<void> {
  const list = cleanups.reverse();
  cleanups = [];
  for (const fn of list) {
    try {
      await fn();
    } catch (err) {
      console.error(`[qemu-mode] cleanup: ${(err as Error).message}`);
    }
  }
}

test.afterEach(cleanUp);
test.afterAll(async () => {
  await cleanUp();
  // Anything lib/qemu/process still tracks (a hook cut short by its timeout): SIGKILL, rm.
  cleanupAllNow();
});

/**
 * A source QEMU whose RAM is 64 MiB of random bytes (no zero page: every page goes over a
 * multifd channel) and a destination waiting for migrate-incoming, both with QMP up.
 * `defer: false` starts the destination without `-incoming defer`, for QEMU to refuse.
 */
async function startPair({ defer = true }: { defer?: boolean } = {}): Promise<Pair> {
  const uuid = randomUUID();
  const dir = makeTempDir('multifd-e2e-qemu-');
  cleanups.push(() => removePath(dir));
  const tag = `multifd-e2e-${process.pid}-${uuid.slice(0, 8)}`;
  const srcRam = path.join('/dev/shm', `${tag}-src.ram`);
  const dstRam = path.join('/dev/shm', `${tag}-dst.ram`);
  cleanups.push(() => removePath(srcRam));
  cleanups.push(() => removePath(dstRam));
  await createRamFile(srcRam, RAM, 'random');
  await createRamFile(dstRam, RAM, 'zero');

  const start = async (name: 'src' | 'dst', ramPath: string) => {
    const socket = path.join(dir, `${name}.qmp`);
    const args = pausedGuestArgs({ ramPath, ramBytes: RAM, qmpSocket: socket, uuid, name: `e2e-${name}`, incoming: name === 'dst' && defer ? 'defer' : undefined });
    const proc = QemuProcess.spawn(`qemu ${name}`, qemu!, args);
    cleanups.push(async () => {
      await proc.stop(1000);
    });
    await waitForSocket(socket, START_TIMEOUT_MS, proc);
    return { proc, socket };
  };
  const src = await start('src', srcRam);
  const dst = await start('dst', dstRam);
  return { uuid, sourceQmp: src.socket, destinationQmp: dst.socket, source: src.proc, destination: dst.proc };
}

/** What the QEMUs printed, for failure messages. */
const qemuOutput = (p: Pair) => `${p.source.describe()}\n${p.destination.describe()}`;

/** The console, its QEMU tab selected: the QEMU form, ready for input. */
async function openQemuForm(page: Page) {
  await openConsole(page);
  const tab = page.getByTestId('mode-qemu');
  await expect(page.getByTestId('mode-engine')).toHaveAttribute('aria-selected', 'true');
  await tab.click();
  await expect(tab).toHaveAttribute('aria-selected', 'true');
  await expect(page.getByTestId('mode-engine')).toHaveAttribute('aria-selected', 'false');
  const form = page.getByTestId('qemu-migration');
  await expect(form).toBeVisible();
  await expect(page.getByTestId('new-migration')).toBeHidden();
  await expect(form.getByTestId('qemu-start')).toBeEnabled();
  return form;
}

test('QEMU form: bad input is shown next to its field, an unreachable QMP socket too (422), and nothing starts', async ({ page, request }, testInfo) => {
  const before = (await request.get('/api/migrations').then((r) => r.json()) as { migrations: unknown[] }).migrations.length;
  const form = await openQemuForm(page);
  await setField(form, 'channels', '0');
  await form.getByTestId('qemu-start').click();
  await expect(form.getByTestId('qemu-error-sourceQmp')).toContainText('QMP address is required');
  await expect(form.getByTestId('qemu-error-destinationQmp')).toContainText('QMP address is required');
  await expect(form.getByTestId('qemu-error-channels')).toContainText('at least 1');
  // The message goes with the value it was about.
  await setField(form, 'channels', '4');
  await expect(form.getByTestId('qemu-error-channels')).toHaveCount(0);
  await screenshot(page, testInfo, 'qemu-form-errors');

  // Well-formed but nothing there: the server cannot reach it and names the field.
  const dir = makeTempDir('multifd-e2e-qemu-');
  cleanups.push(() => removePath(dir));
  await setField(form, 'sourceQmp', path.join(dir, 'nobody.qmp'));
  await setField(form, 'destinationQmp', path.join(dir, 'nobody-either.qmp'));
  await form.getByTestId('qemu-start').click();
  await expect(form.getByTestId('qemu-error-sourceQmp')).toContainText("cannot reach the source QEMU's QMP", { timeout: 15_000 });
  await expect(page).toHaveURL(/\/$/);
  const after = (await request.get('/api/migrations').then((r) => r.json()) as { migrations: unknown[] }).migrations.length;
  expect(after, 'no migration was created').toBe(before);
});

test.describe('QEMU mode', () => {
  test.skip(!qemu, `${QEMU_X86_64} is not on PATH (Debian package qemu-system-x86)`);
  // Two QEMUs to start, 64 MiB of random RAM to write, and a migration: more than the default.
  test.setTimeout(120_000);

  test('two real QEMUs over 4 channels: completed, every channel through the relay, QEMU says completed on both sides', async ({ page, request }, testInfo) => {
    const pair = await startPair();
    const form = await openQemuForm(page);
    await expect(form.locator('[name="channels"]')).toHaveValue('4');
    await expect(form.locator('[name="migrationHost"]')).toHaveValue('127.0.0.1');
    await expect(form.locator('[name="relayHost"]')).toHaveValue('127.0.0.1');
    await setField(form, 'sourceQmp', pair.sourceQmp);
    await setField(form, 'destinationQmp', pair.destinationQmp);
    await setField(form, 'channels', String(CHANNELS));
    await form.getByTestId('qemu-start').click();

    await page.waitForURL(/\/migrations\/[^/]+$/, { timeout: 15_000 });
    const id = migrationIdOf(page);
    await expect(page.getByTestId('migration-state'), qemuOutput(pair)).toHaveText('completed', { timeout: 45_000 });

    // The relay's view: one row per multifd channel, each carried through.
    const rows = page.locator('tr[data-testid="channel-row"]');
    await expect(rows).toHaveCount(CHANNELS);
    for (let ch = 0; ch < CHANNELS; ch++) {
      const state = await page.locator(`tr[data-testid="channel-row"][data-channel="${ch}"]`).getAttribute('data-state');
      expect(ACCEPTED_OR_LATER, `channel ${ch}'s state`).toContain(state);
    }

    // QEMU's own words, both sides.
    const panel = page.getByTestId('qemu-panel');
    await expect(panel).toBeVisible();
    await expect(panel.getByTestId('qemu-status-source')).toHaveText('completed');
    await expect(panel.getByTestId('qemu-status-destination')).toHaveText('completed');
    await expect(panel.getByTestId('qemu-error')).toHaveCount(0);
    await expect(page.getByTestId('qemu-to')).toHaveText(pair.destinationQmp);
    await expect(page.getByTestId('failure')).toHaveCount(0);
    await expect(page.getByTestId('diagnosis')).toHaveCount(0);
    await screenshot(page, testInfo, 'qemu-mode-completed');

    const detail = await getMigration(request, id);
    expect(detail.summary.state).toBe('completed');
    expect(detail.snapshot.role).toBe('relay');
    expect(detail.qemu?.source?.status).toBe('completed');
    expect(detail.qemu?.destination?.status).toBe('completed');
    expect(detail.summary.uuid).toBe(pair.uuid);

    // A reload rebuilds the same view from the detail and timeline.
    await page.reload();
    await expect(page.getByTestId('migration-state')).toHaveText('completed');
    await expect(page.locator('tr[data-testid="channel-row"]')).toHaveCount(CHANNELS);
    await expect(page.getByTestId('qemu-status-destination')).toHaveText('completed');
  });

  test('fault lab: a wrong UUID injected by the relay on channel 2 fails, and the console names channel 2 and the code', async ({ page, request }, testInfo) => {
    const pair = await startPair();
    const form = await openQemuForm(page);
    await setField(form, 'sourceQmp', pair.sourceQmp);
    await setField(form, 'destinationQmp', pair.destinationQmp);
    await setField(form, 'channels', String(CHANNELS));
    await form.getByTestId('qemu-fault-lab-toggle').click();
    await form.getByTestId('qemu-add-fault').click();
    await expect(form.getByTestId('qemu-fault-row')).toHaveCount(1);
    await setField(form, 'inject.0.channel', '2');
    await setField(form, 'inject.0.kind', 'uuid');
    await expect(form.getByTestId('qemu-fault-spec')).toHaveText('ch2:uuid');
    await form.getByTestId('qemu-start').click();

    await page.waitForURL(/\/migrations\/[^/]+$/, { timeout: 15_000 });
    const id = migrationIdOf(page);
    // QEMU's destination may linger after the failure: the server waits at most 5 s for it.
    await expect(page.getByTestId('migration-state'), qemuOutput(pair)).toHaveText('failed', { timeout: 45_000 });

    await expect(page.getByTestId('injected')).toContainText('fault lab: ch2:uuid');
    await expect(page.getByTestId('failure-code')).toHaveText('MIGRATION_CHANNEL_UUID_MISMATCH');
    await expect(page.getByTestId('failure-channel')).toHaveText('2');

    const diagnosis = page.getByTestId('diagnosis');
    await expect(diagnosis).toBeVisible();
    await expect(page.getByTestId('likely-cause')).toContainText('channel 2');
    await expect(page.getByTestId('cause-injected')).toContainText('ch2:uuid');
    const diff = diagnosis.getByTestId('uuid-diff');
    await expect(diff).toHaveCount(1);
    await expect(diff).toHaveAttribute('data-channel', '2');
    await expect(diff.getByTestId('uuid-expected')).toHaveText(pair.uuid);
    await expect(diagnosis.locator('[data-testid="diagnosis-channel"][data-channel="2"]')).toContainText(/rejected/);
    await expect(page.locator('tr[data-testid="channel-row"][data-channel="2"]')).toHaveAttribute('data-state', 'rejected');

    // QEMU's side: the panel is there, and QEMU's source did not complete.
    await expect(page.getByTestId('qemu-panel')).toBeVisible();
    await expect(page.getByTestId('qemu-status-source')).not.toHaveText('completed');
    await screenshot(page, testInfo, 'qemu-mode-uuid-fault');

    const { summary } = await getMigration(request, id);
    expect(summary.state).toBe('failed');
    expect(summary.errorCode).toBe('MIGRATION_CHANNEL_UUID_MISMATCH');
    expect(summary.inject).toEqual(['ch2:uuid']);
  });

  test("QEMU refuses a command (a destination without -incoming defer): QEMU's words under the form (502), nothing starts", async ({ page }, testInfo) => {
    const pair = await startPair({ defer: false });
    const form = await openQemuForm(page);
    await setField(form, 'sourceQmp', pair.sourceQmp);
    await setField(form, 'destinationQmp', pair.destinationQmp);
    await form.getByTestId('qemu-start').click();
    const error = form.getByTestId('qemu-form-error');
    await expect(error, qemuOutput(pair)).toBeVisible({ timeout: 15_000 });
    await expect(error).toHaveAttribute('data-code', 'MIGRATION_REMOTE_FAILED');
    // As the server passed it on: which QEMU, which command, then QEMU's own sentence.
    await expect(form.getByTestId('qemu-form-error-message')).toHaveText(/^QEMU destination: migrate-incoming: .*incoming/);
    await expect(page).toHaveURL(/\/$/);
    await screenshot(page, testInfo, 'qemu-form-remote-failed');
  });
});
