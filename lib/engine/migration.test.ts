/**
 * End-to-end migrations over real loopback TCP, source and destination in this process.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { MigrationEventSchema } from '../contracts';
import { parseWorkload } from '../guest';
import { MiB, fullDigest, makeGuest, migrate, startDest, type TestDest } from './test-support';

describe('migration end to end', () => {
  let td: TestDest;
  before(async () => {
    td = await startDest();
  });
  after(async () => {
    await td.close();
  });

  for (const channels of [1, 4, 16]) {
    it(`moves an idle guest over ${channels} channel(s), verified, RAM identical`, async () => {
      const guest = await makeGuest({ ramSize: 32 * MiB });
      const before = await fullDigest(guest.blocks);
      const run = await migrate(guest, td.port, { channels }, [], td);
      assert.equal(run.result.state, 'completed', run.result.error?.message);
      assert.equal(run.result.snapshot.verified, true);
      assert.equal(run.dest?.state, 'completed');
      const arrived = run.dest!.guest!;
      assert.equal(arrived.uuid, guest.uuid);
      assert.equal(await fullDigest(arrived.blocks), before, 'destination RAM re-hashed from scratch equals the source');
      assert.ok(Buffer.from(arrived.blocks[0].bytes).equals(Buffer.from(guest.blocks[0].bytes)), 'byte-identical RAM');
      // Every channel carried pages, and zero pages went as a list, never as data.
      const snap = run.result.snapshot;
      assert.equal(snap.channels.length, channels);
      for (const c of snap.channels) assert.ok(c.pages > 0, `channel ${c.id} carried pages`);
      assert.equal(guest.state, 'stopped', 'source stops its copy only after the verdict');
      // Every event, of both sides, is what lib/contracts says it is.
      for (const e of [...run.events, ...td.events]) MigrationEventSchema.parse(e);
      assert.deepEqual(
        run.events.filter((e) => e.type === 'state').map((e) => e.type === 'state' && e.state),
        ['setup', 'active', 'switchover', 'completed'],
      );
      assert.equal(arrived.state, 'running', 'the guest runs where it arrived');
      await arrived.stop();
    });
  }

  it('lists zero pages instead of sending them', async () => {
    const guest = await makeGuest({ ramSize: 8 * MiB, fill: 'zero' });
    const run = await migrate(guest, td.port, { channels: 2 }, [], td);
    assert.equal(run.result.state, 'completed', run.result.error?.message);
    const snap = run.result.snapshot;
    assert.equal(snap.pageBytes, 0);
    assert.equal(snap.channels.reduce((n, c) => n + c.zeroPages, 0), (8 * MiB) / 4096);
    // headers only: far less than the RAM on the wire
    assert.ok(snap.transferred < MiB, `transferred ${snap.transferred}`);
    await run.dest!.guest!.stop();
  });

  it('places zero pages: skipped where RAM is still fresh, written where this migration put data', async () => {
    const guest = await makeGuest({ ramSize: 8 * MiB });
    const [block] = guest.blocks;
    block.bytes.fill(0, 0, 64 * 4096); // pages 0..63 go as zero pages in round 1
    const run = await migrate(guest, td.port, { channels: 2 }, [], td, (e) => {
      // After round 1 placed pages 64..127 with data, they turn zero: the last pass lists them as zero.
      if (e.type === 'round' && e.round === 1) {
        block.bytes.fill(0, 64 * 4096, 128 * 4096);
        for (let p = 64; p < 128; p++) block.dirty.mark(p);
      }
    });
    assert.equal(run.result.state, 'completed', run.result.error?.message);
    const arrived = run.dest!.guest!.blocks[0];
    assert.ok(arrived.bytes.subarray(0, 128 * 4096).every((b) => b === 0), 'zero pages are zero over there');
    assert.ok(Buffer.from(arrived.bytes).equals(Buffer.from(block.bytes)), 'byte-identical RAM');
    assert.equal(await fullDigest(run.dest!.guest!.blocks), await fullDigest(guest.blocks));
    await run.dest!.guest!.stop();
  });

  it('migrates through a proxy that changes every address (as a NAT or relay does)', async () => {
    const pairs: net.Socket[] = [];
    const proxy = net.createServer((c) => {
      const u = net.connect(td.port, '127.0.0.1');
      pairs.push(c, u);
      c.pipe(u);
      u.pipe(c);
      c.on('error', () => u.destroy());
      u.on('error', () => c.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const guest = await makeGuest({ ramSize: 8 * MiB });
      const before = await fullDigest(guest.blocks);
      const run = await migrate(guest, (proxy.address() as net.AddressInfo).port, { channels: 4 }, [], td);
      assert.equal(run.result.state, 'completed', run.result.error?.message);
      assert.equal(await fullDigest(run.dest!.guest!.blocks), before);
      await run.dest!.guest!.stop();
    } finally {
      for (const s of pairs) s.destroy();
      await new Promise((r) => proxy.close(r));
    }
  });

  it('converges a 256 MiB guest dirtying 32 MiB/s, records why it switched over, digests match', async () => {
    const guest = await makeGuest({ ramSize: 256 * MiB, workload: parseWorkload('random:32') });
    const run = await migrate(guest, td.port, { channels: 4 }, [], td);
    assert.equal(run.result.state, 'completed', run.result.error?.message);
    const sw = run.events.find((e) => e.type === 'switchover');
    assert.ok(sw && sw.type === 'switchover');
    assert.ok(['downtime', 'round-limit'].includes(sw.reason));
    assert.equal(run.result.snapshot.switchoverReason, sw.reason);
    const rounds = run.events.filter((e) => e.type === 'round');
    assert.ok(rounds.length >= 1);
    const completed = run.events.find((e) => e.type === 'completed');
    assert.ok(completed && completed.type === 'completed');
    const arrived = run.dest!.guest!;
    // The workload carries on over there: pause it and compare the digest it arrived with.
    assert.equal(completed.digest, run.dest!.snapshot.digest);
    assert.equal(arrived.state, 'running');
    await arrived.stop();
  });

  it('completes with 255 channels', async () => {
    const guest = await makeGuest({ ramSize: 64 * MiB });
    const before = await fullDigest(guest.blocks);
    const run = await migrate(guest, td.port, { channels: 255 }, [], td);
    assert.equal(run.result.state, 'completed', run.result.error?.message);
    assert.equal(run.result.snapshot.channels.length, 255);
    assert.equal(await fullDigest(run.dest!.guest!.blocks), before);
    await run.dest!.guest!.stop();
  });

  it('honours a bandwidth cap', async () => {
    const guest = await makeGuest({ ramSize: 8 * MiB });
    const t0 = Date.now();
    const run = await migrate(guest, td.port, { channels: 2, maxBandwidth: 16 * MiB }, [], td);
    const ms = Date.now() - t0;
    assert.equal(run.result.state, 'completed', run.result.error?.message);
    // 8 MiB at 16 MiB/s takes at least ~0.4 s beyond the initial burst (1.6 MiB)
    assert.ok(ms >= 350, `took ${ms} ms`);
    await run.dest!.guest!.stop();
  });
});
