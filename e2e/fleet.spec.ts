/**
 * The fleet, as an operator uses it: two `multifd agent` processes started here (two "hosts"
 * on loopback, each with its own token file, mode 0600), added on /agents by URL and token
 * (a wrong token is refused on its field), a guest created on one from the page, migrated to
 * the other from the console's Fleet tab and watched to completion on both sides, then
 * migrated back. Then an evacuation: three small guests off one agent with at most two
 * leaving at once, the queue shown live until all three completed. Last, an agent killed:
 * shown down at once, with the reason.
 *
 * The console's data directory is shared with the other specs (and may be kept across runs):
 * agent names are unique per run, and the agents are removed from the console afterwards.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, test, type Locator, type Page } from '@playwright/test';
import type { AgentView, EvacuationView, GuestSummary, MigrationSummary } from '../lib/contracts/console';
import { makeFleetNet, type FleetNet } from '../server/netns';
import { MiB, getMigration, migrationIdOf, openConsole, openPage, screenshot, setField, startAgent, type AgentProcess } from './support';

const run = randomBytes(3).toString('hex');
const A = `e2e-a-${run}`;
const B = `e2e-b-${run}`;

test.describe.configure({ mode: 'serial' });

let tmp = '';
/** Two hosts as network namespaces when root (as CI is); else the agents run on loopback. */
let net: FleetNet | null = null;
const agents: Record<string, AgentProcess> = {};
const tokens: Record<string, string> = {};
/** The guest created from the page, travelling A → B → A. */
let guest = '';

test.beforeAll(async ({}, testInfo) => {
  const root = path.resolve(testInfo.project.testDir, '..');
  tmp = mkdtempSync(path.join(os.tmpdir(), 'multifd-e2e-fleet-'));
  net = makeFleetNet();
  testInfo.annotations.push({ type: 'hosts', description: net.available ? `two network namespaces: ${net.hosts.map((h) => `${h.ns} ${h.ip}`).join(', ')}` : `agents on loopback: ${net.reason}` });
  await Promise.all(
    [A, B].map(async (name, i) => {
      const tokenFile = path.join(tmp, `${name}.token`);
      tokens[name] = randomBytes(32).toString('hex');
      writeFileSync(tokenFile, tokens[name], { mode: 0o600 });
      const host = net?.hosts[i];
      agents[name] = await startAgent(root, { name, tokenFile, dataDir: path.join(tmp, name), host: host?.ip, wrap: host?.wrap });
    }),
  );
});

