/**
 * Containment: a channel that stops moving is named within the no-progress timeout, cancel
 * works in every state, and nothing a migration started outlives it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MigrationConfigSchema } from '../contracts';
import { parseWorkload } from '../guest';
import { parseFault } from './faults';
import { SourceMigration } from './source';
import { fullDigest, makeGuest, migrate, sleep, startDest, type TestDest } from './test-support';

/** Sockets and timers alive in this process, by kind. */
function resources(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) out[r] = (out[r] ?? 0) + 1;
  return out;
}

describe('containment', () => {
  let td: TestDest;
  let baseline: Record<string, number>;
  before(async () => {
    td = await startDest({ noProgressTimeoutMs: 600 });
    await sleep(50);
    baseline = resources();
  });
  after(async () => {
    await td.close();
  });

  it('a channel that stops moving while others move: MIGRATION_CHANNEL_STALLED naming it, within the timeout', async () => {
    const guest = await makeGuest({ ramSize: 8 << 20 });
    const digest = await fullDigest(guest.blocks);
    const t0 = Date.now();
    const run = await migrate(guest, td.port, { channels: 4, noProgressTimeoutMs: 600 }, [parseFault('ch1:slow:1', 4)], td);
    assert.equal(run.result.state, 'failed');
    assert.equal(run.result.error?.code, 'MIGRATION_CHANNEL_STALLED', run.result.error?.message);
    assert.equal(run.result.error?.channel, 1);
    assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
    assert.notEqual(run.dest?.state, 'completed');
    assert.equal(guest.state, 'running');
    assert.equal(await fullDigest(guest.blocks), digest);
    await guest.stop();
  });

  it('cancel during switchover: cancelled on both sides, the guest resumes where it was', async () => {
    // A guest that dirties everything, a high downtime limit so switchover comes after round 1,
    // and one slow channel so the final pass takes a while (the bandwidth cap would not: like
    // QEMU's, it paces the live phase only).
    const guest = await makeGuest({ ramSize: 32 << 20, workload: parseWorkload('random:max') });
    const config = MigrationConfigSchema.parse({
      destination: `127.0.0.1:${td.port}`,
      channels: 4,
      downtimeLimitMs: 600_000,
    });
    const m = new SourceMigration(guest, { config, faults: [parseFault('ch0:slow:1048576', 4)], tickMs: 50 }).start();
    const destDone = td.next();
    while (m.state !== 'switchover' && m.state !== 'completed' && m.state !== 'failed') await sleep(5);
    assert.equal(m.state, 'switchover');
    await sleep(100);
    const r = await m.cancel('operator changed their mind');
    assert.equal(r.state, 'cancelled');
    assert.equal((await destDone).state, 'cancelled');
    assert.equal(guest.state, 'running', 'paused for switchover, resumed on cancel');
    const before = guest.stats().bytesDirtied;
    await sleep(100);
    assert.ok(guest.stats().bytesDirtied > before, 'the workload carries on');
    await guest.stop();
  });

  it('cancel mid-sync (a straggler holds the round): cancelled, guest unchanged', async () => {
    const guest = await makeGuest({ ramSize: 8 << 20 });
    const digest = await fullDigest(guest.blocks);
    const config = MigrationConfigSchema.parse({ destination: `127.0.0.1:${td.port}`, channels: 4, noProgressTimeoutMs: 60_000 });
    const m = new SourceMigration(guest, { config, faults: [parseFault('ch2:slow:262144', 4)], tickMs: 50 }).start();
    const destDone = td.next();
    while (m.state !== 'active') await sleep(5);
    await sleep(300);
    const r = await m.cancel();
    assert.equal(r.state, 'cancelled');
    assert.equal((await destDone).state, 'cancelled');
    assert.equal(guest.state, 'running');
    assert.equal(await fullDigest(guest.blocks), digest);
    await guest.stop();
  });

  it('leaves no socket or timer behind, on either side', async () => {
    await sleep(300);
    const now = resources();
    for (const kind of ['TCPSocketWrap', 'Timeout']) {
      assert.ok((now[kind] ?? 0) <= (baseline[kind] ?? 0), `${kind}: ${baseline[kind] ?? 0} before, ${now[kind] ?? 0} after`);
    }
    assert.equal(td.dest.active.length, 0);
  });
});

describe('a peer that is not a multifd destination', () => {
  async function peer(onSocket: (s: import('node:net').Socket) => void) {
    const net = await import('node:net');
    const srv = net.createServer(onSocket);
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    return { port: (srv.address() as { port: number }).port, close: () => new Promise((r) => srv.close(r)) };
  }

  it('an HTTP server answering garbage: MIGRATION_MAIN_BAD_FRAME at once, guest running', async () => {
    const p = await peer((s) => {
      s.on('error', () => {});
      s.once('data', () => s.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n'));
    });
    try {
      const guest = await makeGuest({ ramSize: 1 << 20 });
      const t0 = Date.now();
      const run = await migrate(guest, p.port, { channels: 2 });
      assert.equal(run.result.state, 'failed');
      assert.equal(run.result.error?.code, 'MIGRATION_MAIN_BAD_FRAME', run.result.error?.message);
      assert.ok(Date.now() - t0 < 1500);
      assert.equal(guest.state, 'running');
      await guest.stop();
    } finally {
      await p.close();
    }
  });

  it('a server that accepts and says nothing: the setup timeout says the hello was never taken', async () => {
    const held: import('node:net').Socket[] = [];
    const p = await peer((s) => {
      s.on('error', () => {});
      held.push(s);
    });
    try {
      const guest = await makeGuest({ ramSize: 1 << 20 });
      const run = await migrate(guest, p.port, { channels: 2, setupTimeoutMs: 400 });
      assert.equal(run.result.error?.code, 'MIGRATION_CHANNEL_SETUP_TIMEOUT');
      assert.match(run.result.error!.message, /hello/);
      assert.equal(guest.state, 'running');
      await guest.stop();
    } finally {
      for (const s of held) s.destroy();
      await p.close();
    }
  });
});
