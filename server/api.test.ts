/**
 * The REST API and the registry behind it, over real HTTP, a real embedded destination on
 * loopback, a destination in another "host" (a separate Destination), and real SQLite.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { MigrationSummary } from '../lib/contracts/console';
import { Destination } from '../lib/engine';
import { createApi } from './api';
import { openHistory, type HistoryStore } from './history';
import { LocalRegistry } from './registry';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('REST API', () => {
  let dir: string;
  let history: HistoryStore;
  let embedded: Destination;
  let remote: Destination;
  let registry: LocalRegistry;
  let server: http.Server;
  let base: string;

  async function call(method: string, url: string, body?: unknown): Promise<{ status: number; json: any }> {
    const res = await fetch(base + url, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: res.status, json: await res.json() };
  }

  async function until(id: string, states: string[], ms = 20_000): Promise<MigrationSummary> {
    const deadline = Date.now() + ms;
    for (;;) {
      const { json } = await call('GET', `/api/migrations/${id}`);
      if (states.includes(json.summary?.state)) return json.summary;
      if (Date.now() > deadline) throw new Error(`migration ${id} still ${json.summary?.state}`);
      await sleep(50);
    }
  }

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'multifd-api-'));
    history = openHistory(dir);
    embedded = new Destination({ port: 0 });
    await embedded.listen();
    remote = new Destination({ port: 0, channels: 2 });
    await remote.listen();
    registry = new LocalRegistry(history, embedded);
    server = http.createServer((req, res) => void createApi(registry)(req, res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });

  after(async () => {
    await registry.close();
    await embedded.close();
    await remote.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    history.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('POST {"channels": 4} migrates a new guest to the embedded destination, verified; it arrives here', async () => {
    const r = await call('POST', '/api/migrations', { channels: 4, ramSize: 8 << 20 });
    assert.equal(r.status, 201);
    assert.equal(r.json.channels, 4);
    assert.equal(r.json.destination, 'embedded');
    const done = await until(r.json.id, ['completed', 'failed']);
    assert.equal(done.state, 'completed', done.errorMessage ?? '');
    const d = await call('GET', `/api/migrations/${r.json.id}`);
    assert.equal(d.json.snapshot.verified, true);
    assert.equal(d.json.snapshot.channels.length, 4);
    assert.equal(d.json.destination?.verified, true);
    const t = await call('GET', `/api/migrations/${r.json.id}/timeline`);
    assert.ok(t.json.events.some((e: { type: string; role: string }) => e.type === 'completed' && e.role === 'destination'));
    assert.equal(t.json.events.filter((e: { role: string }) => e.role === 'source').at(-1).type, 'completed');
    const g = await call('GET', '/api/guests');
    const arrived = g.json.guests.find((x: { uuid: string }) => x.uuid === done.uuid);
    assert.equal(arrived?.origin, 'arrived');
    assert.equal(arrived?.state, 'running');
    const stop = await call('POST', `/api/guests/${done.uuid}/stop`);
    assert.equal(stop.status, 200);
    assert.equal((await call('GET', '/api/guests')).json.guests.some((x: { uuid: string }) => x.uuid === done.uuid), false);
  });

  it('422 with field errors on bad input; nothing started', async () => {
    const before = (await call('GET', '/api/migrations')).json.migrations.length;
    for (const bad of [{ channels: 0 }, { channels: 256 }, { channels: 'four' }, { destination: 'nowhere' }, { ramSize: 12345 }]) {
      const r = await call('POST', '/api/migrations', bad);
      assert.equal(r.status, 422, JSON.stringify(bad));
      assert.equal(r.json.code, 'MIGRATION_CONFIG_INVALID');
      assert.ok(Object.keys(r.json.fields).length > 0);
    }
    const w = await call('POST', '/api/migrations', { workload: 'random:fast' });
    assert.equal(w.status, 422);
    assert.ok(w.json.fields.workload);
    const j = await call('POST', '/api/migrations', '{not json');
    assert.equal(j.status, 400);
    assert.equal(j.json.code, 'BAD_JSON');
    assert.equal((await call('GET', '/api/migrations')).json.migrations.length, before);
  });

  it('cancel: a capped migration ends cancelled and its guest keeps running here', async () => {
    const r = await call('POST', '/api/migrations', { channels: 2, ramSize: 32 << 20, maxBandwidth: 8 << 20 });
    await until(r.json.id, ['active']);
    const c = await call('POST', `/api/migrations/${r.json.id}/cancel`);
    assert.equal(c.status, 200);
    assert.equal(c.json.state, 'cancelled');
    const g = (await call('GET', '/api/guests')).json.guests.find((x: { uuid: string }) => x.uuid === r.json.uuid);
    assert.equal(g?.state, 'running');
    assert.equal(g?.origin, 'created');
    // and it can migrate again, by uuid
    const again = await call('POST', '/api/migrations', { channels: 2, guest: r.json.uuid });
    assert.equal(again.status, 201);
    assert.equal((await until(again.json.id, ['completed', 'failed'])).state, 'completed');
  });

  it('migrates to a destination on another host (HOST:PORT) and reports its refusal with the code', async () => {
    const addr = `127.0.0.1:${remote.address.port}`;
    const bad = await call('POST', '/api/migrations', { channels: 4, ramSize: 4 << 20, destination: addr });
    const failed = await until(bad.json.id, ['failed', 'completed']);
    assert.equal(failed.errorCode, 'MIGRATION_CHANNEL_COUNT_MISMATCH');
    const ok = await call('POST', '/api/migrations', { channels: 2, ramSize: 4 << 20, destination: addr });
    assert.equal((await until(ok.json.id, ['completed', 'failed'])).state, 'completed');
  });

  it('history lists ended migrations and survives a reopen of the store', async () => {
    const list = (await call('GET', '/api/migrations')).json.migrations as MigrationSummary[];
    assert.ok(list.length >= 4);
    const reopened = openHistory(dir);
    try {
      const ids = reopened.list().map((s) => s.id);
      for (const s of list.filter((x) => ['completed', 'failed', 'cancelled'].includes(x.state))) assert.ok(ids.includes(s.id), s.id);
    } finally {
      reopened.close();
    }
  });

  it('404 with a code for unknown ids and routes', async () => {
    assert.equal((await call('GET', '/api/migrations/nope')).json.code, 'NOT_FOUND');
    assert.equal((await call('GET', '/api/nothing')).status, 404);
    assert.equal((await call('DELETE', '/api/migrations')).status, 405);
  });
});
