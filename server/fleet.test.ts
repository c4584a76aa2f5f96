/**
 * The console's fleet: two `multifd agent` processes, each in its own network namespace
 * (two hosts on one bridge; on loopback where namespaces cannot be made, and the suite's
 * name says so), and a console's server parts (registry, REST, socket.io, SQLite) in this
 * process, in the root namespace. Agents are added by address
 * and token and kept (0600), a guest migrates between them through the console with both
 * sides' events in one room and the record in history, a restarted console finds its agents
 * again, and a destination agent killed mid-migration fails it with a code naming that
 * agent while the guest keeps running on the source.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { Server } from 'socket.io';
import { io as connect, type Socket } from 'socket.io-client';
import type { MigrationEvent, MigrationSnapshot } from '../lib/contracts';
import {
  EvacuateSchema,
  StartFleetMigrationSchema,
  StartMigrationSchema,
  type AgentView,
  type ClientToServerEvents,
  type GuestSummary,
  type MigrationDetail,
  type ServerToClientEvents,
  type SubscribeReply,
} from '../lib/contracts/console';
import { AgentStore } from './agent-store';
import { createApi } from './api';
import { newToken } from './auth';
import { killAll, start, type Cli } from './cli/test-support';
import { Evacuations } from './evacuation';
import { Fleet, reachable, type FleetRecord } from './fleet';
import { summaryFrom } from './summary';
import { makeFleetNet, type FleetNet } from './netns';
import { attachSocket } from './socket';
import { startTestConsole, type TestConsole } from './test-support';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface AgentProc {
  name: string;
  cli: Cli;
  url: string;
  token: string;
}

// Two hosts as network namespaces when this runs as root (as CI does); else agents on loopback.
const net: FleetNet = makeFleetNet();
const where = net.available ? `in two network namespaces (${net.hosts.map((h) => `${h.ns} ${h.ip}`).join(', ')})` : `on loopback (${net.reason})`;

describe(`the fleet: a console and two agents ${where}`, () => {
  let tc: TestConsole;
  const agents: AgentProc[] = [];

  async function startAgent(name: string): Promise<AgentProc> {
    const token = newToken();
    const tokenFile = path.join(tc.dataDir, `${name}.token`);
    writeFileSync(tokenFile, token, { mode: 0o600 });
    const host = net.hosts.find((h) => `host-${h.name}` === name);
    const at = host?.ip ?? '127.0.0.1';
    const cli = start(
      ['agent', '--listen', `${at}:0`, '--migration-listen', `${at}:0`, '--name', name, '--token-file', tokenFile, '--data-dir', path.join(tc.dataDir, name), '--timeout-ms', '2000', '--events', 'ndjson'],
      host?.wrap ?? [],
    );
    const l = await cli.waitFor((x) => x.type === 'listening', 15_000, 'listening');
    const a = { name, cli, url: l.url as string, token };
    agents.push(a);
    return a;
  }

  async function call(method: string, url: string, body?: unknown): Promise<{ status: number; json: any }> {
    const res = await fetch(tc.url + url, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, json: await res.json() };
  }

  async function until<T>(what: string, fn: () => Promise<T | null | undefined>, ms = 30_000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = await fn();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(50);
    }
  }

  const agentState = async (name: string) => ((await call('GET', '/api/agents')).json.agents as AgentView[]).find((a) => a.name === name);
  const detail = async (id: string) => (await call('GET', `/api/migrations/${id}`)).json as MigrationDetail;

  before(async () => {
    tc = await startTestConsole((server, registry) => {
      const api = createApi(registry);
      server.on('request', (req, res) => void api(req, res));
      attachSocket(server, registry);
    });
    tc.registry.attachFleet(new Fleet(tc.dataDir, { requestTimeoutMs: 2000, settleMs: 300 }));
    await startAgent('host-a');
    await startAgent('host-b');
  });

  after(async () => {
    await tc.close();
    for (const a of agents) a.cli.kill('SIGKILL');
    killAll();
    net.cleanup();
  });

  it('adds agents by address and token: a wrong token or a dead address is refused on its field, nothing stored', async () => {
    const [a, b] = agents;
    const wrong = await call('POST', '/api/agents', { url: a.url, token: 'x'.repeat(64) });
    assert.equal(wrong.status, 422);
    assert.match(wrong.json.fields.token[0], /refused the console's token/);
    const dead = await call('POST', '/api/agents', { url: 'http://127.0.0.1:1', token: a.token });
    assert.equal(dead.status, 422);
    assert.ok(dead.json.fields.url);
    assert.deepEqual((await call('GET', '/api/agents')).json.agents, []);
    assert.ok(!existsSync(path.join(tc.dataDir, 'agents.json')), 'nothing stored');

    for (const x of [a, b]) {
      const r = await call('POST', '/api/agents', { url: x.url, token: x.token });
      assert.equal(r.status, 201, JSON.stringify(r.json));
      assert.equal(r.json.name, x.name, 'named as the agent calls itself');
    }
    await until('both up', async () => ((await call('GET', '/api/agents')).json.agents as AgentView[]).every((x) => x.state === 'up') || null);
    const file = path.join(tc.dataDir, 'agents.json');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.ok(readFileSync(file, 'utf8').includes(a.token), 'the token is kept for the next start');
    const listed = JSON.stringify((await call('GET', '/api/agents')).json);
    assert.ok(!listed.includes(a.token) && !listed.includes(b.token), 'never sent back');
    const dup = await call('POST', '/api/agents', { url: a.url, token: a.token });
    assert.equal(dup.status, 422);
  });

  it('migrates a guest from host-a to host-b through the console: both sides in one room, then in history', async () => {
    const g = await call('POST', '/api/agents/host-a/guests', { name: 'db-1', ramSize: 64 << 20, workload: 'random:8' });
    assert.equal(g.status, 201, JSON.stringify(g.json));
    const guest = g.json as GuestSummary;

    const socket = connect(tc.url, { transports: ['websocket'] }) as Socket<ServerToClientEvents, ClientToServerEvents>;
    after(() => socket.close());
    await new Promise<void>((r) => socket.once('connect', () => r()));
    const seen: MigrationEvent[] = [];
    socket.on('migration:events', (batch) => seen.push(...batch.events));

    const started = await call('POST', '/api/fleet/migrations', { sourceAgent: 'host-a', guest: guest.uuid, destinationAgent: 'host-b', channels: 4 });
    assert.equal(started.status, 201, JSON.stringify(started.json));
    const id = started.json.id as string;
    assert.deepEqual(started.json.agents, { source: 'host-a', destination: 'host-b' });
    const reply = await new Promise<SubscribeReply>((r) => socket.emit('migration:subscribe', id, r));
    assert.ok(reply.ok);
    if (reply.ok) seen.push(...reply.timeline);

    // Ended on both agents, as the console saw them.
    const done = await until('completed', async () => {
      const d = await detail(id);
      return ['completed', 'failed'].includes(d.summary?.state) && d.destination && ['completed', 'failed'].includes(d.destination.state) ? d : null;
    });
    assert.equal(done.summary.state, 'completed', JSON.stringify(done.snapshot.error));
    assert.equal(done.destination?.state, 'completed', "the destination agent's side");
    // Both agents' 'completed', through the console's one room (batches come a few times a second).
    await until("the source's completed event", async () => seen.some((e) => e.role === 'source' && e.type === 'completed') || null, 5000);
    await until("the destination's completed event", async () => seen.some((e) => e.role === 'destination' && e.type === 'completed') || null, 5000);

    await until('the guest on host-b', async () => (await agentState('host-b'))?.guests.find((x) => x.uuid === guest.uuid && x.state === 'running'));
    await until('the guest gone from host-a', async () => !(await agentState('host-a'))?.guests.some((x) => x.uuid === guest.uuid) || null);
    await until('the record in history', async () => tc.history.get(id));
    const h = tc.history.get(id)!;
    assert.equal(h.summary.agents?.destination, 'host-b');
    assert.ok(h.timeline.some((e) => e.role === 'destination'));
  });

  it('a restarted console finds its agents again', async () => {
    const again = new Fleet(tc.dataDir, { requestTimeoutMs: 2000 });
    try {
      assert.deepEqual(again.list().map((a) => a.name), ['host-a', 'host-b']);
      await until('up again', async () => again.list().every((a) => a.state === 'up') || null);
    } finally {
      again.close();
    }
  });

  it('evacuates 4 guests off host-a with at most 2 outbound at once, a visible queue, and a summary', async () => {
    for (let i = 0; i < 4; i++) {
      const g = await call('POST', '/api/agents/host-a/guests', { name: `evac-${i}`, ramSize: 32 << 20 });
      assert.equal(g.status, 201, JSON.stringify(g.json));
    }
    // 16 MiB/s each: two seconds a guest, long enough to see who runs beside whom.
    const r = await call('POST', '/api/agents/host-a/evacuate', { maxOutboundPerHost: 2, maxBandwidth: 16 << 20, compression: 'zstd' });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    const id = r.json.id as string;
    assert.equal(r.json.items.length, 4);
    assert.equal(r.json.items.filter((x: { state: string }) => x.state === 'queued').length, 2, 'two wait in the queue while two run');

    const done = await until('the evacuation done', async () => {
      const e = (await call('GET', `/api/evacuations/${id}`)).json;
      return e.state === 'done' ? e : null;
    }, 60_000);
    assert.deepEqual(done.summary, { queued: 0, migrating: 0, completed: 4, failed: 0, skipped: 0 });
    assert.equal(done.peakInFlight, 2);
    assert.ok(done.items.every((x: { destination: string }) => x.destination === 'host-b'));
    // From the migrations' own times, not the scheduler's count: never more than 2 at once.
    const details = await Promise.all(done.items.map(async (x: { migrationId: string }) => detail(x.migrationId)));
    // Every guest went with the evacuation's compression.
    assert.deepEqual(details.map((d) => d.snapshot.compression), ['zstd', 'zstd', 'zstd', 'zstd']);
    const spans = details.map((d) => d.summary);
    let most = 0;
    for (const a of spans) most = Math.max(most, spans.filter((b) => b.startedAt <= a.startedAt && (b.endedAt ?? Infinity) > a.startedAt).length);
    assert.equal(most, 2, JSON.stringify(spans.map((x) => [x.startedAt, x.endedAt])));
    assert.equal((await agentState('host-a'))?.guests.length, 0, 'host-a is empty');
  });

  it('the destination agent killed mid-migration: failed with MIGRATION_AGENT_DOWN naming it; the guest runs on; the agent shows down', async () => {
    const g = await call('POST', '/api/agents/host-a/guests', { name: 'web-2', ramSize: 128 << 20 });
    const guest = g.json as GuestSummary;
    // 16 MiB/s: eight seconds of copying, time to pull the plug.
    const started = await call('POST', '/api/fleet/migrations', { sourceAgent: 'host-a', guest: guest.uuid, destinationAgent: 'host-b', channels: 4, maxBandwidth: 16 << 20 });
    assert.equal(started.status, 201, JSON.stringify(started.json));
    const id = started.json.id as string;
    await until('active', async () => (await detail(id)).snapshot.state === 'active' || null);
    agents.find((x) => x.name === 'host-b')!.cli.kill('SIGKILL');

    const t0 = Date.now();
    const ended = await until('failed', async () => {
      const d = await detail(id);
      return d.summary.state === 'failed' ? d : null;
    });
    assert.equal(ended.summary.errorCode, 'MIGRATION_AGENT_DOWN');
    assert.match(ended.summary.errorMessage ?? '', /destination agent host-b/);
    assert.equal(ended.snapshot.error?.received, 'host-b down');
    const b = await agentState('host-b');
    assert.equal(b?.state, 'down');
    const a = await until('host-a lists the guest again', async () => (await agentState('host-a'))?.guests.find((x) => x.uuid === guest.uuid && x.migrating === null));
    assert.equal(a.state, 'running', 'the guest keeps running on the source');
    // Nothing waits on the dead agent.
    const t1 = Date.now();
    await call('GET', '/api/agents');
    assert.ok(Date.now() - t1 < 1000, 'the agent list answers at once');
    assert.ok(Date.now() - t0 < 25_000);
  });
});

describe('where peers reach an agent', () => {
  it('an agent on every address is reached where the console reaches it, on its migration port', () => {
    assert.equal(reachable('0.0.0.0:7071', 'http://10.0.0.2:7070'), '10.0.0.2:7071');
    assert.equal(reachable('[::]:7071', 'http://[fd00::2]:7070'), '[fd00::2]:7071');
    assert.equal(reachable('0.0.0.0:7071', 'http://host-b.lan:7070/'), 'host-b.lan:7071');
    assert.equal(reachable('10.1.1.1:7071', 'http://10.0.0.2:7070'), '10.1.1.1:7071', 'a specific address is kept');
    assert.equal(reachable(undefined, 'http://10.0.0.2:7070'), undefined);
  });
});

// --- the mirror and the queue against fake agents: timings the real ones cannot be made to keep ---

interface FakeAgent {
  name: string;
  url: string;
  token: string;
  io: Server;
  guests: GuestSummary[];
  details: Map<string, MigrationDetail>;
  /** How a subscribe is answered (default: the detail, no timeline; NOT_FOUND for an unknown id). */
  subscribe: (id: string) => Promise<SubscribeReply>;
  /** GET /api/migrations/:id waits this long. */
  detailDelayMs: number;
  /** GET /api/migrations/:id in flight now, and the most at once. */
  detailCalls: { now: number; most: number };
  /** Refuse new sockets (as a host whose agent is not reachable over socket.io). */
  refuseSockets: boolean;
  /** Cut every socket's connection (its client tries to reconnect). */
  dropSockets(): void;
  close(): Promise<void>;
}

