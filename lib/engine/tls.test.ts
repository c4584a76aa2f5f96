/**
 * TLS on the main channel and every multifd channel, over real loopback TCP with real
 * migrations: the cases of QEMU's own TLS migration tests (tests/qtest/migration-test.c:
 * tls_psk_match, tls_psk_mismatch, x509_default_host, x509_override_host,
 * x509_mismatch_host, x509_friendly_client, x509_hostile_client, x509_allow_anon_client,
 * x509_reject_anon_client), then what QEMU does not test: clear against TLS both ways, one
 * channel failing alone, bad credential files, a recording proxy that must see no guest
 * page, alerts from a peer that is not ours (openssl s_server), and the destination fed junk.
 * Certificates are made for the run with openssl (lib/engine/tls-test-support.ts).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { MigrationEventSchema, type MigrationEvent, type TlsClient } from '../contracts';
import type { ErrorCode, MigrationError } from '../errors';
import { Destination } from './destination';
import type { Fault } from './faults';
import { FixedReader, SocketReader, type ReadConsumer } from './socket-reader';
import { MiB, fullDigest, makeGuest, migrate, rawConnect, sleep, startDest, waitFor, type TestDest } from './test-support';
import { loadClientCredentials, loadPskFile, loadServerCredentials, type TlsServerConfig } from './tls';
import { clientX509, makeTestPki, serverX509, type TestPki } from './tls-test-support';

let pki: TestPki;
before(async () => {
  pki = await makeTestPki();
});
after(async () => {
  await pki?.cleanup();
});

/** Short timeouts everywhere: a failure shows in milliseconds, a hang in a few seconds. */
const SHORT = { channels: 4, connectTimeoutMs: 2000, setupTimeoutMs: 3000, noProgressTimeoutMs: 3000, verifyTimeoutMs: 10_000 };
const DEST = { handshakeTimeoutMs: 2000, setupTimeoutMs: 3000 };

type Rejected = Extract<MigrationEvent, { type: 'channel-rejected' }>;
const psk = (file: string): TlsClient => ({ mode: 'psk', psk: file });

/** A migration that must complete: verified, and the RAM that arrived re-hashes to the source's. */
async function completes(td: TestDest, cfg: TlsClient | null, faults: Fault[] = [], ramSize = 8 * MiB) {
  const guest = await makeGuest({ ramSize });
  const before = await fullDigest(guest.blocks);
  const run = await migrate(guest, td.port, { ...SHORT, tls: cfg }, faults, td);
  assert.equal(run.result.state, 'completed', `${run.result.error?.code}: ${run.result.error?.message}`);
  assert.equal(run.result.snapshot.verified, true);
  assert.equal(run.dest?.state, 'completed');
  assert.equal(await fullDigest(run.dest!.guest!.blocks), before, 'the RAM that arrived is the source RAM');
  for (const e of run.events) MigrationEventSchema.parse(e);
  await run.dest!.guest!.stop();
  return run;
}

/** A migration that must fail with `code`; the source guest keeps running, unchanged. */
async function fails(td: TestDest, cfg: TlsClient | null, code: ErrorCode, faults: Fault[] = []): Promise<MigrationError> {
  const guest = await makeGuest({ ramSize: 4 * MiB });
  const before = await fullDigest(guest.blocks);
  const run = await migrate(guest, td.port, { ...SHORT, tls: cfg }, faults, td);
  const err = run.result.error;
  assert.equal(run.result.state, 'failed');
  assert.equal(err?.code, code, `${err?.code}: ${err?.message}`);
  assert.ok(err.expected && err.received, `expected and received are filled: ${JSON.stringify(err.toJSON())}`);
  assert.equal(guest.state, 'running', 'the source guest keeps running');
  assert.equal(await fullDigest(guest.blocks), before, 'and is unchanged');
  for (const e of run.events) MigrationEventSchema.parse(e);
  await guest.stop();
  return err;
}

/** The error is the main channel's. */
function onMain(err: MigrationError): void {
  assert.equal(err.channel, null);
  assert.match(err.message, /^main channel to 127\.0\.0\.1:\d+: /);
}

/** The destination reported a refused connection with `code` (no migration to blame yet). */
async function refusedAtDest(td: TestDest, code: ErrorCode): Promise<Rejected> {
  const e = (await waitFor(td.events, (x) => x.type === 'channel-rejected' && x.code === code, 3000)) as Rejected;
  assert.equal(e.migration, null);
  assert.match(e.peer ?? '', /^127\.0\.0\.1:\d+$/);
  assert.ok(typeof e.connection === 'number');
  MigrationEventSchema.parse(e);
  return e;
}

