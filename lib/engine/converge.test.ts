/**
 * Auto-converge: the throttle law on figures, and the engine over real loopback TCP with a
 * guest that dirties its working set faster than the capped link can ever carry it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MigrationConfigSchema, MigrationEventSchema, type MigrationEvent } from '../contracts';
import { MAX_THROTTLE, formatDigest, parseWorkload } from '../guest';
import { GROWTH, nextThrottle } from './converge';
import { SourceMigration } from './source';
import { MiB, fullDigest, makeGuest, migrate, startDest, waitFor, type TestDest } from './test-support';

describe('nextThrottle', () => {
  const base = { throttle: 0, bandwidth: 128 * MiB, downtimeLimitMs: 300 };

  it('throttles harder the farther the migration is from converging', () => {
    const near = nextThrottle({ ...base, remaining: 60 * MiB, dirtyRate: 128 * MiB });
    const far = nextThrottle({ ...base, remaining: 512 * MiB, dirtyRate: 128 * MiB });
    const faster = nextThrottle({ ...base, remaining: 512 * MiB, dirtyRate: 1024 * MiB });
    assert.ok(near > 0 && near < far && far < faster, `near ${near}, far ${far}, faster ${faster}`);
  });

  it('aims the next round at a dirty rate that shrinks the remaining set geometrically', () => {
    // 512 MiB dirty, 128 MiB/s, 300 ms: budget 38.4 MiB; to reach half of it in 2 rounds each
    // round must shrink the set by sqrt(19.2/512) = 0.194: a dirty rate of 24.8 MiB/s.
    const t = nextThrottle({ ...base, remaining: 512 * MiB, dirtyRate: 128 * MiB });
    assert.ok(Math.abs((1 - t) * 128 - 24.8) < 0.1, `run share ${1 - t}`);
    // The dirty rate already measured under a throttle scales with the run share left.
    const again = nextThrottle({ ...base, throttle: t, remaining: 512 * MiB, dirtyRate: 128 * MiB });
    assert.ok(Math.abs((1 - again) - (1 - t) * (1 - t)) < 1e-9, `run share ${1 - again}`);
  });

  it('stops at QEMU’s maximum, and eases by at most GROWTH per round', () => {
    assert.equal(nextThrottle({ ...base, remaining: 512 * MiB, dirtyRate: 100_000 * MiB }), MAX_THROTTLE);
    const eased = nextThrottle({ ...base, throttle: 0.9, remaining: 40 * MiB, dirtyRate: 1 });
    assert.ok(Math.abs(eased - (1 - 0.1 * GROWTH)) < 1e-9, `eased to ${eased}`);
  });

  it('applies no throttle a slow guest does not need, nor one without a measured bandwidth', () => {
    assert.equal(nextThrottle({ ...base, remaining: 100 * MiB, dirtyRate: 1 * MiB }), 0);
    assert.equal(nextThrottle({ ...base, bandwidth: 0, remaining: 100 * MiB, dirtyRate: 500 * MiB }), 0);
  });
});

/**
 * A 32 MiB guest rewriting a 16 MiB working set as fast as it can, 256 MiB/s cap, 5 ms limit
 * (1.3 MiB): unthrottled, the worker (GB/s) dirties more than that within the few ms even
 * the shortest round lasts, so no round ends converged. At 99% it dirties 1% of that, well
 * under what the cap carries, so the remaining set shrinks geometrically.
 */
const BUSY = { ramSize: 32 * MiB, workload: parseWorkload('random:max:16MiB') };
const CFG = { channels: 4, maxBandwidth: 256 * MiB, downtimeLimitMs: 5 };

function rounds(events: MigrationEvent[]) {
  return events.flatMap((e) => (e.type === 'round' ? [e] : []));
}

describe('auto-converge end to end', () => {
  let td: TestDest;
  before(async () => {
    td = await startDest();
  });
  after(async () => {
    await td.close();
  });

  it('without it, a guest dirtying faster than the link never converges', async () => {
    const guest = await makeGuest(BUSY);
    const run = await migrate(guest, td.port, { ...CFG, roundLimit: 15 }, [], td);
    assert.equal(run.result.state, 'completed', run.result.error?.message);
    assert.equal(run.result.snapshot.switchoverReason, 'round-limit');
    const rs = rounds(run.events);
    assert.equal(rs.length, 15);
    for (const r of rs) assert.equal(r.throttlePct, null, 'no throttle without auto-converge');
    assert.equal(guest.throttle, 0);
    await run.dest!.guest!.stop();
  });

  it('with it, converges by downtime; the digest holds; the throttle is lifted when it completes', async () => {
    const guest = await makeGuest(BUSY);
    const run = await migrate(guest, td.port, { ...CFG, roundLimit: 1000, autoConverge: true }, [], td);
    assert.equal(run.result.state, 'completed', run.result.error?.message);
    assert.equal(run.result.snapshot.switchoverReason, 'downtime');
    const rs = rounds(run.events);
    assert.ok(rs.some((r) => (r.throttlePct ?? 0) > 0), `a throttle was applied: ${rs.map((r) => r.throttlePct).join(', ')}`);
    for (const e of run.events) MigrationEventSchema.parse(e);
    // Pages left out of rounds because the guest wrote them again were sent later: the
    // source's RAM, frozen since the pause, re-hashed from scratch is what it sent and the
    // destination verified.
    const completed = run.events.find((e) => e.type === 'completed');
    assert.ok(completed && completed.type === 'completed');
    assert.equal(formatDigest(await fullDigest(guest.blocks)), completed.digest);
    assert.equal(run.dest?.snapshot.digest, completed.digest);
    assert.equal(guest.throttle, 0, 'throttle lifted');
    assert.equal(run.result.snapshot.throttlePct, 0);
    await run.dest!.guest!.stop();
  });

  it('cancelled while throttling: the guest keeps running here at full speed', async () => {
    // All of RAM rewritten at once, over a link even the throttled guest outpaces: round 1
    // ends as soon as its pages are all dirty again, then the guest stays throttled and the
    // migration never switches over.
    const guest = await makeGuest({ ramSize: 8 * MiB, workload: parseWorkload('random:max') });
    const config = MigrationConfigSchema.parse({
      ...CFG,
      maxBandwidth: 4 * MiB,
      roundLimit: 1000,
      autoConverge: true,
      destination: `127.0.0.1:${td.port}`,
      setupTimeoutMs: 2000,
    });
    const m = new SourceMigration(guest, { config, tickMs: 50 });
    const events: MigrationEvent[] = [];
    m.events.on((e) => events.push(e));
    m.start();
    await waitFor(events, (e) => e.type === 'round' && (e.throttlePct ?? 0) > 0, 8000);
    assert.ok(guest.throttle > 0);
    const r = await m.cancel('test');
    assert.equal(r.state, 'cancelled');
    assert.equal(guest.throttle, 0, 'throttle lifted');
    assert.equal(guest.state, 'running');
    const before = guest.stats().bytesDirtied;
    await new Promise((res) => setTimeout(res, 50));
    assert.ok(guest.stats().bytesDirtied > before, 'the workload carries on');
    await guest.stop();
  });
});
