/**
 * What the e2e specs share: the REST API as typed helpers, form filling by field name, and a
 * recorder that watches the live view in the browser (every DOM change) so short-lived states
 * (a channel's throughput while it streams) are seen even between Playwright's polls.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, type APIRequestContext, type Locator, type Page, type TestInfo } from '@playwright/test';
import type { GuestSummary, MigrationDetail, MigrationSummary } from '../lib/contracts/console';

export type { GuestSummary, MigrationDetail, MigrationSummary };

const MiB = 1024 * 1024;
export { MiB };

export const TERMINAL = ['completed', 'failed', 'cancelled'];
/** A channel that got this far was accepted by the destination. */
export const ACCEPTED_OR_LATER = ['accepted', 'streaming', 'synced', 'closed'];

// --- REST ------------------------------------------------------------------------------

async function json<T>(res: Awaited<ReturnType<APIRequestContext['get']>>, what: string): Promise<T> {
  expect(res.ok(), `${what}: HTTP ${res.status()} ${await res.text().catch(() => '')}`).toBe(true);
  return (await res.json()) as T;
}

export async function listMigrations(request: APIRequestContext): Promise<MigrationSummary[]> {
  return (await json<{ migrations: MigrationSummary[] }>(await request.get('/api/migrations'), 'GET /api/migrations')).migrations;
}

export async function getMigration(request: APIRequestContext, id: string): Promise<MigrationDetail> {
  return json<MigrationDetail>(await request.get(`/api/migrations/${encodeURIComponent(id)}`), `GET /api/migrations/${id}`);
}

export async function listGuests(request: APIRequestContext): Promise<GuestSummary[]> {
  return (await json<{ guests: GuestSummary[] }>(await request.get('/api/guests'), 'GET /api/guests')).guests;
}

/** Polls GET /api/migrations/:id until the migration ended; returns the final detail. */
export async function waitForEnd(request: APIRequestContext, id: string, timeout = 45_000): Promise<MigrationDetail> {
  let last: MigrationDetail | null = null;
  await expect
    .poll(
      async () => {
        last = await getMigration(request, id);
        return last.summary.state;
      },
      { timeout, intervals: [100, 250, 500], message: `migration ${id} should end` },
    )
    .toMatch(/^(completed|failed|cancelled)$/);
  return last!;
}

/** Stops guests the tests left running (best effort), so later tests start from a quiet host. */
export async function stopGuests(request: APIRequestContext, uuids: Iterable<string | null | undefined>): Promise<void> {
  for (const uuid of uuids) {
    if (uuid) await request.post(`/api/guests/${encodeURIComponent(uuid)}/stop`).catch(() => {});
  }
}

// --- pages -----------------------------------------------------------------------------

/**
 * Opens a console page and waits until it is interactive: live updates connected (the nav's
 * socket indicator) and, when given, a control React enables once it has hydrated the page
 * (the form's Start button is disabled until then: typing before hydration would be lost).
 */
export async function openPage(page: Page, url: string, hydrated?: Locator): Promise<void> {
  await page.goto(url);
  await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'connected', { timeout: 15_000 });
  if (hydrated) await expect(hydrated).toBeEnabled({ timeout: 15_000 });
}

/** The console's front page, its new-migration form ready for input. */
export async function openConsole(page: Page): Promise<Locator> {
  const form = page.getByTestId('new-migration');
  await openPage(page, '/', form.getByTestId('start'));
  return form;
}

// --- the form --------------------------------------------------------------------------

/** Sets a field of the new-migration form by its name, whatever control it is. */
export async function setField(form: Locator, name: string, value: string): Promise<void> {
  const field = form.locator(`[name="${name}"]`);
  await expect(field, `form field "${name}"`).toHaveCount(1);
  const tag = await field.evaluate((el) => el.tagName.toLowerCase());
  if (tag === 'select') await field.selectOption(value);
  else await field.fill(value);
}