async function withDest(tlsCfg: TlsServerConfig | null, fn: (td: TestDest) => Promise<void>): Promise<void> {
  const td = await startDest({ ...DEST, tls: tlsCfg });
  try {
    await fn(td);
  } finally {
    await td.close();
  }
}

describe('TLS PSK (QEMU tls_psk_*)', () => {
  it('tls_psk_match: completes over TLS 1.3 PSK, every channel says so on both sides', async () => {
    await withDest({ mode: 'psk', psk: pki.psk }, async (td) => {
      const run = await completes(td, psk(pki.psk));
      const snap = run.result.snapshot;
      assert.equal(snap.tls, 'psk');
      assert.equal(run.dest!.snapshot.tls, 'psk');
      for (const c of [...snap.channels, ...run.dest!.snapshot.channels]) {
        assert.match(c.security ?? '', /^TLSv1\.3 TLS_\S+ psk:qemu$/);
        assert.ok(typeof c.times.secured === 'number' && c.times.secured >= c.times.connected!, 'secured after connected');
      }
      // The source showed each channel in state 'tls' while its handshake ran.
      const tlsStates = run.events.filter((e) => e.type === 'channel' && e.state === 'tls');
      assert.equal(tlsStates.length, SHORT.channels);
    });
  });

  it('tls_psk_mismatch: another key, then another identity: MIGRATION_TLS_PSK_MISMATCH on the main channel; a retry with the right key completes', async () => {
    await withDest({ mode: 'psk', psk: pki.psk }, async (td) => {
      const err = await fails(td, psk(pki.pskOtherKey), 'MIGRATION_TLS_PSK_MISMATCH');
      onMain(err);
      const atDest = await refusedAtDest(td, 'MIGRATION_TLS_PSK_MISMATCH');
      assert.match(atDest.message, /key differs/);
      const err2 = await fails(td, psk(pki.pskOtherIdentity), 'MIGRATION_TLS_PSK_MISMATCH');
      onMain(err2);
      const unknown = (await waitFor(td.events, (x) => x.type === 'channel-rejected' && /"intruder"/.test(x.message), 3000)) as Rejected;
      assert.equal(unknown.received, 'identity "intruder"');
      await completes(td, psk(pki.psk));
    });
  });

  it('the destination accepts any identity of its file (the second line too)', async () => {
    const second = path.join(pki.dir, 'second.psk');
    const lines = (await loadPskFile(pki.psk)).map((k) => `${k.identity}:${k.key.toString('hex')}`);
    await writeFile(second, `${lines[1]}\n`);
    await withDest({ mode: 'psk', psk: pki.psk }, async (td) => {
      const run = await completes(td, psk(second));
      assert.match(run.dest!.snapshot.channels[0].security ?? '', /psk:backup$/);
    });
  });
});

