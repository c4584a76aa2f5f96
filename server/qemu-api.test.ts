/**
 * QEMU mode through the REST API: two real QEMU 7.2 processes driven over QMP by the
 * registry, through its relay, watched per channel; QEMU's own figures beside; cancel with
 * migrate_cancel; QEMU's refusals shown in QEMU's words; faults put into real traffic.
 * Skipped, with the reason, when QEMU is not installed.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { MigrationEvent } from '../lib/contracts';
import type { MigrationDetail } from '../lib/contracts/console';
import { inspectCapture } from '../lib/qemu/capture';
import { compareFiles } from '../lib/qemu/migrate';
import { PAIR_RAM, skipWithoutQemu, startPair } from '../lib/qemu/test-support';
import { createApi } from './api';
import { startTestConsole, type TestConsole } from './test-support';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('QEMU mode (REST API, real QEMU)', { skip: skipWithoutQemu }, () => {
  let tc: TestConsole;

  before(async () => {
    tc = await startTestConsole((server, registry) => {
      const api = createApi(registry);
      server.on('request', (req, res) => void api(req, res));
    }, { pollMs: 100, destinationWaitMs: 1500 });
  });
  after(() => tc.close());

  async function call(method: string, url: string, body?: unknown): Promise<{ status: number; json: any }> {
    const res = await fetch(tc.url + url, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, json: await res.json() };
  }

  async function until(id: string, states: string[], ms = 30_000): Promise<MigrationDetail> {
    const deadline = Date.now() + ms;
    for (;;) {
      const { json } = await call('GET', `/api/migrations/${id}`);
      if (states.includes(json.summary?.state)) return json;
      if (Date.now() > deadline) throw new Error(`migration ${id} still ${json.summary?.state}`);
      await sleep(50);
    }
  }

  it('migrates between two QEMUs, with the relay\'s per-channel view and QEMU\'s own figures', async (t) => {
    const pair = await startPair(t, 4, { configure: false });
    const started = await call('POST', '/api/qemu/migrations', { sourceQmp: pair.srcQmp, destinationQmp: pair.dstQmp, channels: 4, record: true });
    assert.equal(started.status, 201, JSON.stringify(started.json));
    const id = started.json.id as string;
    assert.equal(started.json.destination, `QEMU ${pair.dstQmp}`);

    const d = await until(id, ['completed', 'failed']);
    assert.equal(d.summary.state, 'completed', JSON.stringify(d.snapshot.error));
    assert.equal(await compareFiles(pair.srcRam, pair.dstRam, PAIR_RAM), null, 'destination RAM equals the source');
    assert.equal(d.snapshot.role, 'relay');
    assert.equal(d.snapshot.uuid, pair.uuid, 'the guest uuid, from query-uuid');
    assert.deepEqual(d.snapshot.channels.map((c) => c.id), [0, 1, 2, 3]);
    assert.ok(d.snapshot.channels.every((c) => c.bytes > 64 && c.error === null));
    assert.equal(d.snapshot.ramSize, PAIR_RAM);
    assert.ok(d.qemu, 'QEMU detail');
    assert.equal(d.qemu!.source?.status, 'completed');
    assert.equal(d.qemu!.destination?.status, 'completed');
    // The relay's bytes agree with QEMU's count (plus one 64-byte handshake per channel).
    const relayed = d.snapshot.channels.reduce((n, c) => n + c.bytes, 0);
    assert.equal(relayed, d.qemu!.source!.multifdBytes! + 64 * 4);

    const { json: tl } = await call('GET', `/api/migrations/${id}/timeline`);
    const events = tl.events as MigrationEvent[];
    assert.ok(events.some((e) => e.type === 'qemu' && e.side === 'source' && e.figures.status === 'completed'));
    assert.ok(events.some((e) => e.type === 'channel' && e.state === 'accepted'));

    // The recording was made where the console keeps its data, and inspect rebuilds the RAM.
    const dir = d.qemu!.recordDir!;
    assert.ok(dir.startsWith(path.join(tc.dataDir, 'recordings')));
    const files = readdirSync(dir, { recursive: true }).map(String).filter((f) => f.endsWith('.bin')).map((f) => path.join(dir, f));
    const r = inspectCapture(files, { ramOut: path.join(dir, 'ram.img') });
    assert.equal(r.errors, 0);
    assert.equal(r.sha256, pair.sha256);

    // History keeps it, QEMU's last word included.
    const again = await call('GET', `/api/migrations/${id}`);
    assert.equal(again.json.qemu.destination.status, 'completed');
    assert.ok(tc.history.get(id), 'saved in history');
  });

  it('a wrong uuid injected on channel 2 fails the migration, and the diagnosis names channel 2', async (t) => {
    const pair = await startPair(t, 4, { configure: false });
    const started = await call('POST', '/api/qemu/migrations', { sourceQmp: pair.srcQmp, destinationQmp: pair.dstQmp, channels: 4, inject: ['ch2:uuid'] });
    assert.equal(started.status, 201, JSON.stringify(started.json));
    const d = await until(started.json.id, ['completed', 'failed']);
    assert.equal(d.summary.state, 'failed');
    assert.equal(d.snapshot.error?.code, 'MIGRATION_CHANNEL_UUID_MISMATCH');
    assert.equal(d.snapshot.error?.channel, 2);
    assert.equal(d.summary.inject.join(), 'ch2:uuid');
  });

  it('cancels with migrate_cancel', async (t) => {
    const pair = await startPair(t, 4, { configure: false });
    // 1 MiB/s: the 64 MiB guest's ~10 MiB of data pages take seconds, time enough to cancel.
    const started = await call('POST', '/api/qemu/migrations', { sourceQmp: pair.srcQmp, destinationQmp: pair.dstQmp, channels: 2, maxBandwidth: 1024 * 1024 });
    assert.equal(started.status, 201, JSON.stringify(started.json));
    await until(started.json.id, ['active']);
    const c = await call('POST', `/api/migrations/${started.json.id}/cancel`);
    assert.equal(c.status, 200);
    const d = await until(started.json.id, ['cancelled', 'failed', 'completed']);
    assert.equal(d.summary.state, 'cancelled');
    assert.equal(d.summary.errorCode, 'MIGRATION_CANCELLED');
    assert.equal(d.qemu!.source?.status, 'cancelled');
  });

  it('refuses what cannot work, in the operator\'s and QEMU\'s words', async (t) => {
    // Bad input: 422 with the field.
    const bad = await call('POST', '/api/qemu/migrations', { sourceQmp: 'not a socket', destinationQmp: '', channels: 0 });
    assert.equal(bad.status, 422);
    assert.ok(bad.json.fields.sourceQmp && bad.json.fields.destinationQmp && bad.json.fields.channels, JSON.stringify(bad.json));
    // Nobody at the socket: 422 naming it.
    const missing = await call('POST', '/api/qemu/migrations', { sourceQmp: '/nonexistent/src.qmp', destinationQmp: '/nonexistent/dst.qmp' });
    assert.equal(missing.status, 422);
    assert.match(missing.json.fields.sourceQmp[0], /\/nonexistent\/src\.qmp/);
    // A relay fault the relay cannot put into QEMU's traffic.
    const pair = await startPair(t, 4, { configure: false });
    const slow = await call('POST', '/api/qemu/migrations', { sourceQmp: pair.srcQmp, destinationQmp: pair.dstQmp, inject: ['ch1:slow:1000'] });
    assert.equal(slow.status, 422);
    assert.ok(slow.json.fields.inject);
    // QEMU refuses: the roles swapped, the "destination" was not started with -incoming: its own words.
    const refused = await call('POST', '/api/qemu/migrations', { sourceQmp: pair.dstQmp, destinationQmp: pair.srcQmp });
    assert.equal(refused.status, 502, JSON.stringify(refused.json));
    assert.equal(refused.json.code, 'MIGRATION_REMOTE_FAILED');
    assert.match(refused.json.message, /QEMU destination: migrate-incoming: .*incoming/i);
    // Nothing was listed for the refused requests.
    const { json } = await call('GET', '/api/migrations');
    assert.ok(!json.migrations.some((m: { state: string }) => m.state === 'setup'));
  });
});
