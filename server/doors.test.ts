/**
 * The console's doors that are not pages: its migration port (the embedded destination, which
 * an agent listens on over the network) and its history. A hello that claims a migration the
 * console knows, without the pairing its own source sent, changes no record and no live view;
 * a migration whose record cannot be written is not started.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Destination } from '../lib/engine';
import { FrameDecoder, FrameType, encodeFrame, encodeJsonFrame, encodePreamble } from '../lib/protocol';
import { createApi } from './api';
import { openHistory } from './history';
import { LocalRegistry } from './registry';
import { startTestConsole, type TestConsole } from './test-support';

async function call(base: string, method: string, url: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(base + url, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

async function until(base: string, id: string, states: string[]): Promise<any> {
  for (;;) {
    const { json } = await call(base, 'GET', `/api/migrations/${id}`);
    if (states.includes(json.summary?.state)) return json;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A hand-made main channel: hello (as a forger writes it), device state, Complete; resolves with the frames it was answered. */
function forge(port: number, hello: Record<string, unknown>): Promise<Array<{ type: number; json: any }>> {
  const s = net.connect({ host: '127.0.0.1', port });
  s.on('error', () => {});
  const decoder = new FrameDecoder();
  const got: Array<{ type: number; json: any }> = [];
  s.on('data', (c: Buffer) => {
    for (const f of decoder.push(c)) got.push({ type: f.type, json: f.payload.length ? JSON.parse(f.payload.toString('utf8')) : null });
  });
  s.write(
    Buffer.concat([
      encodePreamble(),
      encodeJsonFrame(FrameType.Hello, { channels: 1, pageSize: 4096, slots: 128, compression: 'none', blocks: [{ name: 'pc.ram', size: 4096 }], ...hello }),
      encodeFrame(FrameType.DeviceState, new Uint8Array(8)),
      encodeJsonFrame(FrameType.Complete, { digest: '0000000000000000', round: 1, pages: 0, zeroPages: 0 }),
    ]),
  );
  return new Promise((resolve) => s.once('close', () => resolve(got)));
}

describe("the console's migration port: a hello cannot claim the console's migrations", () => {
  let tc: TestConsole;
  before(async () => {
    tc = await startTestConsole((server, registry) => server.on('request', (req, res) => void createApi(registry)(req, res)));
  });
  after(() => tc.close());

  it('a failed record stays failed: the forged hello with its id is refused MIGRATION_ID_CONFLICT, no guest planted', async () => {
    const started = await call(tc.url, 'POST', '/api/migrations', { channels: 2, ramSize: 4 << 20, inject: ['ch1:uuid'] });
    assert.equal(started.status, 201, JSON.stringify(started.json));
    const { id, uuid } = started.json;
    const failed = await until(tc.url, id, ['failed']);
    const guestsBefore = (await call(tc.url, 'GET', '/api/guests')).json.guests.length;
    const port = (tc.registry as unknown as { embedded: Destination }).embedded.address.port;
    const answer = await forge(port, { uuid: '6f1c9d5e-3b1a-4c2e-9d7f-2a8b1c3d4e5f', migrationId: id, name: 'planted' });
    const refusal = answer.find((f) => f.type === FrameType.Failed);
    assert.equal(refusal?.json.code, 'MIGRATION_ID_CONFLICT', JSON.stringify(answer));
    const after = await call(tc.url, 'GET', `/api/migrations/${id}`);
    assert.equal(after.json.summary.state, 'failed');
    assert.deepEqual(after.json.summary, failed.summary, 'the record is unchanged');
    assert.equal((await call(tc.url, 'GET', '/api/guests')).json.guests.length, guestsBefore, 'no guest planted');
    await call(tc.url, 'POST', `/api/guests/${uuid}/stop`);
  });

  it('a migration the console started binds only to the incoming side that shows its pairing', async () => {
    const started = await call(tc.url, 'POST', '/api/migrations', { channels: 2, ramSize: 8 << 20, maxBandwidth: 2 << 20 });
    assert.equal(started.status, 201);
    const { id, uuid } = started.json;
    const port = (tc.registry as unknown as { embedded: Destination }).embedded.address.port;
    const answer = await forge(port, { uuid: '7a2d9e6f-4c2b-4d3f-8e1a-3b9c2d4e5f60', migrationId: id, pairing: 'f'.repeat(32) });
    assert.equal(answer.find((f) => f.type === FrameType.Failed)?.json.code, 'MIGRATION_ID_CONFLICT');
    const done = await until(tc.url, id, ['completed', 'failed', 'cancelled']);
    assert.equal(done.summary.state, 'completed', done.summary.errorMessage);
    assert.equal(done.destination?.uuid, uuid, "the destination side in the record is the console's own");
    await call(tc.url, 'POST', `/api/guests/${uuid}/stop`);
  });
});

describe('a history that cannot be written', () => {
  let dir: string;
  let embedded: Destination;
  let registry: LocalRegistry;
  let server: http.Server;
  let base: string;
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'multifd-ro-history-'));
    openHistory(dir).close();
    const history = openHistory(dir, { readonly: true });
    embedded = new Destination({ port: 0 });
    await embedded.listen();
    registry = new LocalRegistry(history, embedded, { recordRoot: path.join(dir, 'recordings') });
    server = http.createServer((req, res) => void createApi(registry)(req, res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  });
  after(async () => {
    await registry.close();
    await embedded.close();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it('POST /api/migrations answers 503 HISTORY_UNAVAILABLE and starts nothing: no migration, no guest, no connection', async () => {
    const r = await call(base, 'POST', '/api/migrations', { channels: 2, ramSize: 4 << 20 });
    assert.equal(r.status, 503, JSON.stringify(r.json));
    assert.equal(r.json.code, 'HISTORY_UNAVAILABLE');
    assert.match(r.json.message, /not started/);
    assert.deepEqual(registry.list(), []);
    assert.deepEqual(registry.guests(), []);
    assert.equal(embedded.active.length, 0);
  });
});