function fakeSnapshot(id: string, uuid: string, role: 'source' | 'destination', state: MigrationSnapshot['state']): MigrationSnapshot {
  const now = Date.now();
  const ended = ['completed', 'failed', 'cancelled'].includes(state);
  return {
    id, uuid, role, state, peer: null, channelCount: 1, round: 0, ramSize: 1 << 20, transferred: 0, pageBytes: 0, remaining: 0, dirtyRate: 0, transferRate: 0,
    convergence: 0, expectedDowntimeMs: 0, throttlePct: null, downtimeMs: null, setupTimeMs: null, totalTimeMs: ended ? 1 : null, startedAt: now, endedAt: ended ? now : null,
    switchoverReason: null, digest: null, verified: state === 'completed', channels: [], error: null,
  };
}

function fakeDetail(s: MigrationSnapshot): MigrationDetail {
  return {
    summary: { ...summaryFrom(s, { destination: 'x', inject: [] }) },
    config: StartMigrationSchema.parse({ channels: 1 }),
    snapshot: s,
    destination: null,
    qemu: null,
  };
}

async function fakeAgent(name: string): Promise<FakeAgent> {
  const server = http.createServer();
  const io = new Server(server);
  const token = newToken();
  const f: FakeAgent = {
    name, url: '', token, io, guests: [], details: new Map(), detailDelayMs: 0, detailCalls: { now: 0, most: 0 }, refuseSockets: false,
    subscribe: async (id) => {
      const d = f.details.get(id);
      return d ? { ok: true, detail: d, timeline: [] } : { ok: false, code: 'NOT_FOUND', message: `no migration ${id}` };
    },
    dropSockets: () => {
      for (const s of io.sockets.sockets.values()) s.conn.close();
    },
    close: async () => {
      io.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
  io.use((s, next) => {
    if ((s.handshake.auth as { token?: string }).token !== token) next(new Error('unauthorized'));
    else if (f.refuseSockets) next(new Error('not now'));
    else next();
  });
  io.on('connection', (s) => s.on('migration:subscribe', (id: string, reply: (r: SubscribeReply) => void) => void f.subscribe(id).then(reply)));
  server.on('request', async (req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${token}`) return send(401, { code: 'UNAUTHORIZED', message: 'no' });
    let body = '';
    for await (const chunk of req) body += String(chunk);
    const p = new URL(req.url ?? '/', 'http://x').pathname;
    const one = /^\/api\/migrations\/([^/]+)$/.exec(p);
    if (p === '/api/agent') return send(200, { name, migrationAddress: '127.0.0.1:9', version: 1 });
    if (p === '/api/guests') return send(200, { guests: f.guests });
    if (p === '/api/migrations' && req.method === 'GET') return send(200, { migrations: [...f.details.values()].map((d) => d.summary) });
    if (p === '/api/migrations' && req.method === 'POST') {
      const guest = (JSON.parse(body) as { guest: string }).guest;
      const d = fakeDetail(fakeSnapshot(randomUUID(), guest, 'source', 'active'));
      f.details.set(d.summary.id, d);
      return send(201, d.summary);
    }
    if (one) {
      f.detailCalls.now++;
      f.detailCalls.most = Math.max(f.detailCalls.most, f.detailCalls.now);
      await sleep(f.detailDelayMs);
      f.detailCalls.now--;
      const d = f.details.get(one[1]);
      return d ? send(200, d) : send(404, { code: 'NOT_FOUND', message: 'no' });
    }
    send(404, { code: 'NOT_FOUND', message: p });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  f.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return f;
}

function fakeGuest(): GuestSummary {
  return { uuid: randomUUID(), name: 'g', ramSize: 1 << 20, state: 'running', workload: 'idle', origin: 'created', migrating: null };
}

describe('the fleet against fake agents', () => {
  let dir: string;
  let a: FakeAgent;
  let b: FakeAgent;
  let fleet: Fleet;

  async function fleetOf(opts: { requestTimeoutMs?: number; settleMs?: number } = {}): Promise<Fleet> {
    fleet = new Fleet(dir, { requestTimeoutMs: 1000, settleMs: 20, ...opts });
    for (const x of [a, b]) await fleet.add({ url: x.url, token: x.token });
    const deadline = Date.now() + 5000;
    while (!fleet.list().every((x) => x.state === 'up')) {
      assert.ok(Date.now() < deadline, JSON.stringify(fleet.list()));
      await sleep(10);
    }
    return fleet;
  }

  const migrate = (guest: string) =>
    fleet.start(StartFleetMigrationSchema.parse({ sourceAgent: 'a', destinationAgent: 'b', guest, channels: 1 }));

  async function until<T>(what: string, fn: () => T | null | undefined | false, ms = 5000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = fn();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(10);
    }
  }

  beforeEach(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'multifd-fleet-fake-'));
    [a, b] = await Promise.all([fakeAgent('a'), fakeAgent('b')]);
  });

  afterEach(async () => {
    fleet?.close();
    await Promise.all([a.close(), b.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps every event of a side, even two alike but for their channel in the same millisecond', async () => {
    await fleetOf();
    const g = fakeGuest();
    a.guests.push(g);
    const { id } = await migrate(g.uuid);
    const time = Date.now();
    const channel = (n: number): MigrationEvent => ({ type: 'channel', time, role: 'destination', migration: { id, uuid: g.uuid }, channel: n, state: 'streaming', connection: n, peer: '127.0.0.1:40000' });
    fleet.onAgentBatch(fleet.agent('b')!, { id, events: [channel(1), channel(2)] });
    fleet.onAgentBatch(fleet.agent('b')!, { id, events: [channel(1)] }); // the same event again (a subscribe reply overlapping a batch)
    const seen = fleet.timeline(id)!.filter((e) => e.type === 'channel').map((e) => (e.type === 'channel' ? e.channel : -1));
    assert.deepEqual(seen, [1, 2]);
  });

  it('an evacuation moves on when a migration ends before its start has returned', async () => {
    await fleetOf();
    const g = fakeGuest();
    a.guests.push(g);
    // The source says at once that it is over; the destination answers its subscribe late.
    a.subscribe = async (id) => {
      const d = a.details.get(id)!;
      const s = { ...d.snapshot, state: 'completed' as const, endedAt: Date.now(), verified: true };
      a.details.set(id, { ...d, snapshot: s, summary: { ...d.summary, state: 'completed' } });
      return { ok: true, detail: a.details.get(id)!, timeline: [] };
    };
    b.subscribe = async (id) => {
      await sleep(300);
      return { ok: false, code: 'NOT_FOUND', message: `no migration ${id}` };
    };
    const ev = new Evacuations(fleet);
    const started = await ev.start('a', EvacuateSchema.parse({}));
    const done = await until('the evacuation done', () => {
      const v = ev.get(started.id)!;
      return v.state !== 'running' && v;
    }, 3000).catch((err: Error) => assert.fail(`${err.message}: ${JSON.stringify(ev.get(started.id))}`));
    assert.equal(done.state, 'done');
    assert.deepEqual(done.summary, { queued: 0, migrating: 0, completed: 1, failed: 0, skipped: 0 });
  });

  it('one agent is evacuated once, even when asked twice at the same moment', async () => {
    await fleetOf();
    a.guests.push(fakeGuest(), fakeGuest());
    const ev = new Evacuations(fleet);
    const both = await Promise.allSettled([ev.start('a', EvacuateSchema.parse({})), ev.start('a', EvacuateSchema.parse({}))]);
    assert.deepEqual(both.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
    const refused = both.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    assert.match((refused.reason as Error).message, /already being evacuated/);
    assert.equal(ev.list().length, 1);
  });

  it('a source lost while its REST still answers: the console names it, and does not take the half-done snapshot for the end', async () => {
    await fleetOf();
    const g = fakeGuest();
    a.guests.push(g);
    const ended: FleetRecord[] = [];
    fleet.onEnded((r) => ended.push(r));
    const { id } = await migrate(g.uuid);
    // The source's event stream drops and does not come back; its REST still says 'active'.
    a.refuseSockets = true;
    a.dropSockets();
    await until('source down', () => fleet.list().find((x) => x.name === 'a')?.state === 'down');
    // The destination gives up.
    const time = Date.now();
    fleet.onAgentBatch(fleet.agent('b')!, {
      id,
      events: [{ type: 'progress', time, role: 'destination', migration: { id, uuid: g.uuid }, snapshot: fakeSnapshot(id, g.uuid, 'destination', 'failed') }],
    });
    const r = await until('the record', () => ended[0]);
    assert.equal(r.summary.state, 'failed');
    assert.equal(r.summary.errorCode, 'MIGRATION_AGENT_DOWN');
    assert.match(r.summary.errorMessage ?? '', /source agent a/);
  });

  it('an agent in a fleet migration is not removed from under it', async () => {
    await fleetOf();
    const g = fakeGuest();
    a.guests.push(g);
    await migrate(g.uuid);
    assert.throws(() => fleet.remove('a'), /in flight|migrat/);
    assert.throws(() => fleet.remove('b'), /in flight|migrat/);
    assert.deepEqual(fleet.list().map((x) => x.name), ['a', 'b']);
  });

  it('the watchdog asks a quiet migration one question at a time, however slow the answer', { timeout: 20_000 }, async () => {
    await fleetOf({ requestTimeoutMs: 8000 });
    const g = fakeGuest();
    a.guests.push(g);
    await migrate(g.uuid);
    // Quiet from now on: after 5 s the watchdog (every 2 s) asks the source, which takes 4.5 s to answer.
    a.detailDelayMs = 4500;
    await sleep(9500);
    assert.ok(a.detailCalls.most >= 1, 'the watchdog asked');
    assert.equal(a.detailCalls.most, 1, 'never two questions at once');
  });

  it('a corrupt agents.json is refused without quoting it (it holds tokens)', () => {
    const token = newToken();
    writeFileSync(path.join(dir, 'agents.json'), `{"version":1,"agents":[{"name":"a","url":"http://h:1","token":${token},"addedAt":1}]}`);
    assert.throws(
      () => new AgentStore(dir).load(),
      (err: Error) => !err.message.includes(token.slice(0, 6)) && /agents\.json/.test(err.message),
    );
  });
});
