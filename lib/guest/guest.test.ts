import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { decodeDeviceState } from './device';
import { fullDigest } from './digest';
import { Guest, type GuestOptions } from './guest';
import type { RamBlock } from './ram';

const MiB = 1 << 20;
const PAGE = 4096;
const CONFIG_INVALID = { code: 'MIGRATION_CONFIG_INVALID' };
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

// Every guest a test makes is stopped at the end, whatever happened.
const guests: Guest[] = [];
after(() => Promise.all(guests.map((g) => g.stop())));
async function make(opts: GuestOptions): Promise<Guest> {
  const g = await Guest.create(opts);
  guests.push(g);
  return g;
}

function snapshot(g: Guest): Uint8Array[] {
  return g.blocks.map((b) => b.bytes.slice());
}

/** Pages whose bytes differ from the snapshot, as [block, page]. */
function changedPages(g: Guest, snap: Uint8Array[]): [RamBlock, number][] {
  const out: [RamBlock, number][] = [];
  g.blocks.forEach((b, i) => {
    const now = Buffer.from(b.sab);
    const then = Buffer.from(snap[i].buffer);
    for (let p = 0; p < b.pages; p++) {
      if (now.compare(then, p * PAGE, (p + 1) * PAGE, p * PAGE, (p + 1) * PAGE) !== 0) out.push([b, p]);
    }
  });
  return out;
}

/** Polls cond every 10 ms; fails after 3 s. */
async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 3000;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(what);
    await sleep(10);
  }
}

function clearDirty(g: Guest): void {
  for (const b of g.blocks) b.dirty.clear();
}

function dirtyPages(b: RamBlock): number[] {
  const out: number[] = [];
  for (let p = 0; p < b.pages; p++) if (b.dirty.isSet(p)) out.push(p);
  return out;
}

describe('Guest.create', () => {
  it('fills RAM with random bytes that differ between guests', async () => {
    const a = await make({ ramSize: 4 * MiB });
    const b = await make({ ramSize: 4 * MiB });
    assert.equal(a.blocks[0].name, 'pc.ram');
    assert.equal(a.pageCount, 1024);
    let zeroPages = 0;
    for (let p = 0; p < a.blocks[0].pages; p++) if (a.blocks[0].isZeroPage(p)) zeroPages++;
    assert.equal(zeroPages, 0);
    assert.equal(Buffer.compare(Buffer.from(a.blocks[0].sab), Buffer.from(b.blocks[0].sab)) !== 0, true);
    assert.notEqual(await fullDigest(a.blocks), await fullDigest(b.blocks));
  });

  it("leaves RAM zero with fill: 'zero', and lays blocks out one after the other", async () => {
    const g = await make({ fill: 'zero', blocks: [{ name: 'pc.ram', size: 2 * MiB }, { name: 'vga.vram', size: 64 * 1024 }] });
    assert.equal(g.ramSize, 2 * MiB + 64 * 1024);
    assert.equal(g.block('vga.vram')?.base, 2 * MiB);
    assert.equal(g.block('nope'), undefined);
    for (const b of g.blocks) for (let p = 0; p < b.pages; p++) assert.equal(b.isZeroPage(p), true);
    g.blocks[1].bytes[4096 * 3 + 4095] = 1;
    assert.equal(g.blocks[1].isZeroPage(3), false);
    assert.equal(g.blocks[1].isZeroPage(2), true);
  });

  it('gives a random v4 uuid when none is given, and keeps a given one', async () => {
    const a = await make({ ramSize: 64 * 1024 });
    const b = await make({ ramSize: 64 * 1024 });
    assert.match(a.uuid, UUID_V4);
    assert.notEqual(a.uuid, b.uuid);
    const given = '7c9e6679-7425-40de-944b-e07fc1f90ae7';
    assert.equal((await make({ ramSize: 64 * 1024, uuid: given })).uuid, given);
  });

  it('refuses an all-zero uuid, a malformed one, and bad RAM sizes', async () => {
    const cases: GuestOptions[] = [
      { ramSize: 4096, uuid: '00000000-0000-0000-0000-000000000000' },
      { ramSize: 4096, uuid: 'not-a-uuid' },
      { ramSize: 0 },
      { ramSize: 4097 },
      { ramSize: -4096 },
      { blocks: [] },
      { blocks: [{ name: 'a', size: 4096 }, { name: 'a', size: 4096 }] },
      { blocks: [{ name: '', size: 4096 }] },
      { blocks: [{ name: 'a', size: 100 }] },
      { blocks: [{ name: 'a', size: 8192 }], ramSize: 4096 },
      { ramSize: 4096, workload: { kind: 'hotset', size: 8192, rate: 0 } },
    ];
    for (const opts of cases) await assert.rejects(Guest.create(opts), CONFIG_INVALID, JSON.stringify(opts));
    assert.throws(() => Guest.incoming({ uuid: '00000000-0000-0000-0000-000000000000', blocks: [{ name: 'a', size: 4096 }] }), CONFIG_INVALID);
  });
});

