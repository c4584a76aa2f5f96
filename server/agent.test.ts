/**
 * Two agents, as two `multifd agent` processes on loopback (the namespaces test of the
 * fleet comes with the console's side): a guest created on A migrates to B through A's
 * control API; B lists the arrival and the guest runs there, A's copy is gone; both agents'
 * events reach a socket.io subscriber; a wrong or missing token gets 401 and changes nothing.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { io as connect, type Socket } from 'socket.io-client';
import type { MigrationEvent } from '../lib/contracts';
import type { ClientToServerEvents, GuestSummary, MigrationDetail, ServerToClientEvents, SubscribeReply } from '../lib/contracts/console';
import { newToken } from './auth';
import { killAll, run, start, type Cli } from './cli/test-support';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Agent {
  cli: Cli;
  url: string;
  migrationAddress: string;
  token: string;
}

describe('agents (two processes on loopback)', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'multifd-agents-'));
  let a: Agent;
  let b: Agent;

  async function startAgent(name: string, token: string | null): Promise<Agent & { tokenFile: string }> {
    const args = ['agent', '--listen', '127.0.0.1:0', '--migration-listen', '127.0.0.1:0', '--name', name, '--data-dir', path.join(dir, name), '--events', 'ndjson', '--timeout-ms', '3000'];
    let tokenFile = path.join(dir, name, 'agent.token');
    if (token) {
      tokenFile = path.join(dir, `${name}.token`);
      writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
      args.push('--token-file', tokenFile);
    }
    const cli = start(args);
    const l = await cli.waitFor((x) => x.type === 'listening', 15_000, 'listening');
    const { readFileSync } = await import('node:fs');
    return { cli, url: l.url as string, migrationAddress: l.migrationAddress as string, token: token ?? readFileSync(tokenFile, 'utf8').trim(), tokenFile };
  }

  async function call(agent: Agent, method: string, url: string, body?: unknown, token: string | null = agent.token): Promise<{ status: number; json: any }> {
    const headers: Record<string, string> = {};
    if (token !== null) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(agent.url + url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, json: await res.json() };
  }

  async function until(agent: Agent, id: string, states: string[], ms = 30_000): Promise<MigrationDetail> {
    const deadline = Date.now() + ms;
    for (;;) {
      const { json } = await call(agent, 'GET', `/api/migrations/${id}`);
      if (states.includes(json.summary?.state)) return json;
      if (Date.now() > deadline) throw new Error(`migration ${id} on ${agent.url} still ${json.summary?.state ?? JSON.stringify(json)}`);
      await sleep(50);
    }
  }

  before(async () => {
    [a, b] = await Promise.all([startAgent('host-a', newToken()), startAgent('host-b', null)]);
  });

  after(async () => {
    for (const x of [a, b]) {
      x?.cli.kill('SIGTERM');
      await x?.cli.exit(10_000).catch(() => undefined);
    }
    killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a token made at first start is 0600 and never printed', () => {
    const file = path.join(dir, 'host-b', 'agent.token');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const printed = JSON.stringify(b.cli.lines) + b.cli.stderr;
    assert.ok(!printed.includes(b.token), 'the token is not in the output');
    assert.ok(b.cli.lines.some((l) => l.type === 'token-created' && l.tokenFile === file));
  });

  it('says who it is', async () => {
    const { status, json } = await call(a, 'GET', '/api/agent');
    assert.equal(status, 200);
    assert.equal(json.name, 'host-a');
    assert.equal(json.migrationAddress, a.migrationAddress);
  });

  it('a guest created on A migrates to B: B runs it, A no longer has it, both sides stream events', async () => {
    const created = await call(a, 'POST', '/api/guests', { name: 'web-1', ramSize: 64 << 20, workload: 'random:8' });
    assert.equal(created.status, 201, JSON.stringify(created.json));
    const guest = created.json as GuestSummary;
    assert.equal(guest.state, 'running');

    // A subscriber on each agent, as the console will be.
    const sockets = [a, b].map((x) => connect(x.url, { transports: ['websocket'], auth: { token: x.token } }) as Socket<ServerToClientEvents, ClientToServerEvents>);
    after(() => sockets.forEach((s) => s.close()));
    await Promise.all(sockets.map((s) => new Promise<void>((r, j) => (s.once('connect', () => r()), s.once('connect_error', j)))));
    const seen: MigrationEvent[] = [];
    for (const s of sockets) s.on('migration:events', (batch) => seen.push(...batch.events));

    const started = await call(a, 'POST', '/api/migrations', { guest: guest.uuid, destination: b.migrationAddress, channels: 4 });
    assert.equal(started.status, 201, JSON.stringify(started.json));
    const id = started.json.id as string;
    const subscribe = (s: (typeof sockets)[number]) => new Promise<SubscribeReply>((r) => s.emit('migration:subscribe', id, r));
    const onA = await subscribe(sockets[0]);
    assert.ok(onA.ok, 'the source agent knows the migration');
    seen.push(...onA.timeline);
    // B knows it once the hello arrived; its reply's timeline holds what came before.
    for (const deadline = Date.now() + 10_000; ; await sleep(20)) {
      const r = await subscribe(sockets[1]);
      if (r.ok) {
        seen.push(...r.timeline);
        break;
      }
      assert.ok(Date.now() < deadline, 'the destination agent learns of the migration');
    }

    const done = await until(a, id, ['completed', 'failed']);
    assert.equal(done.summary.state, 'completed', JSON.stringify(done.snapshot.error));
    const onB = await until(b, id, ['completed', 'failed']);
    assert.equal(onB.snapshot.role, 'destination');
    assert.equal(onB.summary.destination, 'this host');

    const guestsB = (await call(b, 'GET', '/api/guests')).json.guests as GuestSummary[];
    const arrived = guestsB.find((g) => g.uuid === guest.uuid);
    assert.equal(arrived?.state, 'running');
    assert.equal(arrived?.origin, 'arrived');
    assert.equal(arrived?.name, 'web-1', 'the guest keeps its name on its new host');
    assert.equal(arrived?.workload, 'random:8MiB/s', 'and its workload (in its device state)');
    const guestsA = (await call(a, 'GET', '/api/guests')).json.guests as GuestSummary[];
    assert.ok(!guestsA.some((g) => g.uuid === guest.uuid), 'stopped on A once B verified it');

    await sleep(400); // the last batches
    assert.ok(seen.some((e) => e.role === 'source' && e.type === 'completed'));
    assert.ok(seen.some((e) => e.role === 'destination' && e.type === 'completed'), 'the destination agent streamed its side');
  });

  it('a wrong or missing token gets 401 and changes nothing, over REST and socket.io', async () => {
    const before = (await call(a, 'GET', '/api/guests')).json.guests.length;
    for (const token of [null, 'x'.repeat(64), b.token]) {
      const r = await call(a, 'POST', '/api/guests', { ramSize: 1 << 20 }, token);
      assert.equal(r.status, 401);
      assert.equal(r.json.code, 'UNAUTHORIZED');
      assert.equal((await call(a, 'GET', '/api/migrations', undefined, token)).status, 401);
    }
    assert.equal((await call(a, 'GET', '/api/guests')).json.guests.length, before);
    const s = connect(a.url, { transports: ['websocket'], auth: { token: 'wrong' }, reconnection: false });
    const err = await new Promise<Error>((r) => s.once('connect_error', r));
    s.close();
    assert.match(err.message, /unauthorized/);
  });

  it('refuses a token file others can read', async () => {
    const file = path.join(dir, 'loose.token');
    writeFileSync(file, newToken(), { mode: 0o644 });
    const { cli, exit } = await run(['agent', '--listen', '127.0.0.1:0', '--token-file', file, '--data-dir', path.join(dir, 'loose')], 10_000);
    assert.equal(exit.code, 2);
    assert.match(cli.stderr, /readable by others .*chmod 600/);
  });
});