describe('TLS x509 (QEMU tls_x509_*)', () => {
  it('x509_default_host: the certificate names 127.0.0.1 (an IP SAN), the --to host: completes', async () => {
    await withDest(serverX509(pki), async (td) => {
      const run = await completes(td, clientX509(pki));
      assert.equal(run.result.snapshot.tls, 'x509');
      for (const c of run.result.snapshot.channels) assert.match(c.security ?? '', /^TLSv1\.3 TLS_AES_256_GCM_SHA384 x509$/);
      for (const c of run.dest!.snapshot.channels) assert.match(c.security ?? '', /^TLSv1\.3 \S+ x509$/);
    });
  });

  it('x509_override_host: hostname "localhost" (a DNS SAN) instead of the --to host: completes', async () => {
    await withDest(serverX509(pki), async (td) => {
      await completes(td, clientX509(pki, { hostname: 'localhost' }));
    });
  });

  it('x509_mismatch_host: hostname "other.example": MIGRATION_TLS_HOSTNAME_MISMATCH saying both names; a retry completes', async () => {
    await withDest(serverX509(pki), async (td) => {
      const err = await fails(td, clientX509(pki, { hostname: 'other.example' }), 'MIGRATION_TLS_HOSTNAME_MISMATCH');
      onMain(err);
      assert.equal(err.expected, 'a certificate for other.example');
      assert.equal(err.received, 'certificate for 127.0.0.1, localhost');
      // The destination only sees its client give up.
      await refusedAtDest(td, 'MIGRATION_TLS_HANDSHAKE_FAILED');
      await completes(td, clientX509(pki));
    });
  });

  it('x509_friendly_client: a client certificate from the CA, the destination requires one: completes', async () => {
    await withDest(serverX509(pki, true), async (td) => {
      const run = await completes(td, clientX509(pki, { client: true }));
      for (const c of [...run.result.snapshot.channels, ...run.dest!.snapshot.channels]) assert.match(c.security ?? '', / x509 client-cert$/);
    });
  });

  it('x509_hostile_client: a client certificate from another CA: MIGRATION_TLS_CLIENT_CERT_UNTRUSTED; a retry completes', async () => {
    await withDest(serverX509(pki), async (td) => {
      const hostile: TlsClient = { mode: 'x509', ca: pki.ca, cert: pki.hostileCert, key: pki.hostileKey };
      const err = await fails(td, hostile, 'MIGRATION_TLS_CLIENT_CERT_UNTRUSTED');
      onMain(err);
      assert.match(err.received ?? '', /CN=hostile source issued by CN=hostile CA/);
      assert.match(err.expected ?? '', /CN=multifd test CA/);
      await refusedAtDest(td, 'MIGRATION_TLS_CLIENT_CERT_UNTRUSTED');
      await completes(td, clientX509(pki, { client: true }));
    });
  });

  it('x509_allow_anon_client: no client certificate, the destination does not require one: completes', async () => {
    await withDest(serverX509(pki, false), async (td) => {
      await completes(td, clientX509(pki));
    });
  });

  it('x509_reject_anon_client: no client certificate, the destination requires one: MIGRATION_TLS_CLIENT_CERT_REQUIRED; a retry with one completes', async () => {
    await withDest(serverX509(pki, true), async (td) => {
      const err = await fails(td, clientX509(pki), 'MIGRATION_TLS_CLIENT_CERT_REQUIRED');
      onMain(err);
      await refusedAtDest(td, 'MIGRATION_TLS_CLIENT_CERT_REQUIRED');
      await completes(td, clientX509(pki, { client: true }));
    });
  });

  it('a destination certificate from a CA the source does not trust: MIGRATION_TLS_CERT_UNTRUSTED, naming it; a retry completes', async () => {
    await withDest(serverX509(pki), async (td) => {
      const err = await fails(td, { mode: 'x509', ca: pki.hostileCa }, 'MIGRATION_TLS_CERT_UNTRUSTED');
      onMain(err);
      assert.match(err.received ?? '', /CN=localhost, issued by CN=multifd test CA/);
      await completes(td, clientX509(pki));
    });
  });

  it('PSK source to an x509 destination, and x509 to PSK: MIGRATION_TLS_HANDSHAKE_FAILED saying which side uses what', async () => {
    await withDest(serverX509(pki), async (td) => {
      const err = await fails(td, psk(pki.psk), 'MIGRATION_TLS_HANDSHAKE_FAILED');
      assert.match(err.message, /set up for x509/);
    });
    await withDest({ mode: 'psk', psk: pki.psk }, async (td) => {
      const err = await fails(td, clientX509(pki), 'MIGRATION_TLS_HANDSHAKE_FAILED');
      assert.match(err.message, /set up for PSK/);
      const atDest = await refusedAtDest(td, 'MIGRATION_TLS_HANDSHAKE_FAILED');
      assert.match(atDest.message, /offered no pre-shared key/);
    });
  });
});

describe('TLS against clear', () => {
  it('a source in clear to a destination that requires TLS: MIGRATION_TLS_REQUIRED; a retry over TLS completes', async () => {
    await withDest(serverX509(pki), async (td) => {
      const err = await fails(td, null, 'MIGRATION_TLS_REQUIRED');
      onMain(err);
      await refusedAtDest(td, 'MIGRATION_TLS_REQUIRED');
      await completes(td, clientX509(pki));
    });
  });

  it('a TLS source to a destination without TLS credentials: MIGRATION_TLS_NOT_CONFIGURED; a retry in clear completes', async () => {
    await withDest(null, async (td) => {
      const err = await fails(td, clientX509(pki), 'MIGRATION_TLS_NOT_CONFIGURED');
      onMain(err);
      assert.match(err.message, /answered in clear/);
      await refusedAtDest(td, 'MIGRATION_TLS_NOT_CONFIGURED');
      await completes(td, null);
    });
  });
});

