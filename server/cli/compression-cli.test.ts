/**
 * `--compression` on `multifd migrate` and `--compression-allow` on `multifd dest`, as real
 * processes over loopback TCP.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { closeSockets, killAll, run, startDest, type Line } from './test-support';

after(() => {
  closeSockets();
  killAll();
});

const SHORT = ['--connect-timeout-ms', '2000', '--no-progress-timeout-ms', '5000', '--verify-timeout-ms', '10000', '--timeout-ms', '5000'];

const last = (lines: Line[], type: string) => lines.filter((l) => l.type === type).at(-1);

describe('multifd migrate --compression', () => {
  it('zstd with text RAM: both exit 0, the last snapshot shows the method and a ratio above 3', { timeout: 30_000 }, async () => {
    const dest = await startDest(['--once', '--compression-allow', 'zlib,zstd']);
    try {
      const src = await run(['migrate', '--to', dest.address, '--channels', '2', '--ram-size', '16MiB', '--fill', 'text', '--compression', 'zstd', '--compression-level', '3', '--events', 'ndjson', ...SHORT], 20_000);
      assert.equal(src.exit.code, 0, src.cli.describe());
      assert.equal((await dest.cli.exit(5_000)).code, 0, dest.cli.describe());
      const snap = (last(src.cli.events, 'progress') as unknown as { snapshot: { compression: string; pageBytes: number; channels: Array<{ pages: number; payloadBytes: number }> } }).snapshot;
      assert.equal(snap.compression, 'zstd');
      for (const c of snap.channels) assert.ok((c.pages * 4096) / c.payloadBytes > 3, `ratio ${(c.pages * 4096) / c.payloadBytes}`);
    } finally {
      dest.cli.kill();
    }
  });

  it('a destination that allows only none refuses zlib: exit 1 with MIGRATION_COMPRESSION_REFUSED; the dest keeps serving', { timeout: 30_000 }, async () => {
    const dest = await startDest(['--compression-allow', 'none']);
    try {
      const src = await run(['migrate', '--to', dest.address, '--channels', '2', '--ram-size', '4MiB', '--compression', 'zlib', '--events', 'ndjson', ...SHORT], 20_000);
      assert.equal(src.exit.code, 1, src.cli.describe());
      const failed = last(src.cli.events, 'failed');
      assert.equal(failed?.code, 'MIGRATION_COMPRESSION_REFUSED', src.cli.describe());
      assert.equal(failed?.received, 'zlib');
      const ok = await run(['migrate', '--to', dest.address, '--channels', '2', '--ram-size', '4MiB', '--events', 'ndjson', ...SHORT], 20_000);
      assert.equal(ok.exit.code, 0, ok.cli.describe());
    } finally {
      dest.cli.kill();
    }
  });

  it('bad values are usage errors (exit 2) naming the flag', { timeout: 15_000 }, async () => {
    const a = await run(['migrate', '--to', '127.0.0.1:1', '--compression', 'lz4'], 10_000);
    assert.equal(a.exit.code, 2);
    assert.match(a.cli.stderr, /--compression must be one of none, zlib, zstd, got "lz4"/);
    const b = await run(['dest', '--listen', '127.0.0.1:0', '--compression-allow', 'zlib,brotli'], 10_000);
    assert.equal(b.exit.code, 2);
    assert.match(b.cli.stderr, /--compression-allow must be one of none, zlib, zstd, got "brotli"/);
  });
});