describe('Guest workload', () => {
  it('random:R dirties pages at roughly R and marks every page it changed', async () => {
    const rate = 8 * MiB; // 2048 pages/s
    const g = await make({ ramSize: 16 * MiB, workload: { kind: 'random', rate } });
    clearDirty(g);
    const snap = snapshot(g);
    await g.start();
    assert.equal(g.state, 'running');
    const t0 = performance.now();
    await sleep(500);
    await g.pause();
    const seconds = (performance.now() - t0) / 1000;
    const { bytesDirtied } = g.stats();
    const ratio = bytesDirtied / (rate * seconds);
    assert.ok(ratio > 0.3 && ratio < 3, `dirtied ${bytesDirtied} bytes in ${seconds.toFixed(3)} s: ${ratio.toFixed(2)}x the rate`);

    const changed = changedPages(g, snap);
    assert.ok(changed.length > 100, `only ${changed.length} pages changed`);
    const unmarked = changed.filter(([b, p]) => !b.dirty.isSet(p));
    assert.deepEqual(unmarked.map(([b, p]) => `${b.name}:${p}`), []);
    assert.equal(g.stats().dirtyPages, dirtyPages(g.blocks[0]).length);
    assert.ok(g.stats().dirtyPages >= changed.length);
  });

  it('pause() stops every write; resume() carries on', async () => {
    const g = await make({ ramSize: 8 * MiB, workload: { kind: 'random', rate: 0 } });
    await g.start();
    await sleep(50);
    const ds = await g.pause();
    assert.equal(g.state, 'paused');
    assert.deepEqual(g.deviceState(), ds);
    const snap = snapshot(g);
    const dirtied = g.stats().bytesDirtied;
    assert.ok(dirtied > 0);
    await sleep(200);
    assert.deepEqual(changedPages(g, snap).length, 0, 'RAM changed while paused');
    assert.equal(g.stats().bytesDirtied, dirtied);

    await g.resume();
    assert.equal(g.state, 'running');
    await sleep(50);
    await g.pause();
    assert.ok(g.stats().bytesDirtied > dirtied, 'no progress after resume');
    assert.ok(changedPages(g, snap).length > 0);
  });

  it("an idle guest's RAM never changes, and it still pauses, resumes and has a device state", async () => {
    const g = await make({ ramSize: 4 * MiB });
    const before = await fullDigest(g.blocks);
    await g.start();
    await sleep(100);
    assert.equal(g.stats().workload, 'idle');
    const ds = await g.pause();
    assert.deepEqual(decodeDeviceState(ds).workload, { kind: 'idle' });
    await g.resume();
    assert.equal(g.deviceState().byteLength, 64);
    await sleep(100);
    assert.equal(await fullDigest(g.blocks), before);
    assert.equal(g.stats().bytesDirtied, 0);
    assert.equal(g.stats().dirtyPages, 0);
  });

  it('hotset dirties only the first SIZE bytes of RAM, across blocks in order', async () => {
    const g = await make({
      blocks: [{ name: 'low', size: 512 * 1024 }, { name: 'high', size: 8 * MiB }],
      workload: { kind: 'hotset', size: MiB, rate: 0 },
    });
    clearDirty(g);
    await g.start();
    await sleep(100);
    await g.pause();
    const [low, high] = g.blocks;
    assert.equal(dirtyPages(low).length, 128, 'every page of the first block is hot');
    const highDirty = dirtyPages(high);
    assert.ok(highDirty.length > 64);
    assert.ok(highDirty.every((p) => p < 128), `pages past the hot set: ${highDirty.filter((p) => p >= 128).slice(0, 5)}`);
  });

  it('a workload set while running takes effect at once', async () => {
    const g = await make({ ramSize: 4 * MiB });
    await g.start();
    g.workload = { kind: 'sweep', rate: 0 };
    await until(() => g.stats().bytesDirtied > 0, 'the new workload never wrote');
    assert.equal(g.stats().workload, 'sweep');
    g.workload = { kind: 'idle' };
    await sleep(50);
    const snap = snapshot(g);
    const dirtied = g.stats().bytesDirtied;
    await sleep(100);
    assert.equal(changedPages(g, snap).length, 0);
    assert.equal(g.stats().bytesDirtied, dirtied);
    assert.throws(() => {
      g.workload = { kind: 'hotset', size: 8 * MiB, rate: 0 };
    }, CONFIG_INVALID);
  });
});

describe('Guest throttle', () => {
  it('keeps a busy workload from running a share of its time; 0 is full speed again', async () => {
    const g = await make({ ramSize: 4 * MiB, fill: 'zero', workload: { kind: 'random', rate: 0 } });
    await g.start();
    const rate = async () => {
      const a = g.stats().bytesDirtied;
      const t0 = performance.now();
      await sleep(200);
      return (g.stats().bytesDirtied - a) / (performance.now() - t0);
    };
    const full = await rate();
    g.throttle = 0.9;
    assert.equal(g.throttle, 0.9);
    await sleep(20);
    const throttled = await rate();
    // 10% of the time; this generous bound leaves room for a busy machine.
    assert.ok(throttled < full * 0.5, `full ${full}, throttled ${throttled} bytes/ms`);
    g.throttle = 0;
    await sleep(20);
    const again = await rate();
    assert.ok(again > throttled * 2, `throttled ${throttled}, lifted ${again} bytes/ms`);
    // Pausing a throttled (sleeping) worker is still immediate.
    g.throttle = 0.99;
    await g.pause();
    await g.stop();
  });

  it('refuses a throttle outside 0..MAX_THROTTLE', async () => {
    const g = await make({ ramSize: 1 * MiB });
    for (const bad of [-0.1, 1, 0.995, Number.NaN]) assert.throws(() => (g.throttle = bad), CONFIG_INVALID);
    assert.equal(g.throttle, 0);
  });
});

