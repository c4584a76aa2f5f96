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
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { io as connect, type Socket } from 'socket.io-client';
import type { MigrationEvent } from '../lib/contracts';
import type { AgentView, ClientToServerEvents, GuestSummary, MigrationDetail, ServerToClientEvents, SubscribeReply } from '../lib/contracts/console';
import { createApi } from './api';
import { newToken } from './auth';
import { killAll, start, type Cli } from './cli/test-support';
import { Fleet, reachable } from './fleet';
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
    const r = await call('POST', '/api/agents/host-a/evacuate', { maxOutboundPerHost: 2, maxBandwidth: 16 << 20 });
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
    const spans = await Promise.all(done.items.map(async (x: { migrationId: string }) => (await detail(x.migrationId)).summary));
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