/** The migration id of a /migrations/<id> page. */
export function migrationIdOf(page: Page): string {
  const m = /\/migrations\/([^/?#]+)/.exec(new URL(page.url()).pathname);
  expect(m, `a /migrations/<id> URL, got ${page.url()}`).not.toBeNull();
  return decodeURIComponent(m![1]);
}

// --- the live view recorder ------------------------------------------------------------

export interface ChannelSeen {
  states: string[];
  maxBps: number;
}
export interface LiveSeen {
  /** every distinct migration-state text, in order */
  states: string[];
  channels: Record<string, ChannelSeen>;
}

declare global {
  interface Window {
    __multifdSeen?: Record<string, LiveSeen>;
  }
}

/**
 * Installs (before any page script) a recorder of what the live view shows, keyed by path:
 * every state the page displayed, and per channel row every data-state and the highest
 * data-bps. It follows client-side navigation (from `/` to `/migrations/<id>`).
 */
export async function recordLiveView(page: Page): Promise<void> {
  await page.addInitScript(() => {
    const seen: Record<string, LiveSeen> = (window.__multifdSeen = {});
    const scan = () => {
      const state = document.querySelector('[data-testid="migration-state"]')?.textContent?.trim() ?? '';
      const rows = document.querySelectorAll('tr[data-testid="channel-row"]');
      if (!state && rows.length === 0) return;
      const rec = (seen[location.pathname] ??= { states: [], channels: {} });
      if (state && rec.states[rec.states.length - 1] !== state) rec.states.push(state);
      rows.forEach((row) => {
        const id = row.getAttribute('data-channel') ?? '?';
        const ch = (rec.channels[id] ??= { states: [], maxBps: 0 });
        const s = row.getAttribute('data-state') ?? '';
        if (s && ch.states[ch.states.length - 1] !== s) ch.states.push(s);
        const bps = Number(row.querySelector('[data-testid="channel-throughput"]')?.getAttribute('data-bps'));
        if (Number.isFinite(bps) && bps > ch.maxBps) ch.maxBps = bps;
      });
    };
    let queued = false;
    const schedule = () => {
      if (queued) return;
      queued = true;
      queueMicrotask(() => {
        queued = false;
        scan();
      });
    };
    const start = () => {
      new MutationObserver(schedule).observe(document.documentElement, {
        subtree: true,
        childList: true,
        attributes: true,
        characterData: true,
      });
      setInterval(scan, 50);
      scan();
    };
    if (document.documentElement) start();
    else document.addEventListener('DOMContentLoaded', start);
  });
}

export async function liveSeen(page: Page): Promise<LiveSeen> {
  const path = new URL(page.url()).pathname;
  return page.evaluate((p) => window.__multifdSeen?.[p] ?? { states: [], channels: {} }, path);
}

/** A full-page screenshot kept with the test's artifacts (test-results/...) and attached to its report. */
export async function screenshot(page: Page, testInfo: TestInfo, name: string): Promise<string> {
  const file = testInfo.outputPath(`${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  await testInfo.attach(name, { path: file, contentType: 'image/png' });
  return file;
}

// --- `multifd` processes of their own: a dest, agents ---------------------------------

/** A `multifd` child process (another "host"), listening on loopback. */
export interface MultifdProcess {
  child: ChildProcess;
  /** Everything it printed, for failure messages. */
  output(): string;
  /** SIGTERM (it closes cleanly), then SIGKILL if it has not exited within `ms`. */
  stop(ms?: number): Promise<void>;
}

/** A `multifd dest` child process. */
export interface DestProcess extends MultifdProcess {
  address: string;
}

/** A `multifd agent` child process: its control URL (for the console) and its migration address. */
export interface AgentProcess extends MultifdProcess {
  name: string;
  url: string;
  migrationAddress: string;
}

/**
 * Starts `node bin/multifd.mjs ...args` from the repository at `root` and resolves once an
 * ndjson line on its stdout gives `pick` what it waits for (the `{"type":"listening"}` line).
 * On failure the process is stopped; otherwise stop it in a `finally` or an afterAll.
 */
async function startMultifd<T>(
  root: string,
  args: string[],
  pick: (line: Record<string, unknown>) => T | null,
  timeoutMs: number,
  /** A command that runs ours, e.g. ['ip', 'netns', 'exec', NS] (it must exec it). */
  wrap: readonly string[] = [],
): Promise<MultifdProcess & { picked: T }> {
  const what = `multifd ${args[0]}`;
  const [cmd, ...cmdArgs] = [...wrap, process.execPath, path.join(root, 'bin', 'multifd.mjs'), ...args];
  const child = spawn(cmd, cmdArgs, {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  let out = '';
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err = (err + c.toString('utf8')).slice(-4000)));
  const output = () => `stdout: ${out.slice(-2000)}\nstderr: ${err}`;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (ms = 5_000) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    await exited;
    clearTimeout(timer);
  };
  try {
    const picked = await new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${what} printed no {"type":"listening"} line within ${timeoutMs} ms\n${output()}`)), timeoutMs);
      let buf = '';
      child.stdout!.on('data', (c: Buffer) => {
        const text = c.toString('utf8');
        out = (out + text).slice(-100_000);
        buf += text;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line.startsWith('{')) continue;
          try {
            const v = pick(JSON.parse(line) as Record<string, unknown>);
            if (v !== null) {
              clearTimeout(timer);
              resolve(v);
            }
          } catch {
            // not JSON: ignore
          }
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${what} exited (${code ?? signal}) before listening\n${output()}`));
      });
    });
    return { picked, child, output, stop };
  } catch (e) {
    await stop(1000);
    throw e;
  }
}

/**
 * Starts `node bin/multifd.mjs dest --listen 127.0.0.1:0 --events ndjson ...args` from the
 * repository at `root` and resolves once its first line, `{"type":"listening","address":…}`,
 * says where. Stop it in a `finally`.
 */
export async function startDest(root: string, args: string[], timeoutMs = 20_000): Promise<DestProcess> {
  const p = await startMultifd(
    root,
    ['dest', '--listen', '127.0.0.1:0', '--events', 'ndjson', ...args],
    (ev) => (ev.type === 'listening' && typeof ev.address === 'string' ? ev.address : null),
    timeoutMs,
  );
  return { address: p.picked, child: p.child, output: p.output, stop: p.stop };
}

/**
 * Starts `multifd agent` named `name` on loopback (control API and migrations on ports the
 * kernel picks), its token read from `tokenFile` (mode 0600, at least 32 characters), its
 * history in `dataDir`; resolves once its first line, `{"type":"listening","url":…,
 * "migrationAddress":…}`, says where. Stop it in an afterAll.
 */
/** An agent; `host` and `wrap` put it on another "host" (a network namespace: server/netns.ts). */
export async function startAgent(
  root: string,
  opts: { name: string; tokenFile: string; dataDir: string; host?: string; wrap?: readonly string[] },
  timeoutMs = 20_000,
): Promise<AgentProcess> {
  const at = opts.host ?? '127.0.0.1';
  const p = await startMultifd(
    root,
    ['agent', '--listen', `${at}:0`, '--migration-listen', `${at}:0`, '--name', opts.name, '--token-file', opts.tokenFile, '--data-dir', opts.dataDir, '--events', 'ndjson'],
    (ev) => (ev.type === 'listening' && typeof ev.url === 'string' ? { url: ev.url, migrationAddress: String(ev.migrationAddress) } : null),
    timeoutMs,
    opts.wrap ?? [],
  );
  return { name: opts.name, ...p.picked, child: p.child, output: p.output, stop: p.stop };
}

// --- a console of its own (other flags or environment than the shared webServer's) ------

/** A console child process (`server/main.ts`) on a fresh data directory. */
export interface ConsoleProcess {
  child: ChildProcess;
  /** SIGTERM and wait for it to exit; the data directory is removed. Safe to call twice. */
  stop(): Promise<void>;
  /** SIGKILL, as a crash or an OOM kill would, and wait for it to exit. */
  kill(): Promise<void>;
}

/** Starts `server/main.ts --listen LISTEN --data-dir <fresh> ...args` and resolves once it serves. */
export async function startConsoleProcess(root: string, listen: string, args: string[] = [], env: Record<string, string> = {}): Promise<ConsoleProcess> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'multifd-e2e-console-'));
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts', '--listen', listen, '--data-dir', dataDir, ...args], {
    cwd: root,
    env: { ...process.env, ...env, NEXT_TELEMETRY_DISABLED: '1' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const end = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
    rmSync(dataDir, { recursive: true, force: true });
  };
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString('utf8')));
  await expect.poll(() => err, { timeout: 30_000, message: 'the console starts' }).toContain('multifd console: http://');
  return { child, stop: () => end('SIGTERM'), kill: () => end('SIGKILL') };
}