describe('device state', () => {
  it('carries the workload to an incoming guest, which continues where the source paused', async () => {
    const rate = 2 * MiB; // 512 pages/s: the 1024-page guest is not swept all round in the test
    const src = await make({ ramSize: 4 * MiB, workload: { kind: 'sweep', rate }, seed: 42 });
    await src.start();
    await sleep(150);
    const ds = await src.pause();
    const s = decodeDeviceState(ds);
    assert.deepEqual(s.workload, { kind: 'sweep', rate });
    assert.ok(s.cursor > 0);
    assert.equal(s.bytesDirtied, s.cursor * PAGE);

    const dst = Guest.incoming({ uuid: src.uuid, name: src.name, blocks: src.blocks.map((b) => ({ name: b.name, size: b.size })) });
    guests.push(dst);
    assert.equal(dst.state, 'created');
    dst.blocks[0].bytes.set(src.blocks[0].bytes);
    assert.equal(await fullDigest(dst.blocks), await fullDigest(src.blocks));
    const snap = snapshot(dst);

    await dst.resumeFrom(ds);
    assert.equal(dst.state, 'running');
    assert.deepEqual(dst.workload, { kind: 'sweep', rate });
    await sleep(150);
    const after = decodeDeviceState(await dst.pause());
    const touched = (after.bytesDirtied - s.bytesDirtied) / PAGE;
    assert.ok(touched > 0, 'bytesDirtied carries on');
    assert.equal(after.cursor, s.cursor + touched, 'the sweep cursor carries on');
    const changed = changedPages(dst, snap).map(([, p]) => p);
    assert.deepEqual(changed, Array.from({ length: touched }, (_, i) => s.cursor + i), 'pages swept are the next ones');
    assert.equal(dirtyPages(dst.blocks[0]).length, touched);
    assert.equal(dst.stats().bytesDirtied, after.bytesDirtied);
    // The source, not running, is unchanged by all of it.
    assert.equal(src.state, 'paused');
  });

  it('refuses garbage and a device state of another RAM size, leaving the guest as it was', async () => {
    const src = await make({ ramSize: 8 * MiB, fill: 'zero' });
    const ds = await src.pause();
    const dst = Guest.incoming({ uuid: src.uuid, blocks: [{ name: 'pc.ram', size: 4 * MiB }] });
    guests.push(dst);
    await assert.rejects(dst.resumeFrom(ds), /device state is for a guest of 8388608 bytes of RAM, this guest has 4194304/);
    await assert.rejects(dst.resumeFrom(new Uint8Array(64).fill(0xa5)), CONFIG_INVALID);
    await assert.rejects(dst.resumeFrom(new Uint8Array(3)), CONFIG_INVALID);
    assert.equal(dst.state, 'created');
    const same = Guest.incoming({ uuid: src.uuid, blocks: [{ name: 'pc.ram', size: 8 * MiB }] });
    guests.push(same);
    await same.resumeFrom(ds);
    assert.equal(same.state, 'running');
  });
});

describe('Guest.stop', () => {
  it('is idempotent and final', async () => {
    const g = await make({ ramSize: 4 * MiB, workload: { kind: 'random', rate: 0 } });
    await g.start();
    await g.stop();
    await g.stop();
    assert.equal(g.state, 'stopped');
    const snap = snapshot(g);
    await sleep(50);
    assert.equal(changedPages(g, snap).length, 0);
    await assert.rejects(g.start(), { code: 'MIGRATION_INTERNAL' });
    await assert.rejects(g.pause(), { code: 'MIGRATION_INTERNAL' });
  });

  it('releases the worker: a process that ran a busy guest exits by itself after stop()', () => {
    const guestModule = new URL('./guest.ts', import.meta.url).href;
    const script = `
      const { Guest } = await import(${JSON.stringify(guestModule)});
      const g = await Guest.create({ ramSize: 4 << 20, workload: { kind: 'random', rate: 0 } });
      await g.start();
      await new Promise((r) => setTimeout(r, 50));
      await g.pause();
      await g.resume();
      await g.stop();
      console.log('stopped', g.stats().bytesDirtied > 0);
    `;
    const started = Date.now();
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      encoding: 'utf8',
      timeout: 15_000,
    });
    assert.equal(child.error, undefined, `child did not exit by itself (${Date.now() - started} ms)`);
    assert.equal(child.status, 0, child.stderr);
    assert.equal(child.stdout.trim(), 'stopped true');
  });
});
