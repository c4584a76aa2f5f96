/**
 * `npm run bench:fleet -- [--levels 1,4,8,16,32] [--ram 32MiB] [--rate 4MiB/s] [--channels 4] [--json FILE]`
 *
 * How many concurrent migrations one console follows before its event stream lags. Starts
 * the real console (server/main.ts; it needs the production build, as `npm start` makes)
 * and two `multifd agent` processes, all on loopback, adds the agents to the console, and
 * for each level M migrates M guests from host-a to host-b at once (each capped at --rate,
 * so they overlap for the whole run), with one socket.io client subscribed to all M rooms
 * of the console, as M open live views would be.
 *
 * Per level: the lag of every event the client receives (arrival minus the time the agent
 * stamped on it; one clock, one machine), p50 / p95 / max; events and batches a second; the
 * console process's CPU share. "Lags" = p95 above 1 s: the stream no longer keeps up.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { io as connect, type Socket } from 'socket.io-client';
import type { MigrationEvent } from '../lib/contracts';
import type { ClientToServerEvents, GuestSummary, ServerToClientEvents } from '../lib/contracts/console';
import { parseBytesPerSecond, parseSize } from '../lib/guest/units';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    levels: { type: 'string', default: '1,4,8,16,32' },
    ram: { type: 'string', default: '32MiB' },
    rate: { type: 'string', default: '4MiB/s' },
    channels: { type: 'string', default: '4' },
    port: { type: 'string', default: '3412' },
    json: { type: 'string' },
  },
});
const levels = values.levels!.split(',').map(Number);
const ramSize = parseSize(values.ram!);
const rate = parseBytesPerSecond(values.rate!);
const channels = Number(values.channels);
const base = `http://127.0.0.1:${values.port}`;
const LAG_LIMIT_MS = 1000;

const dir = mkdtempSync(path.join(os.tmpdir(), 'multifd-fleet-bench-'));
const kids: ChildProcess[] = [];
const stopAll = () => {
  for (const k of kids) if (k.exitCode === null) k.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
};
process.on('exit', stopAll);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (s: string) => process.stderr.write(`[fleet] ${s}\n`);

/** Starts a process and resolves with its first stdout line matching `ready`. */
function startProc(args: string[], env: Record<string, string>, ready: RegExp, from: 'stdout' | 'stderr'): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  kids.push(child);
  return new Promise((resolve, reject) => {
    let buf = '';
    const stream = from === 'stdout' ? child.stdout! : child.stderr!;
    stream.setEncoding('utf8');
    stream.on('data', (s: string) => {
      buf += s;
      const line = buf.split('\n').find((l) => ready.test(l));
      if (line) resolve({ child, line });
    });
    (from === 'stdout' ? child.stderr! : child.stdout!).resume();
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}: ${buf.slice(-500)}`)));
    setTimeout(() => reject(new Error(`${args.join(' ')}: not ready in 60 s`)), 60_000).unref();
  });
}

async function call<T>(method: string, url: string, body?: unknown): Promise<T> {
  const res = await fetch(base + url, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const json = (await res.json()) as T;
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

function cpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime, in clock ticks (100 Hz)
}

const pct = (xs: number[], p: number) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] : 0);

async function main(): Promise<void> {
  const consoleProc = await startProc(['--import', 'tsx', 'server/main.ts', '--listen', `127.0.0.1:${values.port}`], { MULTIFD_DATA_DIR: path.join(dir, 'console'), NEXT_TELEMETRY_DISABLED: '1' }, /multifd console: http/, 'stderr');
  log(consoleProc.line.trim());
  const agents: Array<{ name: string; url: string; token: string }> = [];
  for (const name of ['host-a', 'host-b']) {
    const token = `${name}-${'0123456789abcdef'.repeat(3)}`;
    const tokenFile = path.join(dir, `${name}.token`);
    writeFileSync(tokenFile, token, { mode: 0o600 });
    const { line } = await startProc(['bin/multifd.mjs', 'agent', '--listen', '127.0.0.1:0', '--migration-listen', '127.0.0.1:0', '--name', name, '--token-file', tokenFile, '--data-dir', path.join(dir, name), '--events', 'ndjson', '--max-migrations', '1024'], {}, /"type":"listening"/, 'stdout');
    agents.push({ name, url: (JSON.parse(line) as { url: string }).url, token });
  }
  for (const a of agents) await call('POST', '/api/agents', { url: a.url, token: a.token });
  const socket: Socket<ServerToClientEvents, ClientToServerEvents> = connect(base, { transports: ['websocket'] });
  await new Promise<void>((r) => socket.once('connect', () => r()));

  const rows: Array<Record<string, number | string | boolean>> = [];
  for (const m of levels) {
    const guests: GuestSummary[] = [];
    for (let i = 0; i < m; i++) guests.push(await call<GuestSummary>('POST', '/api/agents/host-a/guests', { name: `g${m}-${i}`, ramSize, fill: 'random' }));
    const lags: number[] = [];
    let events = 0;
    let batches = 0;
    const ended = new Set<string>();
    const ids = new Set<string>();
    const onBatch = (b: { id: string; events: MigrationEvent[] }) => {
      if (!ids.has(b.id)) return;
      const now = Date.now();
      batches++;
      for (const e of b.events) {
        events++;
        lags.push(now - e.time);
        if (e.role === 'source' && (e.type === 'completed' || e.type === 'failed' || e.type === 'cancelled')) ended.add(b.id);
      }
    };
    socket.on('migration:events', onBatch);
    const pid = consoleProc.child.pid!;
    const t0 = Date.now();
    const c0 = cpuTicks(pid);
    // A start the source agent cannot take in time is counted, not fatal: it is what this measures too.
    const refusals: string[] = [];
    const started = (
      await Promise.all(
        guests.map((g) =>
          call<{ id: string }>('POST', '/api/fleet/migrations', { sourceAgent: 'host-a', guest: g.uuid, destinationAgent: 'host-b', channels, maxBandwidth: rate }).catch((err: Error) => {
            refusals.push(err.message);
            return null;
          }),
        ),
      )
    ).filter((s): s is { id: string } => s !== null);
    if (refusals.length) log(`${refusals.length} of ${m} starts refused, e.g. ${refusals[0]}`);
    for (const s of started) {
      ids.add(s.id);
      // What happened before the subscription is in the reply's timeline (an end included).
      const reply = await new Promise<{ ok: boolean; timeline?: MigrationEvent[] }>((r) => socket.emit('migration:subscribe', s.id, r));
      for (const e of reply.timeline ?? []) {
        if (e.role === 'source' && (e.type === 'completed' || e.type === 'failed' || e.type === 'cancelled')) ended.add(s.id);
      }
    }
    while (ended.size < started.length && Date.now() - t0 < 600_000) await sleep(100);
    const wallS = (Date.now() - t0) / 1000;
    const cpu = (cpuTicks(pid) - c0) / 100 / wallS;
    socket.off('migration:events', onBatch);
    const failed = (await Promise.all(started.map((s) => call<{ summary: { state: string } }>('GET', `/api/migrations/${s.id}`)))).filter((d) => d.summary.state !== 'completed').length;
    const row = {
      migrations: m,
      wallS: +wallS.toFixed(1),
      events,
      eventsPerS: Math.round(events / wallS),
      batchesPerS: +(batches / wallS).toFixed(1),
      lagP50Ms: pct(lags, 50),
      lagP95Ms: pct(lags, 95),
      lagMaxMs: pct(lags, 100),
      consoleCpuPct: Math.round(cpu * 100),
      failed,
      refused: refusals.length,
      lags: pct(lags, 95) > LAG_LIMIT_MS,
    };
    rows.push(row);
    log(JSON.stringify(row));
    // Free host-b for the next level.
    const onB = await call<{ guests: GuestSummary[] }>('GET', '/api/agents').then((r) => (r as unknown as { agents: Array<{ name: string; guests: GuestSummary[] }> }).agents.find((a) => a.name === 'host-b')?.guests ?? []);
    for (const g of onB) await call('POST', `/api/agents/host-b/guests/${g.uuid}/stop`).catch(() => undefined);
  }
  socket.close();

  const lagging = rows.find((r) => r.lags);
  process.stdout.write(
    `\nfleet: one console, two agents on loopback, ${values.ram} guests at ${values.rate} each, ${channels} channels\n\n` +
      '| concurrent migrations | wall s | events/s | batches/s | lag p50 ms | lag p95 ms | lag max ms | console CPU | failed | refused |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n' +
      rows.map((r) => `| ${r.migrations} | ${r.wallS} | ${r.eventsPerS} | ${r.batchesPerS} | ${r.lagP50Ms} | ${r.lagP95Ms} | ${r.lagMaxMs} | ${r.consoleCpuPct} % | ${r.failed} | ${r.refused} |`).join('\n') +
      `\n\n${lagging ? `the event stream lags (p95 > ${LAG_LIMIT_MS} ms) from ${lagging.migrations} concurrent migrations` : `no level lagged (p95 <= ${LAG_LIMIT_MS} ms up to ${levels[levels.length - 1]})`}\n`,
  );
  if (values.json) writeFileSync(values.json, `${JSON.stringify({ date: new Date().toISOString(), ramSize, rate, channels, rows }, null, 2)}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench/fleet: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
