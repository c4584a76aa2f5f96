/**
 * The TLS flags of `multifd dest` and `multifd migrate` as real processes over loopback TCP:
 * x509 with a required client certificate and PSK complete; a PSK mismatch exits 1 with
 * its code (ndjson and human output); bad combinations and bad files are usage errors.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeTestPki, type TestPki } from '../../lib/engine/tls-test-support';
import { STACK_LINE, closeSockets, killAll, run, startDest, type Line } from './test-support';

let pki: TestPki;
before(async () => {
  pki = await makeTestPki();
});
after(async () => {
  closeSockets();
  killAll();
  await pki?.cleanup();
});

const SHORT = ['--connect-timeout-ms', '2000', '--no-progress-timeout-ms', '5000', '--verify-timeout-ms', '10000', '--timeout-ms', '5000'];
const last = (lines: Line[], type: string) => lines.filter((l) => l.type === type).at(-1);

interface Snap {
  tls: string | null;
  channels: Array<{ security: string | null; times: { secured: number | null } }>;
}

describe('multifd dest/migrate --tls-*', () => {
  const x509Dest = () => ['--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--tls-ca', pki.ca, '--tls-require-client-cert'];
  const x509Source = () => ['--tls-cert', pki.clientCert, '--tls-key', pki.clientKey, '--tls-ca', pki.ca];

  it('x509 with a required client certificate: both exit 0, every channel secured on both sides', { timeout: 30_000 }, async () => {
    const dest = await startDest(['--once', ...x509Dest()]);
    try {
      const src = await run(['migrate', '--to', dest.address, '--channels', '3', '--ram-size', '8MiB', '--events', 'ndjson', ...SHORT, ...x509Source()], 20_000);
      assert.equal(src.exit.code, 0, src.cli.describe());
      assert.equal((await dest.cli.exit(5_000)).code, 0, dest.cli.describe());
      for (const cli of [src.cli, dest.cli]) {
        const snap = (last(cli.events, 'progress') as unknown as { snapshot: Snap }).snapshot;
        assert.equal(snap.tls, 'x509');
        assert.equal(snap.channels.length, 3);
        for (const c of snap.channels) {
          assert.match(c.security ?? '', /^TLSv1\.3 \S+ x509 client-cert$/);
          assert.equal(typeof c.times.secured, 'number');
        }
      }
    } finally {
      dest.cli.kill();
    }
  });

  it('PSK: both exit 0', { timeout: 30_000 }, async () => {
    const dest = await startDest(['--once', '--tls-psk', pki.psk]);
    try {
      const src = await run(['migrate', '--to', dest.address, '--channels', '2', '--ram-size', '4MiB', '--events', 'ndjson', ...SHORT, '--tls-psk', pki.psk], 20_000);
      assert.equal(src.exit.code, 0, src.cli.describe());
      assert.equal((await dest.cli.exit(5_000)).code, 0, dest.cli.describe());
    } finally {
      dest.cli.kill();
    }
  });

  it('a PSK mismatch: migrate exits 1 with MIGRATION_TLS_PSK_MISMATCH (ndjson, then on stderr); the dest reports it and keeps serving', { timeout: 30_000 }, async () => {
    const dest = await startDest(['--tls-psk', pki.psk]);
    try {
      const bad = await run(['migrate', '--to', dest.address, '--channels', '2', '--ram-size', '4MiB', '--events', 'ndjson', ...SHORT, '--tls-psk', pki.pskOtherKey], 20_000);
      assert.equal(bad.exit.code, 1, bad.cli.describe());
      const failed = last(bad.cli.events, 'failed');
      assert.equal(failed?.code, 'MIGRATION_TLS_PSK_MISMATCH', bad.cli.describe());
      assert.equal(failed?.channel, null);
      assert.match(String(failed?.message), /^main channel to 127\.0\.0\.1:\d+: /);
      await dest.cli.waitFor((l) => l.type === 'channel-rejected' && l.code === 'MIGRATION_TLS_PSK_MISMATCH', 5_000, 'the refusal at the dest');

      const human = await run(['migrate', '--to', dest.address, '--channels', '2', '--ram-size', '4MiB', ...SHORT, '--tls-psk', pki.pskOtherIdentity], 20_000);
      assert.equal(human.exit.code, 1, human.cli.describe());
      assert.match(human.cli.stderr, /MIGRATION_TLS_PSK_MISMATCH/);
      assert.doesNotMatch(human.cli.stderr, STACK_LINE);

      const ok = await run(['migrate', '--to', dest.address, '--channels', '2', '--ram-size', '4MiB', '--events', 'ndjson', ...SHORT, '--tls-psk', pki.psk], 20_000);
      assert.equal(ok.exit.code, 0, ok.cli.describe());
    } finally {
      dest.cli.kill();
    }
  });

  it('bad combinations and bad files: exit 2, saying what is wrong, no stack', { timeout: 30_000 }, async () => {
    const to = ['--to', '127.0.0.1:1'];
    const cases: Array<{ args: string[]; says: RegExp }> = [
      { args: ['migrate', ...to, '--tls-cert', pki.clientCert, '--tls-ca', pki.ca], says: /--tls-cert needs its --tls-key/ },
      { args: ['migrate', ...to, '--tls-psk', pki.psk, '--tls-ca', pki.ca], says: /--tls-psk and --tls-ca exclude each other/ },
      { args: ['migrate', ...to, '--tls-cert', pki.clientCert, '--tls-key', pki.clientKey], says: /x509 needs --tls-ca/ },
      { args: ['migrate', ...to, '--tls-psk', pki.psk, '--tls-hostname', 'a.example'], says: /--tls-psk and --tls-hostname exclude each other/ },
      { args: ['migrate', ...to, '--tls-ca', pki.ca, '--tls-require-client-cert'], says: /--tls-require-client-cert is for a destination/ },
      { args: ['migrate', ...to, '--inject', 'ch0:tls-clear'], says: /ch0:tls-clear needs TLS/ },
      { args: ['dest', '--listen', '127.0.0.1:0', '--tls-ca', pki.ca], says: /a destination needs its certificate/ },
      { args: ['dest', '--listen', '127.0.0.1:0', '--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--tls-hostname', 'x'], says: /--tls-hostname names one destination/ },
      { args: ['dest', '--listen', '127.0.0.1:0', '--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--tls-require-client-cert'], says: /--tls-require-client-cert needs --tls-ca/ },
      { args: ['dest', '--listen', '127.0.0.1:0', '--tls-cert', pki.serverCert, '--tls-key', pki.clientKey], says: /client-key\.pem: this key does not match the certificate/ },
      { args: ['dest', '--listen', '127.0.0.1:0', '--tls-psk', path.join(pki.dir, 'none.psk')], says: /none\.psk: no such file/ },
      { args: ['agent', '--listen', '127.0.0.1:0', '--tls-cert', pki.serverCert, '--tls-key', pki.serverKey], says: /give --tls-ca/ },
    ];
    const runs = await Promise.all(cases.map((c) => run(c.args, 20_000)));
    cases.forEach((c, i) => {
      const r = runs[i];
      assert.equal(r.exit.code, 2, r.cli.describe());
      assert.match(r.cli.stderr, c.says, r.cli.describe());
      assert.doesNotMatch(r.cli.stderr, STACK_LINE);
    });
  });
});