test.afterAll(async ({ request }) => {
  // The console forgets them (it would keep reconnecting), then they stop, then their files go.
  for (const name of [A, B]) await request.delete(`/api/agents/${name}`).catch(() => {});
  await Promise.all(Object.values(agents).map((a) => a.stop(3000).catch(() => {})));
  net?.cleanup();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const row = (page: Page, name: string) => page.locator(`tr[data-testid="agent-row"][data-agent="${name}"]`);
const panel = (page: Page, name: string) => page.locator(`[data-testid="agent-panel"][data-agent="${name}"]`);
const guestRow = (p: Locator, uuid: string) => p.locator(`tr[data-testid="agent-guest-row"][data-uuid="${uuid}"]`);

async function openAgents(page: Page): Promise<Locator> {
  const form = page.getByTestId('add-agent');
  await openPage(page, '/agents', form.getByTestId('add-agent-submit'));
  return form;
}

async function addAgent(form: Locator, url: string, token: string): Promise<void> {
  await setField(form, 'url', url);
  await setField(form, 'token', token);
  await form.getByTestId('add-agent-submit').click();
}

/** From the console's Fleet tab: `uuid` from one agent to the other; resolves on its live view, completed on both sides. */
async function migrateFromConsole(page: Page, from: string, to: string, uuid: string, shot?: () => Promise<unknown>): Promise<string> {
  await openConsole(page);
  await page.getByTestId('mode-fleet').click();
  const form = page.getByTestId('fleet-migration');
  await expect(form).toBeVisible();
  await setField(form, 'sourceAgent', from);
  await setField(form, 'guest', uuid);
  await setField(form, 'destinationAgent', to);
  await setField(form, 'channels', '4');
  await shot?.();
  await form.getByTestId('fleet-start').click();

  await page.waitForURL(/\/migrations\/[^/]+$/, { timeout: 15_000 });
  const id = migrationIdOf(page);
  await expect(page.getByTestId('migration-state')).toHaveText('completed', { timeout: 20_000 });
  // The destination agent's side, in the same view: its own snapshot, completed and verified.
  await expect(page.getByTestId('peer-side')).toHaveAttribute('data-state', 'completed', { timeout: 10_000 });
  await expect(page.getByTestId('peer-side')).toContainText('verified');
  await expect(page.locator('tr[data-testid="channel-row"]')).toHaveCount(4);
  // One grid, both sides: beside what the source sent, what the destination agent saw of each channel.
  await expect(page.getByTestId('channel-peer')).toHaveCount(4);
  for (const cell of await page.getByTestId('channel-peer').all()) await expect(cell).not.toHaveText('—');
  return id;
}

test('agents are added by URL and token: a wrong token is refused on its field; both show up; a guest is created on one', async ({ page, request }) => {
  const form = await openAgents(page);
  const a = agents[A];
  const b = agents[B];

  // A token the agent does not know: the console asked it, and says so on the token.
  await addAgent(form, a.url, 'x'.repeat(64));
  await expect(form.getByTestId('agent-error-token')).toContainText("refused the console's token");
  await expect(row(page, A)).toHaveCount(0);
  // Typing a new token takes the message away.
  await setField(form, 'token', tokens[A]);
  await expect(form.getByTestId('agent-error-token')).toHaveCount(0);
  await form.getByTestId('add-agent-submit').click();
  await expect(row(page, A)).toHaveAttribute('data-state', 'up');
  // Added: the form is empty again (the token is not kept in the page).
  await expect(form.locator('[name="token"]')).toHaveValue('');
  await expect(form.locator('[name="token"]')).toHaveAttribute('type', 'password');

  await addAgent(form, b.url, tokens[B]);
  await expect(row(page, B)).toHaveAttribute('data-state', 'up');
  await expect(row(page, A)).toHaveAttribute('data-state', 'up');
  await expect(row(page, A)).toContainText(a.migrationAddress);
  await expect(row(page, B)).toContainText(b.migrationAddress);

  // A guest on A, from its panel: it shows in A's list by broadcast.
  const pa = panel(page, A);
  const newGuest = pa.getByTestId('new-guest');
  await setField(newGuest, 'name', `web-${run}`);
  await setField(newGuest, 'ramSize', '32');
  await newGuest.getByTestId('new-guest-submit').click();
  const created = pa.locator(`tr[data-testid="agent-guest-row"][data-name="web-${run}"]`);
  await expect(created).toHaveAttribute('data-state', 'running');
  guest = (await created.getAttribute('data-uuid')) ?? '';
  expect(guest).toMatch(/^[0-9a-f-]{36}$/);
  await expect(row(page, A).getByTestId('agent-guest-count')).toHaveText('1');

  // The console's own record agrees with the page.
  const listed = ((await (await request.get('/api/agents')).json()) as { agents: AgentView[] }).agents;
  expect(listed.find((x) => x.name === A)?.guests.map((g) => g.uuid)).toContain(guest);
});

test('the Fleet tab migrates the guest A → B (both sides completed, the guest listed under B), then back B → A', async ({ page, request }, testInfo) => {
  test.skip(!guest, 'needs the guest of the first test');

  const there = await migrateFromConsole(page, A, B, guest, () => screenshot(page, testInfo, 'fleet-form'));
  await screenshot(page, testInfo, 'fleet-live-view-completed');
  const detail = await getMigration(request, there);
  expect(detail.summary.agents).toEqual({ source: A, destination: B });
  expect(detail.destination?.state).toBe('completed');

  // The console's migration list names the two hosts.
  await openConsole(page);
  await expect(page.locator(`tr[data-testid="migration-row"][data-id="${there}"]`)).toContainText(`${A} → ${B}`);

  await openAgents(page);
  await expect(guestRow(panel(page, B), guest)).toHaveAttribute('data-state', 'running');
  await expect(guestRow(panel(page, A), guest)).toHaveCount(0);

  const back = await migrateFromConsole(page, B, A, guest);
  expect(back).not.toBe(there);
  await openAgents(page);
  await expect(guestRow(panel(page, A), guest)).toHaveAttribute('data-state', 'running');
  await expect(guestRow(panel(page, B), guest)).toHaveCount(0);
});

test('evacuating A with at most 2 out at once: the queue shows, and ends with 3 completed on B', async ({ page, request }, testInfo) => {
  await openAgents(page);
  const pa = panel(page, A);
  // Only the three guests below are to leave: the travelled one is stopped, from the page.
  if (guest) {
    page.once('dialog', (d) => void d.accept());
    await guestRow(pa, guest).getByTestId('stop-agent-guest').click();
    await expect(guestRow(pa, guest)).toHaveCount(0);
  }
  // Three small guests, from the API to save time.
  const made: string[] = [];
  for (let i = 0; i < 3; i++) {
    const res = await request.post(`/api/agents/${A}/guests`, { data: { name: `evac-${run}-${i}`, ramSize: 16 * MiB } });
    expect(res.status(), await res.text()).toBe(201);
    made.push(((await res.json()) as GuestSummary).uuid);
  }
  await expect(pa.getByTestId('agent-guest-row')).toHaveCount(3);

  const form = pa.getByTestId('evacuate');
  await expect(form.locator('[name="maxInFlight"]')).toHaveValue('5');
  await setField(form, 'maxOutboundPerHost', '2');
  // Evacuate asks first: declined, nothing is sent.
  let asked = '';
  page.once('dialog', (d) => {
    asked = d.message();
    void d.dismiss();
  });
  await form.getByTestId('evacuate-submit').click();
  await expect.poll(() => asked).toContain(`Evacuate ${A}`);
  await expect(pa.getByTestId('evacuation')).toHaveCount(0);
  const answer = page.waitForResponse((r) => r.url().endsWith(`/api/agents/${A}/evacuate`) && r.request().method() === 'POST');
  page.once('dialog', (d) => void d.accept());
  await form.getByTestId('evacuate-submit').click();
  // As it started: two leaving, the third waiting its turn.
  const started = (await (await answer).json()) as EvacuationView;
  expect(started.limits).toEqual({ maxInFlight: 5, maxOutboundPerHost: 2 });
  expect(started.items.map((x) => x.guest).sort()).toEqual([...made].sort());
  expect(started.items.filter((x) => x.state === 'queued')).toHaveLength(1);

  const evacuation = pa.getByTestId('evacuation');
  await expect(evacuation).toHaveAttribute('data-id', started.id);
  await expect(evacuation.getByTestId('evacuation-row')).toHaveCount(3);
  await expect(evacuation).toHaveAttribute('data-state', 'done', { timeout: 30_000 });
  await expect(evacuation.locator('tr[data-testid="evacuation-row"][data-state="completed"]')).toHaveCount(3);
  await expect(evacuation.getByTestId('evacuation-summary')).toContainText('3 of 3 completed · 0 failed · 0 skipped');
  await expect(evacuation.getByTestId('evacuation-summary')).toContainText('at most 2 at once');
  for (const r of await evacuation.getByTestId('evacuation-row').all()) await expect(r).toContainText(B);
  await screenshot(page, testInfo, 'evacuation-done');

  // Each row links to its migration's live view; the guests run on B now, none on A.
  const link = evacuation.getByTestId('evacuation-migration').first();
  await expect(link).toHaveAttribute('href', /^\/migrations\/.+/);
  await expect(pa.getByTestId('agent-guest-row')).toHaveCount(0);
  for (const uuid of made) await expect(guestRow(panel(page, B), uuid)).toHaveAttribute('data-state', 'running');

  const done = ((await (await request.get(`/api/evacuations/${started.id}`)).json()) as EvacuationView);
  expect(done.peakInFlight).toBeLessThanOrEqual(2);
  const migrations = ((await (await request.get('/api/migrations')).json()) as { migrations: MigrationSummary[] }).migrations;
  for (const it of done.items) expect(migrations.find((m) => m.id === it.migrationId)?.agents).toEqual({ source: A, destination: B });
});

test('an agent that is gone shows down at once, with the reason; the page does not wait on it', async ({ page }, testInfo) => {
  await agents[B].stop(3000);
  await openAgents(page);
  await expect(row(page, B)).toHaveAttribute('data-state', 'down', { timeout: 5000 });
  await expect(row(page, B).getByTestId('agent-error')).not.toBeEmpty();
  await expect(row(page, A)).toHaveAttribute('data-state', 'up');
  // Its panel keeps what it last reported, and says so; the actions that would ask it are off.
  await expect(panel(page, B).getByTestId('agent-not-up')).toBeVisible();
  await expect(panel(page, B).getByTestId('new-guest-submit')).toBeDisabled();
  // With B down A has nowhere to evacuate to, and says so.
  await expect(panel(page, A).getByTestId('evacuate-nowhere')).toBeVisible();
  await expect(panel(page, A).getByTestId('evacuate-submit')).toBeDisabled();
  // Last seen: an agent that answers is "now"; one that does not counts up from its last answer.
  await expect(row(page, A).getByTestId('agent-last-seen')).toHaveText('now');
  await expect(row(page, B).getByTestId('agent-last-seen')).toContainText('ago');
  await screenshot(page, testInfo, 'agent-down');
});
