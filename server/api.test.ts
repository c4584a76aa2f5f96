/**
 * The REST API and the registry behind it, over real HTTP, a real embedded destination on
 * loopback, a destination in another "host" (a separate Destination), and real SQLite.
 */
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { MigrationEvent } from '../lib/contracts';
import type { MigrationSummary } from '../lib/contracts/console';
import { Destination } from '../lib/engine';
import { createApi } from './api';
import { openHistory } from './history';
import { startTestConsole, type TestConsole } from './test-support';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('REST API', () => {
  let tc: TestConsole;
  let remote: Destination;
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
    tc = await startTestConsole((server, registry) => server.on('request', (req, res) => void createApi(registry)(req, res)));
    base = tc.url;
    remote = new Destination({ port: 0, channels: 2 });
    await remote.listen();
  });

  after(async () => {
    await tc.close();
    await remote.close();
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
    const reopened = openHistory(tc.dataDir);
    try {
      const ids = reopened.list().map((s) => s.id);
      for (const s of list.filter((x) => ['completed', 'failed', 'cancelled'].includes(x.state))) assert.ok(ids.includes(s.id), s.id);
    } finally {
      reopened.close();
    }
  });

  /** Until the guest is no longer in a migration (the registry lets go once both sides settled). */
  async function idle(uuid: string, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    for (;;) {
      const g = (await call('GET', '/api/guests')).json.guests.find((x: { uuid: string }) => x.uuid === uuid);
      if (g && g.migrating === null) return;
      if (Date.now() > deadline) throw new Error(`guest ${uuid} still migrating: ${JSON.stringify(g)}`);
      await sleep(50);
    }
  }

  it('fault lab: inject ["ch2:uuid"] fails with MIGRATION_CHANNEL_UUID_MISMATCH on channel 2, listed as injected; a retry completes', async () => {
    const r = await call('POST', '/api/migrations', { channels: 4, ramSize: 4 << 20, inject: ['ch2:uuid'] });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    assert.deepEqual(r.json.inject, ['ch2:uuid']);
    const done = await until(r.json.id, ['failed', 'completed', 'cancelled']);
    assert.equal(done.state, 'failed');
    assert.equal(done.errorCode, 'MIGRATION_CHANNEL_UUID_MISMATCH', done.errorMessage ?? '');
    assert.deepEqual(done.inject, ['ch2:uuid']);

    const d = (await call('GET', `/api/migrations/${r.json.id}`)).json;
    assert.equal(d.snapshot.error.channel, 2);
    assert.equal(d.snapshot.error.expected, done.uuid, 'expected: the guest uuid');
    assert.notEqual(d.snapshot.error.received, done.uuid);
    assert.deepEqual(d.config.inject, ['ch2:uuid']);
    assert.equal(d.snapshot.channels[2].state, 'rejected');
    // The destination's refusal, in the timeline the console's diagnosis reads.
    const events = (await call('GET', `/api/migrations/${r.json.id}/timeline`)).json.events as MigrationEvent[];
    const rejected = events.find((e) => e.type === 'channel-rejected' && e.role === 'destination');
    assert.ok(rejected && rejected.type === 'channel-rejected', 'a channel-rejected event from the destination');
    assert.equal(rejected.code, 'MIGRATION_CHANNEL_UUID_MISMATCH');
    assert.equal(rejected.channel, 2);
    assert.equal(rejected.expected, done.uuid);
    assert.ok(rejected.peer && rejected.connection !== null);

    // The list and the history say it was injected.
    const listed = ((await call('GET', '/api/migrations')).json.migrations as MigrationSummary[]).find((x) => x.id === r.json.id);
    assert.deepEqual(listed?.inject, ['ch2:uuid']);
    await idle(done.uuid!);
    assert.deepEqual(tc.history.get(r.json.id)?.summary.inject, ['ch2:uuid']);
    assert.deepEqual(tc.history.get(r.json.id)?.config.inject, ['ch2:uuid']);

    // The guest carries on here, and migrates cleanly without the fault.
    const again = await call('POST', '/api/migrations', { channels: 4, guest: done.uuid });
    assert.equal(again.status, 201, JSON.stringify(again.json));
    assert.deepEqual(again.json.inject, []);
    assert.equal((await until(again.json.id, ['completed', 'failed'])).state, 'completed');
    await idle(done.uuid!);
    await call('POST', `/api/guests/${done.uuid}/stop`);
  });

  it('fault lab: 422 with fields.inject naming the spec for a channel out of range, two faults on one channel, or a bad spec; nothing started', async () => {
    const migrations = (await call('GET', '/api/migrations')).json.migrations.length;
    const guests = (await call('GET', '/api/guests')).json.guests.length;
    const cases: Array<[unknown, RegExp]> = [
      [{ channels: 4, inject: ['ch9:uuid'] }, /ch9:uuid.*channel 9 does not exist/],
      [{ channels: 4, inject: ['ch1:uuid', 'ch1:magic'] }, /ch1:magic.*channel 1 already has a fault \(ch1:uuid\)/],
      [{ channels: 4, inject: ['ch1:explode'] }, /ch1:explode.*unknown fault/],
      [{ channels: 4, inject: ['ch1:drop'] }, /ch1:drop.*drop takes/],
      [{ channels: 4, inject: ['uuid'] }, /"uuid".*chK:KIND/],
      [{ channels: 4, inject: 'ch1:uuid' }, /./],
    ];
    for (const [body, message] of cases) {
      const r = await call('POST', '/api/migrations', body);
      assert.equal(r.status, 422, JSON.stringify(body));
      assert.equal(r.json.code, 'MIGRATION_CONFIG_INVALID');
      assert.ok(r.json.fields?.inject, `fields.inject for ${JSON.stringify(body)}: ${JSON.stringify(r.json)}`);
      assert.match(r.json.fields.inject.join(' '), message);
    }
    assert.equal((await call('GET', '/api/migrations')).json.migrations.length, migrations);
    assert.equal((await call('GET', '/api/guests')).json.guests.length, guests, 'no guest created for a refused request');
  });

  it('history rows written before the fault lab (no inject) still parse, as inject []', async () => {
    const db = new Database(path.join(tc.dataDir, 'history.sqlite'));
    try {
      const row = db.prepare('SELECT * FROM migrations LIMIT 1').get() as Record<string, unknown>;
      assert.ok(row, 'a stored migration to copy');
      const { inject: _s, ...summary } = { ...JSON.parse(row.summary as string), id: 'old-row' };
      const { inject: _c, ...config } = JSON.parse(row.config as string);
      db.prepare('INSERT INTO migrations (id, started_at, state, summary, config, snapshot, destination, timeline) VALUES (?, ?, ?, ?, ?, ?, ?, ?)').run(
        'old-row',
        row.started_at,
        row.state,
        JSON.stringify(summary),
        JSON.stringify(config),
        row.snapshot,
        row.destination,
        row.timeline,
      );
    } finally {
      db.close();
    }
    const old = ((await call('GET', '/api/migrations')).json.migrations as MigrationSummary[]).find((x) => x.id === 'old-row');
    assert.deepEqual(old?.inject, []);
    const d = await call('GET', '/api/migrations/old-row');
    assert.equal(d.status, 200);
    assert.deepEqual(d.json.summary.inject, []);
    assert.deepEqual(d.json.config.inject, []);
  });

  it('404 with a code for unknown ids and routes', async () => {
    assert.equal((await call('GET', '/api/migrations/nope')).json.code, 'NOT_FOUND');
    assert.equal((await call('GET', '/api/nothing')).status, 404);
    assert.equal((await call('DELETE', '/api/migrations')).status, 405);
  });
});