describe('TLS timeouts', () => {
  it('a destination that accepts and never answers the ClientHello: MIGRATION_TLS_HANDSHAKE_FAILED within --connect-timeout-ms', async () => {
    const sockets = new Set<net.Socket>();
    const closed: Array<Promise<void>> = [];
    const silent = net.createServer((s) => {
      sockets.add(s);
      s.on('error', () => {});
      s.resume(); // reads the ClientHello, answers nothing
      closed.push(new Promise((r) => s.once('close', () => r())));
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const guest = await makeGuest({ ramSize: 1 * MiB });
      const t0 = Date.now();
      const run = await migrate(guest, (silent.address() as net.AddressInfo).port, { ...SHORT, connectTimeoutMs: 300, tls: clientX509(pki) });
      const err = run.result.error!;
      assert.equal(err.code, 'MIGRATION_TLS_HANDSHAKE_FAILED');
      onMain(err);
      assert.match(err.message, /no TLS handshake within 300 ms/);
      assert.ok(Date.now() - t0 < 2500, 'failed at the TLS timeout, not a later one');
      await guest.stop();
      // The source let go of its connection.
      assert.equal(closed.length, 1);
      await Promise.race([Promise.all(closed), sleep(1000).then(() => assert.fail('the source kept its connection open'))]);
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });
});

describe('TLS to a peer that hangs up', () => {
  it('closed on the ClientHello (a destination that knows no TLS): MIGRATION_TLS_HANDSHAKE_FAILED, the close named', async () => {
    const rude = net.createServer((s) => {
      s.on('error', () => {});
      s.once('data', () => s.destroy());
    });
    await new Promise<void>((r) => rude.listen(0, '127.0.0.1', r));
    try {
      const guest = await makeGuest({ ramSize: 1 * MiB });
      const run = await migrate(guest, (rude.address() as net.AddressInfo).port, { ...SHORT, tls: psk(pki.psk) });
      const err = run.result.error!;
      assert.equal(err.code, 'MIGRATION_TLS_HANDSHAKE_FAILED');
      onMain(err);
      assert.match(err.message, /closed the connection during the TLS handshake \(ECONNRESET\)/);
      await guest.stop();
    } finally {
      rude.close();
    }
  });
});

describe('TLS failing on one multifd channel', () => {
  const cases: Array<{ fault: Fault; server: () => TlsServerConfig; client: () => TlsClient; code: ErrorCode }> = [
    { fault: { channel: 2, kind: 'tls-hostname' }, server: () => serverX509(pki), client: () => clientX509(pki), code: 'MIGRATION_TLS_HOSTNAME_MISMATCH' },
    { fault: { channel: 1, kind: 'tls-clear' }, server: () => serverX509(pki), client: () => clientX509(pki), code: 'MIGRATION_TLS_REQUIRED' },
    { fault: { channel: 3, kind: 'tls-anon' }, server: () => serverX509(pki, true), client: () => clientX509(pki, { client: true }), code: 'MIGRATION_TLS_CLIENT_CERT_REQUIRED' },
    { fault: { channel: 0, kind: 'tls-clear' }, server: () => ({ mode: 'psk', psk: pki.psk }), client: () => psk(pki.psk), code: 'MIGRATION_TLS_REQUIRED' },
  ];
  for (const c of cases) {
    it(`ch${c.fault.channel}:${c.fault.kind}: ${c.code} names channel ${c.fault.channel}; a retry completes`, async () => {
      await withDest(c.server(), async (td) => {
        const err = await fails(td, c.client(), c.code, [c.fault]);
        assert.equal(err.channel, c.fault.channel);
        assert.match(err.message, new RegExp(`^channel ${c.fault.channel}\\b`));
        await completes(td, c.client());
      });
    });
  }

  it('ch0:tls-anon where client certificates are optional: completes, channel 0 anonymous', async () => {
    await withDest(serverX509(pki), async (td) => {
      const run = await completes(td, clientX509(pki, { client: true }), [{ channel: 0, kind: 'tls-anon' }]);
      const security = run.result.snapshot.channels.map((c) => c.security);
      assert.match(security[0] ?? '', / x509$/);
      assert.match(security[1] ?? '', / x509 client-cert$/);
    });
  });

  it('a TLS fault on a migration in clear is refused before anything connects (MIGRATION_CONFIG_INVALID)', async () => {
    await withDest(null, async (td) => {
      const err = await fails(td, null, 'MIGRATION_CONFIG_INVALID', [{ channel: 1, kind: 'tls-clear' }]);
      assert.equal(err.field, 'inject');
    });
  });
});

describe('TLS credentials', () => {
  it('a bad file fails the source migration with MIGRATION_TLS_CREDENTIALS_INVALID before it connects', async () => {
    let connections = 0;
    const srv = net.createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    try {
      for (const cfg of [
        { mode: 'x509', ca: path.join(pki.dir, 'missing.pem') },
        { mode: 'x509', ca: pki.ca, cert: pki.clientCert, key: pki.serverKey },
        { mode: 'psk', psk: pki.ca },
      ] as TlsClient[]) {
        const guest = await makeGuest({ ramSize: 1 * MiB });
        const run = await migrate(guest, port, { ...SHORT, tls: cfg });
        assert.equal(run.result.error?.code, 'MIGRATION_TLS_CREDENTIALS_INVALID', run.result.error?.message);
        assert.equal(guest.state, 'running');
        await guest.stop();
      }
      assert.equal(connections, 0, 'nothing connected');
    } finally {
      srv.close();
    }
  });

  it('each bad file is named with what is wrong with it', async () => {
    const REAL_KEY = 'a3f1c2e4b5d6978812345678abcdef0123456789abcdef0123456789abcdef01';
    const KEY_LINE = `qemu:${REAL_KEY}`;
    const f = (name: string, text: string) => writeFile(path.join(pki.dir, name), text).then(() => path.join(pki.dir, name));
    const cases: Array<[() => Promise<unknown>, RegExp]> = [
      [() => loadServerCredentials({ mode: 'x509', cert: path.join(pki.dir, 'nope.pem'), key: pki.serverKey }), /certificate .*nope\.pem: no such file/],
      [() => loadServerCredentials({ mode: 'x509', cert: pki.serverCert, key: pki.dir }), /key .*: is a directory/],
      [() => loadServerCredentials({ mode: 'x509', cert: pki.psk, key: pki.serverKey }), /keys\.psk: not a PEM certificate/],
      [() => loadServerCredentials({ mode: 'x509', cert: pki.serverCert, key: pki.serverCert }), /server\.pem: not a PEM private key/],
      [() => loadServerCredentials({ mode: 'x509', cert: pki.serverCert, key: pki.clientKey }), /client-key\.pem: this key does not match the certificate in .*server\.pem/],
      [() => loadServerCredentials({ mode: 'x509', cert: pki.serverCert, key: pki.serverKey, requireClientCert: true }), /requiring client certificates needs the CA/],
      [() => loadClientCredentials({ mode: 'x509', ca: pki.ca, key: pki.clientKey }), /a certificate and its key go together/],
      [async () => loadPskFile(await f('no-colon.psk', 'qemu\n')), /line 1: expected IDENTITY:HEXKEY/],
      [async () => loadPskFile(await f('odd.psk', '# keys\n\nqemu:abc\n')), /line 3: the key is not hex/],
      [async () => loadPskFile(await f('nothex.psk', 'qemu:zz\n')), /line 1: the key is not hex/],
      [async () => loadPskFile(await f('twice.psk', 'a:00\na:01\n')), /line 2: the identity of line 1 again/],
      // Real key material on the offending lines: the messages must not carry it.
      [async () => loadPskFile(await f('twice-real.psk', `${KEY_LINE}\n${KEY_LINE}\n`)), /line 2: the identity of line 1 again/],
      [async () => loadPskFile(await f('short-real.psk', `qemu:${REAL_KEY}z\n`)), /line 1: the key is not hex/],
      [async () => loadPskFile(await f('empty.psk', '\n# nothing\n')), /no IDENTITY:HEXKEY line/],
      // Any file this user can read named by mistake: its text never reaches the message.
      [async () => loadPskFile(await f('shadow-like', 'root:$y$j9T$secrethash:19000:0:99999:7:::\n')), /line 1: the key is not hex/],
      [async () => loadPskFile(await f('big.psk', 'x'.repeat((1 << 20) + 1))), /larger than 1 MiB/],
      [async () => loadServerCredentials({ mode: 'x509', cert: await f('broken.pem', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'), key: pki.serverKey }), /does not parse/],
    ];
    for (const [load, message] of cases) {
      await assert.rejects(load(), (err: MigrationError) => {
        assert.equal(err.code, 'MIGRATION_TLS_CREDENTIALS_INVALID');
        assert.match(err.message, message);
        assert.doesNotMatch(err.message, /[0-9a-f]{32}/, 'no key material in messages');
        assert.doesNotMatch(err.message, /root|secrethash/, 'no file content in messages');
        return true;
      });
    }
  });

  it('a FIFO named as a credential file is refused at once, without blocking on it', async () => {
    const fifo = path.join(pki.dir, 'creds.fifo');
    execFileSync('mkfifo', [fifo]);
    // Nothing ever opens its other end: a blocking read would wait here for ever.
    await assert.rejects(loadPskFile(fifo), (err: MigrationError) => {
      assert.equal(err.code, 'MIGRATION_TLS_CREDENTIALS_INVALID');
      assert.match(err.message, /creds\.fifo: not a regular file/);
      return true;
    });
    await assert.rejects(loadClientCredentials({ mode: 'x509', ca: fifo }), /not a regular file/);
  });

  it('a destination with bad credentials does not listen', async () => {
    const d = new Destination({ host: '127.0.0.1', port: 0, tls: { mode: 'x509', cert: pki.serverCert, key: pki.clientKey } });
    await assert.rejects(d.listen(), { code: 'MIGRATION_TLS_CREDENTIALS_INVALID' });
    await d.close();
  });
});

/** A TCP forwarder that records what the source sends, per connection. */
async function recordingProxy(target: number) {
  const recorded: Buffer[][] = [];
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((client) => {
    const chunks: Buffer[] = [];
    recorded.push(chunks);
    const upstream = net.connect(target, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (d: Buffer) => chunks.push(d));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as net.AddressInfo).port,
    streams: () => recorded.map((c) => Buffer.concat(c)),
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => srv.close(() => r()));
    },
  };
}

describe('TLS encrypts: what a recording proxy sees', () => {
  /** How many of the sampled guest pages (64 bytes of every 64th page) appear in the recorded bytes. */
  async function pagesSeen(server: TlsServerConfig | null, client: TlsClient | null): Promise<{ seen: number; samples: number; bytes: number }> {
    const td = await startDest({ ...DEST, tls: server });
    const proxy = await recordingProxy(td.port);
    try {
      const guest = await makeGuest({ ramSize: 8 * MiB });
      const ram = guest.blocks[0].bytes;
      const samples: Buffer[] = [];
      for (let off = 0; off < ram.length; off += 64 * 4096) samples.push(Buffer.from(ram.subarray(off, off + 64)));
      const run = await migrate(guest, proxy.port, { ...SHORT, tls: client }, [], td);
      assert.equal(run.result.state, 'completed', run.result.error?.message);
      await run.dest?.guest?.stop();
      const streams = proxy.streams();
      const bytes = streams.reduce((n, s) => n + s.length, 0);
      assert.ok(bytes > 8 * MiB, `the proxy carried the migration (${bytes} bytes)`);
      const seen = samples.filter((p) => streams.some((s) => s.includes(p))).length;
      return { seen, samples: samples.length, bytes };
    } finally {
      await proxy.close();
      await td.close();
    }
  }

  it('in clear every sampled page is on the wire (the check can fail)', async () => {
    const r = await pagesSeen(null, null);
    assert.equal(r.seen, r.samples);
  });

  it('over TLS x509 and PSK none is', async () => {
    for (const [server, client] of [
      [serverX509(pki, true), clientX509(pki, { client: true })],
      [{ mode: 'psk', psk: pki.psk }, psk(pki.psk)],
    ] as Array<[TlsServerConfig, TlsClient]>) {
      const r = await pagesSeen(server, client);
      assert.equal(r.seen, 0, `${r.seen} of ${r.samples} sampled pages in clear on the wire (${client.mode})`);
    }
  });
});

describe('TLS under load', () => {
  it('a guest dirtying memory over 8 channels: several rounds, each SYNC barrier held, RAM verified (x509 and PSK)', async () => {
    for (const [server, client] of [
      [serverX509(pki, true), clientX509(pki, { client: true })],
      [{ mode: 'psk', psk: pki.psk }, psk(pki.psk)],
    ] as Array<[TlsServerConfig, TlsClient]>) {
      const td = await startDest({ ...DEST, tls: server });
      try {
        const guest = await makeGuest({ ramSize: 32 * MiB, workload: { kind: 'random', rate: 64 * MiB } });
        const run = await migrate(guest, td.port, { ...SHORT, channels: 8, tls: client, downtimeLimitMs: 50, roundLimit: 6 }, [], td);
        assert.equal(run.result.state, 'completed', run.result.error?.message);
        assert.ok(run.result.snapshot.round >= 2, `rounds: ${run.result.snapshot.round}`);
        assert.equal(run.dest?.snapshot.verified, true);
        await run.dest?.guest?.stop();
      } finally {
        await td.close();
      }
    }
  });
});

describe('SocketReader over TLS: nothing reaches a paused consumer', () => {
  for (const copy of [false, true]) {
    it(`${copy ? "'data' events (no onread slots)" : 'zero-copy slots'}: 4 MiB in order across 100 pauses`, async () => {
      const payload = Buffer.alloc(4 * MiB);
      for (let i = 0; i < payload.length; i++) payload[i] = (i * 131 + (i >> 12)) & 0xff;
      const creds = await loadServerCredentials(serverX509(pki));
      const got = new Uint8Array(payload.length);
      let filled = 0;
      let paused = false;
      let whilePaused = 0;
      let zeroCopy: boolean | null = null;
      const done = new Promise<void>((resolve, reject) => {
        const srv = net.createServer({ pauseOnConnect: true }, (raw) => {
          const t = new tls.TLSSocket(raw, { isServer: true, secureContext: creds.context });
          t.on('error', reject);
          t.once('secure', () => {
            t.pause();
            // A Node without the slots: the reader falls back to 'data' events.
            if (copy) Object.defineProperty((t as unknown as { _handle: object })._handle, 'useUserBuffer', { value: undefined });
            let reader!: SocketReader;
            let nextPause = 40_000;
            const consumer: ReadConsumer = {
              // Small regions: a chunk or a batch of records spans several, and a pause falls inside one.
              next: () => got.subarray(filled, Math.min(got.length, filled + 4096)),
              advance: (n) => {
                if (paused) whilePaused += n;
                filled += n;
                if (filled === got.length) {
                  srv.close();
                  t.destroy();
                  resolve();
                  return;
                }
                if (filled >= nextPause) {
                  nextPause += 40_000;
                  paused = true;
                  reader.pause();
                  setTimeout(() => {
                    paused = false;
                    reader.start();
                  }, 1);
                }
              },
            };
            reader = new SocketReader(t, consumer, { onError: reject });
            zeroCopy = reader.zeroCopy;
            reader.start();
          });
        });
        srv.listen(0, '127.0.0.1', () => {
          const c = tls.connect({ host: '127.0.0.1', port: (srv.address() as net.AddressInfo).port, ca: readFileSync(pki.ca), minVersion: 'TLSv1.3' });
          c.on('secureConnect', () => c.end(payload));
          c.on('error', () => {});
        });
      });
      await done;
      assert.equal(zeroCopy, !copy);
      assert.equal(whilePaused, 0, 'no byte given to the consumer while it was paused');
      assert.ok(Buffer.from(got).equals(payload), 'every byte, in order');
    });
  }
});

/** An openssl s_server: a TLS peer that is not ours, for the alerts a node server never sends. */
async function opensslServer(args: string[]): Promise<{ port: number; child: ChildProcess }> {
  const free = net.createServer();
  await new Promise<void>((r) => free.listen(0, '127.0.0.1', r));
  const port = (free.address() as net.AddressInfo).port;
  await new Promise<void>((r) => free.close(() => r()));
  const child = spawn('openssl', ['s_server', '-accept', `127.0.0.1:${port}`, '-cert', pki.serverCert, '-key', pki.serverKey, '-CAfile', pki.ca, '-quiet', ...args], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  const deadline = Date.now() + 5000;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        r(true);
      });
      s.on('error', () => r(false));
    });
    if (ok) break;
    if (Date.now() > deadline) throw new Error('openssl s_server did not start');
    await sleep(50);
  }
  return { port, child };
}

