/**
 * Faults injected by the source: each fails the migration with its own code naming the
 * channel, leaves the source guest running and unchanged, and the next migration works.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ErrorCode } from '../errors';
import { parseFault } from './faults';
import { fullDigest, makeGuest, migrate, sleep, startDest, type TestDest } from './test-support';

describe('injected channel faults (4 channels)', () => {
  let td: TestDest;
  before(async () => {
    td = await startDest({ handshakeTimeoutMs: 400, setupTimeoutMs: 800 });
  });
  after(async () => {
    await td.close();
  });

  const cases: Array<{ inject: string; code: ErrorCode; channel: number | null }> = [
    { inject: 'ch2:uuid', code: 'MIGRATION_CHANNEL_UUID_MISMATCH', channel: 2 },
    { inject: 'ch3:version', code: 'MIGRATION_CHANNEL_BAD_VERSION', channel: 3 },
    { inject: 'ch0:id-4', code: 'MIGRATION_CHANNEL_ID_OUT_OF_RANGE', channel: 4 },
    { inject: 'ch1:id-big', code: 'MIGRATION_CHANNEL_ID_OUT_OF_RANGE', channel: 200 },
    { inject: 'ch1:truncate:40', code: 'MIGRATION_CHANNEL_SHORT_HANDSHAKE', channel: 1 },
    // The destination cannot tell whose these bytes are and fails no migration for them,
    // but it reports the refused connection; the source recognises its own socket.
    { inject: 'ch2:magic', code: 'MIGRATION_CHANNEL_BAD_MAGIC', channel: 2 },
    { inject: 'ch0:truncate', code: 'MIGRATION_CHANNEL_SHORT_HANDSHAKE', channel: 0 },
    { inject: 'ch1:stall', code: 'MIGRATION_CHANNEL_HANDSHAKE_TIMEOUT', channel: 1 },
  ];

  for (const c of cases) {
    it(`${c.inject} → ${c.code}${c.channel !== null ? ` on channel ${c.channel}` : ''}; guest unharmed; retry works`, async () => {
      const guest = await makeGuest({ ramSize: 4 << 20 });
      const digest = await fullDigest(guest.blocks);
      const t0 = Date.now();
      const run = await migrate(guest, td.port, { channels: 4, setupTimeoutMs: 800 }, [parseFault(c.inject, 4)], td);
      assert.equal(run.result.state, 'failed');
      assert.equal(run.result.error?.code, c.code, run.result.error?.message);
      if (c.channel !== null) assert.equal(run.result.error?.channel, c.channel);
      assert.ok(Date.now() - t0 < 3000, 'detected within a bounded time');
      assert.equal(run.events.at(-1)?.type, 'failed', 'the last event of a migration is its outcome');
      // The destination ends too, and discards what it had.
      if (run.dest) assert.notEqual(run.dest.state, 'completed');
      assert.equal(guest.state, 'running');
      assert.equal(await fullDigest(guest.blocks), digest, 'an idle guest is unchanged by the failed attempt');
      const retry = await migrate(guest, td.port, { channels: 4 }, [], td);
      assert.equal(retry.result.state, 'completed', retry.result.error?.message);
      await retry.dest?.guest?.stop();
    });
  }

  it('dup: two connections claim one id; the migration fails naming it', async () => {
    const guest = await makeGuest({ ramSize: 4 << 20 });
    const run = await migrate(guest, td.port, { channels: 4 }, [parseFault('ch1:dup', 4)], td);
    assert.equal(run.result.state, 'failed');
    assert.equal(run.result.error?.code, 'MIGRATION_CHANNEL_ID_DUPLICATE');
    // Whichever of the two arrived second is refused: both claimed channel 2.
    assert.equal(run.result.error?.channel, 2);
    assert.equal(guest.state, 'running');
    await guest.stop();
  });

  it('nothing listening: MIGRATION_CONNECT_FAILED naming the address', async () => {
    const guest = await makeGuest({ ramSize: 1 << 20 });
    const closed = await startDest();
    const port = closed.port;
    await closed.close();
    const run = await migrate(guest, port, { channels: 2 });
    assert.equal(run.result.state, 'failed');
    assert.equal(run.result.error?.code, 'MIGRATION_CONNECT_FAILED');
    assert.match(run.result.error!.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
    assert.equal(guest.state, 'running');
    await guest.stop();
  });
});

describe('cancel', () => {
  let td: TestDest;
  before(async () => {
    td = await startDest({ setupTimeoutMs: 2000 });
  });
  after(async () => {
    await td.close();
  });

  it('a 16-channel migration cancelled mid-transfer ends cancelled; the same source then completes', async () => {
    const { MigrationConfigSchema } = await import('../contracts');
    const { SourceMigration } = await import('./source');
    const guest = await makeGuest({ ramSize: 64 << 20 });
    const digest = await fullDigest(guest.blocks);
    // Capped so that the transfer is surely under way when cancel comes.
    const config = MigrationConfigSchema.parse({ destination: `127.0.0.1:${td.port}`, channels: 16, maxBandwidth: 32 << 20 });
    const m = new SourceMigration(guest, { config, tickMs: 50 }).start();
    const destDone = td.next();
    while (m.state !== 'active') await sleep(10);
    await sleep(200);
    const r = await m.cancel();
    assert.equal(r.state, 'cancelled');
    assert.equal(r.error?.code, 'MIGRATION_CANCELLED');
    const d = await destDone;
    assert.equal(d.state, 'cancelled', 'the destination learns it was a cancel');
    assert.equal(guest.state, 'running');
    assert.equal(await fullDigest(guest.blocks), digest);
    // cancelling again, or after the end, changes nothing
    const again = await m.cancel();
    assert.equal(again.state, 'cancelled');
    // As in QEMU's own test: the same source then migrates to a fresh destination.
    const fresh = await startDest();
    try {
      const retry = await migrate(guest, fresh.port, { channels: 16 }, [], fresh);
      assert.equal(retry.result.state, 'completed', retry.result.error?.message);
      assert.equal(await fullDigest(retry.dest!.guest!.blocks), digest);
    } finally {
      await fresh.close();
    }
  });

  it('cancel during setup and after completion', async () => {
    const { MigrationConfigSchema } = await import('../contracts');
    const { SourceMigration } = await import('./source');
    const guest = await makeGuest({ ramSize: 1 << 20 });
    const config = MigrationConfigSchema.parse({ destination: `127.0.0.1:${td.port}`, channels: 2 });
    const m = new SourceMigration(guest, { config }).start();
    const r = await m.cancel();
    assert.equal(r.state, 'cancelled');
    assert.equal(guest.state, 'running');
    await sleep(100);
    const arrived = td.next();
    const m2 = new SourceMigration(guest, { config }).start();
    assert.equal((await m2.done).state, 'completed');
    const after = await m2.cancel();
    assert.equal(after.state, 'completed', 'cancel after completion changes nothing');
    assert.equal(after.error, null);
    await (await arrived).guest?.stop();
  });
});

describe('injected stream faults (4 channels)', () => {
  let td: TestDest;
  before(async () => {
    td = await startDest({ noProgressTimeoutMs: 3000 });
  });
  after(async () => {
    await td.close();
  });

  const cases: Array<{ inject: string; codes: ErrorCode[]; channel: number }> = [
    { inject: 'ch1:bad-header:normal_pages', codes: ['MIGRATION_PACKET_BAD_HEADER'], channel: 1 },
    { inject: 'ch2:bad-header:offset', codes: ['MIGRATION_PACKET_OFFSET_OUT_OF_RANGE'], channel: 2 },
    { inject: 'ch3:bad-header:ramblock', codes: ['MIGRATION_PACKET_UNKNOWN_RAMBLOCK'], channel: 3 },
    { inject: 'ch0:bad-header:short-payload', codes: ['MIGRATION_PACKET_SHORT_PAYLOAD'], channel: 0 },
    // cut inside a packet's payload, or exactly at a packet's end
    { inject: 'ch2:drop:100000', codes: ['MIGRATION_PACKET_SHORT_PAYLOAD'], channel: 2 },
    { inject: 'ch1:drop:524288', codes: ['MIGRATION_CHANNEL_CLOSED', 'MIGRATION_PACKET_SHORT_PAYLOAD'], channel: 1 },
  ];

  for (const c of cases) {
    it(`${c.inject} → ${c.codes.join(' or ')} on channel ${c.channel}; guest unharmed; retry works`, async () => {
      const guest = await makeGuest({ ramSize: 8 << 20 });
      const digest = await fullDigest(guest.blocks);
      const run = await migrate(guest, td.port, { channels: 4 }, [parseFault(c.inject, 4)], td);
      assert.equal(run.result.state, 'failed');
      assert.ok(c.codes.includes(run.result.error!.code), `${run.result.error?.code}: ${run.result.error?.message}`);
      assert.equal(run.result.error?.channel, c.channel);
      assert.equal(run.dest?.state, 'failed', 'the destination fails it and discards the RAM');
      assert.equal(run.dest?.error?.code, run.result.error?.code, 'both sides name the same first error');
      assert.equal(guest.state, 'running');
      assert.equal(await fullDigest(guest.blocks), digest);
      const retry = await migrate(guest, td.port, { channels: 4 }, [], td);
      assert.equal(retry.result.state, 'completed', retry.result.error?.message);
      await retry.dest?.guest?.stop();
    });
  }

  it('ch3:slow holds up the sync rounds: the migration completes, channel 3 carried the least', async () => {
    const guest = await makeGuest({ ramSize: 16 << 20 });
    const run = await migrate(guest, td.port, { channels: 4 }, [parseFault('ch3:slow:2097152', 4)], td);
    assert.equal(run.result.state, 'completed', run.result.error?.message);
    const bytes = run.result.snapshot.channels.map((c) => c.bytes);
    assert.equal(Math.min(...bytes), bytes[3], `bytes per channel ${bytes}`);
    assert.ok(bytes[3] < bytes[0] / 2, `bytes per channel ${bytes}`);
    await run.dest?.guest?.stop();
  });
});
