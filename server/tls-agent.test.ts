/**
 * TLS between agents (in this process, real loopback TCP): one set of credentials serves
 * both ways, as libvirt's do, so a guest goes A → B and back over x509 with required client
 * certificates; a request can turn TLS off (`tls: null`) or name another credential set its
 * operator configured (`--tls-creds NAME=DIR`), never file paths, through the REST API; an
 * agent in clear refuses a TLS source by name.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { GuestSummary, MigrationDetail } from '../lib/contracts/console';
import { makeTestPki, type TestPki } from '../lib/engine/tls-test-support';
import { startAgent, type RunningAgent } from './agent';
import { newToken } from './auth';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('agents over TLS', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'multifd-tls-agents-'));
  const token = newToken();
  let pki: TestPki;
  let a: RunningAgent;
  let b: RunningAgent;
  let clear: RunningAgent;

  async function agent(name: string, tls: boolean): Promise<RunningAgent> {
    // A second set in QEMU's layout: a PSK directory.
    const pskDir = path.join(dir, `${name}-psk`);
    mkdirSync(pskDir, { recursive: true });
    copyFileSync(pki.psk, path.join(pskDir, 'keys.psk'));
    return startAgent({
      tlsCreds: tls ? [{ name: 'lab-psk', dir: pskDir }] : [],
      name,
      host: '127.0.0.1',
      port: 0,
      migrationHost: '127.0.0.1',
      migrationPort: 0,
      token,
      dataDir: path.join(dir, name),
      timeoutMs: 3000,
      tls: tls
        ? {
            server: { mode: 'x509', cert: pki.serverCert, key: pki.serverKey, ca: pki.ca, requireClientCert: true },
            client: { mode: 'x509', cert: pki.serverCert, key: pki.serverKey, ca: pki.ca },
          }
        : null,
    });
  }

  async function call(x: RunningAgent, method: string, url: string, body?: unknown): Promise<{ status: number; json: any }> {
    const res = await fetch(x.url + url, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, json: await res.json() };
  }

  async function migrateGuest(from: RunningAgent, to: RunningAgent, guest: string, extra: object = {}): Promise<MigrationDetail> {
    const started = await call(from, 'POST', '/api/migrations', { guest, destination: to.migrationAddress, channels: 3, setupTimeoutMs: 3000, ...extra });
    assert.equal(started.status, 201, JSON.stringify(started.json));
    for (const deadline = Date.now() + 20_000; ; await sleep(30)) {
      const { json } = await call(from, 'GET', `/api/migrations/${started.json.id}`);
      if (['completed', 'failed', 'cancelled'].includes(json.summary?.state)) return json as MigrationDetail;
      assert.ok(Date.now() < deadline, `migration still ${json.summary?.state}`);
    }
  }

  before(async () => {
    pki = await makeTestPki();
    [a, b, clear] = await Promise.all([agent('tls-a', true), agent('tls-b', true), agent('clear-c', false)]);
  });

  after(async () => {
    await Promise.all([a, b, clear].map((x) => x?.close()));
    await pki?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a guest goes A → B and back, every channel x509 with a client certificate', async () => {
    const created = await call(a, 'POST', '/api/guests', { name: 'db-1', ramSize: 8 << 20 });
    assert.equal(created.status, 201, JSON.stringify(created.json));
    const uuid = (created.json as GuestSummary).uuid;
    for (const [from, to] of [
      [a, b],
      [b, a],
    ]) {
      const done = await migrateGuest(from, to, uuid);
      assert.equal(done.summary.state, 'completed', JSON.stringify(done.snapshot.error));
      assert.equal(done.snapshot.tls, 'x509');
      for (const c of done.snapshot.channels) assert.match(c.security ?? '', /^TLSv1\.3 \S+ x509 client-cert$/);
    }
  });

  it('a request in clear (tls: null) is refused by a TLS agent: MIGRATION_TLS_REQUIRED', async () => {
    const created = await call(a, 'POST', '/api/guests', { ramSize: 4 << 20 });
    const done = await migrateGuest(a, b, created.json.uuid, { tls: null });
    assert.equal(done.snapshot.error?.code, 'MIGRATION_TLS_REQUIRED');
    assert.equal(done.snapshot.tls, null);
  });

  it('GET /api/tls lists the sets a request may name; an agent in clear has none', async () => {
    const listed = await call(a, 'GET', '/api/tls');
    assert.equal(listed.status, 200);
    assert.deepEqual(listed.json, {
      sets: [
        { name: 'default', mode: 'x509', clientCert: true },
        { name: 'lab-psk', mode: 'psk', clientCert: false },
      ],
      default: 'default',
    });
    assert.deepEqual((await call(clear, 'GET', '/api/tls')).json, { sets: [], default: null });
  });

  it('a request naming another configured set: PSK where B has x509 fails by name; the default then works', async () => {
    const created = await call(a, 'POST', '/api/guests', { ramSize: 4 << 20 });
    const bad = await migrateGuest(a, b, created.json.uuid, { tls: { creds: 'lab-psk' } });
    assert.equal(bad.snapshot.error?.code, 'MIGRATION_TLS_HANDSHAKE_FAILED');
    const good = await migrateGuest(a, b, created.json.uuid, { tls: { creds: 'default' } });
    assert.equal(good.summary.state, 'completed', JSON.stringify(good.snapshot.error));
  });

  it('file paths in a request are refused (422) before anything is read or started; an unknown set names the known ones', async () => {
    const created = await call(a, 'POST', '/api/guests', { ramSize: 4 << 20 });
    const before = (await call(a, 'GET', '/api/migrations')).json.migrations.length;
    for (const tls of [{ mode: 'psk', psk: '/etc/shadow' }, { mode: 'x509', ca: '/proc/self/environ' }, { creds: 'default', psk: '/etc/passwd' }]) {
      const r = await call(a, 'POST', '/api/migrations', { guest: created.json.uuid, destination: b.migrationAddress, tls });
      assert.equal(r.status, 422, JSON.stringify(r.json));
      assert.equal(r.json.code, 'MIGRATION_CONFIG_INVALID');
      assert.ok(r.json.fields.tls, JSON.stringify(r.json));
      assert.doesNotMatch(JSON.stringify(r.json), /root|PATH=|HOME=/, 'no file was read');
    }
    const unknown = await call(a, 'POST', '/api/migrations', { guest: created.json.uuid, destination: b.migrationAddress, tls: { creds: 'prod' } });
    assert.equal(unknown.status, 422, JSON.stringify(unknown.json));
    assert.match(unknown.json.fields.tls[0], /no TLS credential set "prod" on this host \(it has "default", "lab-psk"\)/);
    const hostnameOnPsk = await call(a, 'POST', '/api/migrations', { guest: created.json.uuid, destination: b.migrationAddress, tls: { creds: 'lab-psk', hostname: 'b.example' } });
    assert.equal(hostnameOnPsk.status, 422, JSON.stringify(hostnameOnPsk.json));
    assert.equal((await call(a, 'GET', '/api/migrations')).json.migrations.length, before, 'nothing started');
  });

  it('an agent with a bad credential set does not start, and says which set and file', async () => {
    await assert.rejects(
      startAgent({ name: 'bad-creds', host: '127.0.0.1', port: 0, migrationHost: '127.0.0.1', migrationPort: 0, token, dataDir: path.join(dir, 'bad-creds'), tlsCreds: [{ name: 'broken', dir: path.join(dir, 'nowhere') }] }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'MIGRATION_TLS_CREDENTIALS_INVALID');
        assert.match(err.message, /TLS credential set "broken": TLS CA .*nowhere\/ca-cert\.pem: no such file/);
        return true;
      },
    );
  });

  it('a TLS agent migrating to an agent in clear: MIGRATION_TLS_NOT_CONFIGURED', async () => {
    const created = await call(a, 'POST', '/api/guests', { ramSize: 4 << 20 });
    const done = await migrateGuest(a, clear, created.json.uuid);
    assert.equal(done.snapshot.error?.code, 'MIGRATION_TLS_NOT_CONFIGURED');
  });

  it('a TLS fault on a request in clear is a 422 naming the fault', async () => {
    const created = await call(a, 'POST', '/api/guests', { ramSize: 4 << 20 });
    const r = await call(a, 'POST', '/api/migrations', { guest: created.json.uuid, destination: b.migrationAddress, tls: null, inject: ['ch0:tls-clear'] });
    assert.equal(r.status, 422, JSON.stringify(r.json));
    assert.match(JSON.stringify(r.json), /ch0:tls-clear needs a migration over TLS/);
  });
});