describe('alerts from a TLS peer that is not ours (openssl s_server)', () => {
  const cases: Array<{ name: string; args: string[]; client: () => TlsClient; code: ErrorCode }> = [
    // TLS 1.3: the alert comes after the source's side of the handshake, on the main channel.
    { name: 'certificate required (ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED)', args: ['-Verify', '1', '-verify_return_error'], client: () => clientX509(pki), code: 'MIGRATION_TLS_CLIENT_CERT_REQUIRED' },
    {
      name: 'unknown CA (ERR_SSL_TLSV1_ALERT_UNKNOWN_CA)',
      args: ['-Verify', '1', '-verify_return_error'],
      client: () => ({ mode: 'x509', ca: pki.ca, cert: pki.hostileCert, key: pki.hostileKey }),
      code: 'MIGRATION_TLS_CLIENT_CERT_UNTRUSTED',
    },
    { name: 'TLS 1.2 only (ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION)', args: ['-tls1_2'], client: () => clientX509(pki), code: 'MIGRATION_TLS_HANDSHAKE_FAILED' },
  ];
  for (const c of cases) {
    it(`${c.name}: ${c.code}`, async () => {
      const { port, child } = await opensslServer(c.args);
      try {
        const guest = await makeGuest({ ramSize: 1 * MiB });
        const run = await migrate(guest, port, { ...SHORT, tls: c.client() });
        assert.equal(run.result.error?.code, c.code, run.result.error?.message);
        assert.equal(run.result.error?.channel, null);
        await guest.stop();
      } finally {
        child.kill();
      }
    });
  }
});

