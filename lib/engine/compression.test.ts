/**
 * Compressed migrations end to end over loopback TCP: zlib and zstd move RAM intact, the
 * destination refuses methods it does not allow, and both sides count the same bytes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MiB, fullDigest, makeGuest, migrate, startDest, type TestDest } from './test-support';

describe('compressed migrations', () => {
  let td: TestDest;
  before(async () => {
    td = await startDest();
  });
  after(async () => {
    await td.close();
  });

  for (const compression of ['zlib', 'zstd'] as const) {
    it(`${compression}: mixed RAM over 4 channels arrives byte-identical, smaller on the wire`, async () => {
      const guest = await makeGuest({ ramSize: 16 * MiB, fill: 'mixed' });
      const before = await fullDigest(guest.blocks);
      const run = await migrate(guest, td.port, { channels: 4, compression }, [], td);
      assert.equal(run.result.state, 'completed', run.result.error?.message);
      const arrived = run.dest!.guest!;
      assert.equal(await fullDigest(arrived.blocks), before);
      assert.ok(Buffer.from(arrived.blocks[0].bytes).equals(Buffer.from(guest.blocks[0].bytes)), 'byte-identical RAM');
      const src = run.result.snapshot;
      const dst = run.dest!.snapshot;
      assert.equal(src.compression, compression);
      assert.equal(dst.compression, compression);
      for (const c of src.channels) {
        const d = dst.channels.find((x) => x.id === c.id)!;
        assert.ok(c.pages > 0, `channel ${c.id} carried pages`);
        assert.equal(d.payloadBytes, c.payloadBytes, `channel ${c.id}: the destination read what the source wrote`);
        assert.equal(d.bytes, c.bytes);
        const ratio = (c.pages * 4096) / c.payloadBytes!;
        // Half the pages are random: at best a little under 2:1 overall.
        assert.ok(ratio > 1.3 && ratio < 2.1, `channel ${c.id} ratio ${ratio.toFixed(2)}`);
      }
      // Wire bytes are the compressed ones.
      assert.ok(src.transferred < src.pageBytes * 0.8, `transferred ${src.transferred} of ${src.pageBytes} page bytes`);
      await arrived.stop();
    });
  }

  it('a guest being written to during a zstd migration still verifies', async () => {
    const guest = await makeGuest({ ramSize: 16 * MiB, fill: 'text', workload: { kind: 'random', rate: 2000, workingSet: 4 * MiB } });
    const run = await migrate(guest, td.port, { channels: 2, compression: 'zstd', downtimeLimitMs: 50 }, [], td);
    assert.equal(run.result.state, 'completed', run.result.error?.message);
    assert.equal(run.result.snapshot.verified, true);
    assert.ok(run.result.snapshot.round >= 2, 'more than one round');
    await run.dest!.guest!.stop();
  });

  it('a destination that does not allow the method refuses it by name; the guest runs on; none then works', async () => {
    const strict = await startDest({ compressionAllow: ['none', 'zlib'] });
    try {
      const guest = await makeGuest({ ramSize: 4 * MiB });
      const run = await migrate(guest, strict.port, { channels: 2, compression: 'zstd' }, [], strict);
      assert.equal(run.result.state, 'failed');
      assert.equal(run.result.error?.code, 'MIGRATION_COMPRESSION_REFUSED');
      assert.equal(run.result.error?.expected, 'none, zlib');
      assert.equal(run.result.error?.received, 'zstd');
      assert.match(run.result.error!.message, /compresses with zstd, this destination allows none, zlib/);
      assert.equal(guest.state, 'running');
      const retry = await migrate(guest, strict.port, { channels: 2, compression: 'zlib' }, [], strict);
      assert.equal(retry.result.state, 'completed', retry.result.error?.message);
      await retry.dest!.guest!.stop();
    } finally {
      await strict.close();
    }
  });

  it('zstd compresses in worker threads, and they are gone when the migration ends, completed or refused', async () => {
    const ports = () => process.getActiveResourcesInfo().filter((r) => r === 'MessagePort').length;
    const before = ports();
    const guest = await makeGuest({ ramSize: 4 * MiB, fill: 'text' });
    let during = 0;
    const run = await migrate(guest, td.port, { channels: 2, compression: 'zstd' }, [], td, (e) => {
      if (e.type === 'state' && e.state === 'active') during = ports();
    });
    assert.equal(run.result.state, 'completed', run.result.error?.message);
    assert.ok(during > before, `workers while it ran (${during} ports, ${before} before)`);
    await run.dest!.guest!.stop();
    const strict = await startDest({ compressionAllow: ['none'] });
    try {
      const g2 = await makeGuest({ ramSize: 4 * MiB });
      const refused = await migrate(g2, strict.port, { channels: 2, compression: 'zstd' }, [], strict);
      assert.equal(refused.result.error?.code, 'MIGRATION_COMPRESSION_REFUSED');
      await g2.stop();
    } finally {
      await strict.close();
    }
    const deadline = Date.now() + 2000;
    while (ports() > before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(ports(), before, 'every worker released');
  });

  it('a level outside the method’s range is a config error before anything connects', async () => {
    const guest = await makeGuest({ ramSize: 4 * MiB });
    const run = await migrate(guest, td.port, { channels: 1, compression: 'zlib', compressionLevel: 12 });
    assert.equal(run.result.state, 'failed');
    assert.equal(run.result.error?.code, 'MIGRATION_CONFIG_INVALID');
    assert.equal(run.result.error?.field, 'compressionLevel');
    assert.equal(guest.state, 'running');
    await guest.stop();
  });
});
