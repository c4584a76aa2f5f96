/**
 * The relay between two real QEMU 7.2 processes (paused guests, `-machine none`, 64 MiB of
 * file-backed RAM in /dev/shm with a pattern of index, random and zero pages, `-uuid` set),
 * multifd with 4 channels, over loopback: the destination's RAM equals the source's, the
 * relay's per-channel bytes add up to QEMU's multifd-bytes plus the 64-byte handshakes, and
 * `inspect` on what the relay recorded rebuilds the same RAM. Then the same migration with
 * a wrong UUID injected on channel 2: QEMU fails it, the destination's stderr says why, and
 * the relay names channel 2. Skipped, with the reason, when QEMU is not installed.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import type { MigrationEvent } from '../contracts';
import { inspectCapture } from './capture';
import { compareFiles, waitTerminal, type QueryMigrate } from './migrate';
import { makeTempDir, removePath } from './process';
import { QemuRelay, type RelaySessionSummary } from './relay';
import { PAIR_RAM, skipWithoutQemu as skip, startPair, type Pair } from './test-support';

const RAM = PAIR_RAM;
const CHANNELS = 4;
const TIMEOUT = 30_000;

async function startRelay(t: TestContext, pair: Pair, extra: Partial<ConstructorParameters<typeof QemuRelay>[0]> = {}) {
  const relay = new QemuRelay({ listenHost: '127.0.0.1', listenPort: 0, toHost: '127.0.0.1', toPort: pair.port!, tickMs: 50, ...extra });
  t.after(() => relay.close());
  const events: MigrationEvent[] = [];
  relay.onEvent((e) => events.push(e));
  const session = new Promise<RelaySessionSummary>((resolve) => relay.onSession(resolve));
  const addr = await relay.listen();
  return { relay, events, session, uri: `tcp:127.0.0.1:${addr.port}` };
}

describe('relay between two real QEMU 7.2 processes', { skip }, () => {
  it('forwards a 4-channel migration unchanged, counts every channel, and records what inspect rebuilds', async (t) => {
    const pair = await startPair(t);
    const record = makeTempDir('relay-record-');
    t.after(() => removePath(record));
    const { events, session, uri } = await startRelay(t, pair, { record, channels: CHANNELS });

    await pair.src.qmp.execute('migrate', { uri });
    const done = await waitTerminal(pair.src.qmp, 'src', TIMEOUT, true);
    await waitTerminal(pair.dst.qmp, 'dst', TIMEOUT, false);
    const s = await session;

    // QEMU's own verdict, and the bytes themselves.
    assert.equal(done.status, 'completed');
    assert.equal(await compareFiles(pair.srcRam, pair.dstRam, RAM), null, 'destination RAM equals the source RAM');

    // The relay's view.
    assert.equal(s.state, 'completed', JSON.stringify(s.snapshot.error));
    const snap = s.snapshot;
    assert.equal(snap.role, 'relay');
    assert.equal(snap.uuid, pair.uuid);
    assert.equal(snap.ramSize, RAM, 'block list decoded from the main stream');
    assert.deepEqual(snap.channels.map((c) => c.id), [0, 1, 2, 3]);
    const info: QueryMigrate = done.info;
    const multifdBytes = info.ram?.['multifd-bytes'];
    assert.equal(typeof multifdBytes, 'number');
    const relayed = snap.channels.reduce((n, c) => n + c.bytes, 0);
    assert.equal(relayed, multifdBytes! + 64 * CHANNELS, 'per-channel bytes = multifd-bytes + one 64-byte handshake per channel');
    const pages = snap.channels.reduce((n, c) => n + c.pages, 0);
    assert.ok(pages >= info.ram!.normal, `the channels carried every normal page (${pages} >= ${info.ram!.normal})`);
    for (const c of snap.channels) {
      assert.ok(c.packets > 0 && c.syncs >= 2, `channel ${c.id}: ${c.packets} packets, ${c.syncs} SYNC`);
      assert.equal(c.error, null);
    }
    assert.ok(events.some((e) => e.type === 'state' && e.state === 'active'), 'went active');
    assert.ok(events.some((e) => e.type === 'progress'), 'progress snapshots streamed');

    // The recording, read back by inspect, rebuilds the same RAM.
    assert.deepEqual(s.files.map((f) => path.basename(f)).sort(), ['ch-0.bin', 'ch-1.bin', 'ch-2.bin', 'ch-3.bin', 'main.bin']);
    const out = path.join(record, 'ram.img');
    const r = inspectCapture(s.files, { ramOut: out });
    assert.equal(r.errors, 0, JSON.stringify(r.files.map((f) => f.error)));
    assert.equal(r.sha256, pair.sha256);
    assert.ok(readFileSync(out).equals(readFileSync(pair.srcRam)));
  });

  it('with a wrong UUID injected on channel 2, QEMU fails the migration and the relay names channel 2', async (t) => {
    const pair = await startPair(t);
    const { session, uri } = await startRelay(t, pair, { channels: CHANNELS, faults: [{ channel: 2, kind: 'uuid' }], mainWaitMs: 5000 });

    await pair.src.qmp.execute('migrate', { uri });
    // QEMU 7.2's source has no return path: it may finish writing everything into socket
    // buffers and call it completed, or see the broken pipe. The destination is the judge.
    await waitTerminal(pair.src.qmp, 'src', TIMEOUT, false).catch((e: Error) => assert.match(e.message, /failed/));
    // QEMU 7.2's destination may linger after the failure: stop it after a bounded wait.
    const dstStatus = await Promise.race([
      waitTerminal(pair.dst.qmp, 'dst', 3000, false).then(() => 'completed', (e: Error) => e.message),
      new Promise<string>((r) => setTimeout(() => r('lingering'), 3000)),
    ]);
    assert.notEqual(dstStatus, 'completed');
    await pair.dst.proc.stop(1000);
    // "multifd: received uuid '…' and expected uuid '<ours>' for channel 2"
    assert.match(pair.dst.proc.output, new RegExp(`received uuid '[0-9a-f-]+' and expected uuid '${pair.uuid}' for channel 2`), pair.dst.proc.output);

    const s = await session;
    assert.equal(s.state, 'failed');
    assert.equal(s.snapshot.error?.code, 'MIGRATION_CHANNEL_UUID_MISMATCH');
    assert.equal(s.snapshot.error?.channel, 2);
    assert.equal(s.snapshot.error?.expected, pair.uuid);
    const ch2 = s.snapshot.channels.find((c) => c.id === 2);
    assert.equal(ch2?.state, 'rejected');
  });

  it('relays a migration without multifd (pages on the main stream), which inspect rebuilds too', async (t) => {
    const pair = await startPair(t, 0);
    const record = makeTempDir('relay-record-');
    t.after(() => removePath(record));
    const { session, uri } = await startRelay(t, pair, { record });
    await pair.src.qmp.execute('migrate', { uri });
    assert.equal((await waitTerminal(pair.src.qmp, 'src', TIMEOUT, true)).status, 'completed');
    await waitTerminal(pair.dst.qmp, 'dst', TIMEOUT, false);
    const s = await session;
    assert.equal(s.state, 'completed', JSON.stringify(s.snapshot.error));
    assert.deepEqual(s.snapshot.channels, []);
    assert.deepEqual(s.files.map((f) => path.basename(f)), ['main.bin']);
    const r = inspectCapture(s.files, { ramOut: path.join(record, 'ram.img') });
    assert.equal(r.errors, 0, JSON.stringify(r.files.map((f) => f.error)));
    assert.ok((r.files[0].main?.pages ?? 0) > 0, 'PAGE records on the main stream');
    assert.equal(r.sha256, pair.sha256);
  });

  it('a -machine pc guest with a VGA device: 8 RAM blocks and real device sections; inspect --block mem rebuilds the backend', async (t) => {
    const pair = await startPair(t, 3, { machine: 'pc', extra: ['-device', 'VGA'] });
    const record = makeTempDir('relay-record-');
    t.after(() => removePath(record));
    const { session, uri } = await startRelay(t, pair, { record, channels: 3 });
    await pair.src.qmp.execute('migrate', { uri });
    assert.equal((await waitTerminal(pair.src.qmp, 'src', TIMEOUT, true)).status, 'completed');
    await waitTerminal(pair.dst.qmp, 'dst', TIMEOUT, false);
    const s = await session;
    assert.equal(s.state, 'completed', JSON.stringify(s.snapshot.error));
    const r = inspectCapture(s.files, { ramOut: path.join(record, 'mem.img'), block: 'mem' });
    assert.equal(r.errors, 0, JSON.stringify(r.files.map((f) => f.error)));
    assert.ok(r.blocks.length >= 5, `the pc machine's RAM blocks: ${r.blocks.map((b) => b.name).join(', ')}`);
    assert.ok(r.blocks.some((b) => /vga\.vram$/.test(b.name)));
    assert.equal(r.sha256, pair.sha256);
    // Device state follows RAM: decoding stops there by name, after the RAM is whole.
    assert.match(r.files.find((f) => f.main)!.note ?? '', /device state .* is not decoded/);
  });
});