describe('a TLS destination fed junk', () => {
  let td: TestDest;
  before(async () => {
    td = await startDest({ tls: serverX509(pki), handshakeTimeoutMs: 300, setupTimeoutMs: 1000 });
  });
  after(async () => {
    await td.close();
  });
  let conn = 0;
  const rejectedFor = (n: number) => (e: MigrationEvent): e is Rejected => e.type === 'channel-rejected' && e.connection === n;

  it('a TLS record header followed by junk: MIGRATION_TLS_HANDSHAKE_FAILED', async () => {
    const s = await rawConnect(td.port, Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]));
    const e = await waitFor(td.events, rejectedFor(++conn), 3000);
    assert.equal(e.code, 'MIGRATION_TLS_HANDSHAKE_FAILED');
    assert.equal(e.channel, null);
    s.destroy();
  });

  it('half a ClientHello, then nothing: MIGRATION_TLS_HANDSHAKE_FAILED after the handshake timeout', async () => {
    const s = await rawConnect(td.port, Buffer.from([0x16, 0x03, 0x01, 0x00, 0xc8, 0x01]));
    const e = await waitFor(td.events, rejectedFor(++conn), 3000);
    assert.equal(e.code, 'MIGRATION_TLS_HANDSHAKE_FAILED');
    assert.match(e.message, /no TLS handshake within 300 ms/);
    s.destroy();
  });

  it('a TLS handshake, then nothing: MIGRATION_CHANNEL_HANDSHAKE_TIMEOUT, as in clear', async () => {
    const s = tls.connect({ host: '127.0.0.1', port: td.port, ca: readFileSync(pki.ca) });
    s.on('error', () => {});
    const e = await waitFor(td.events, rejectedFor(++conn), 3000);
    assert.equal(e.code, 'MIGRATION_CHANNEL_HANDSHAKE_TIMEOUT');
    s.destroy();
  });

  it('a TLS handshake, then a bad magic: MIGRATION_CHANNEL_BAD_MAGIC, as in clear', async () => {
    const s = tls.connect({ host: '127.0.0.1', port: td.port, ca: readFileSync(pki.ca) }, () => s.write('GET / HTTP/1.1\r\n\r\n'));
    s.on('error', () => {});
    const e = await waitFor(td.events, rejectedFor(++conn), 3000);
    assert.equal(e.code, 'MIGRATION_CHANNEL_BAD_MAGIC');
    s.destroy();
  });

  it('a TLS handshake, then a close: MIGRATION_TLS_HANDSHAKE_FAILED', async () => {
    const s = tls.connect({ host: '127.0.0.1', port: td.port, ca: readFileSync(pki.ca) }, () => s.end());
    s.on('error', () => {});
    const e = await waitFor(td.events, rejectedFor(++conn), 3000);
    assert.equal(e.code, 'MIGRATION_TLS_HANDSHAKE_FAILED');
    assert.match(e.message, /right after the TLS handshake/);
  });

  it('a connection in clear with junk: MIGRATION_CHANNEL_BAD_MAGIC', async () => {
    const s = await rawConnect(td.port, Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    const e = await waitFor(td.events, rejectedFor(++conn), 3000);
    assert.equal(e.code, 'MIGRATION_CHANNEL_BAD_MAGIC');
    s.destroy();
  });

  it('still serves a migration', async () => {
    await completes(td, clientX509(pki), [], 4 * MiB);
  });
});

describe('teardown', () => {
  it('closing a destination with TLS handshakes under way ends them; no socket is left behind', async () => {
    const td = await startDest({ tls: serverX509(pki), handshakeTimeoutMs: 5000 });
    const stalled = await rawConnect(td.port, Buffer.from([0x16, 0x03, 0x01, 0x00, 0xc8, 0x01]));
    const quiet = tls.connect({ host: '127.0.0.1', port: td.port, ca: readFileSync(pki.ca) });
    quiet.on('error', () => {});
    await new Promise((r) => quiet.once('secureConnect', r));
    await td.close();
    await Promise.all([stalled, quiet].map((s) => (s.destroyed ? null : new Promise((r) => s.once('close', r)))));
    await sleep(50);
    const left = process.getActiveResourcesInfo().filter((r) => /TCP|TLS/.test(r));
    assert.deepEqual(left, [], 'no socket or server left');
  });
});
