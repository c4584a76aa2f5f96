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
import { createHash, randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import type { MigrationEvent } from '../contracts';
import { inspectCapture } from './capture';
import { compareFiles, configureMultifd, startIncoming, waitTerminal, type QueryMigrate } from './migrate';
import { QEMU_X86_64, QemuProcess, createRamFile, findExecutable, makeTempDir, pausedGuestArgs, removePath, waitForSocket } from './process';
import { QmpClient } from './qmp';
import { QemuRelay, type RelaySessionSummary } from './relay';

const qemu = findExecutable(QEMU_X86_64);
const skip = qemu ? false : `${QEMU_X86_64} is not on PATH (Debian package qemu-system-x86)`;

const MiB = 1024 * 1024;
const RAM = 64 * MiB;
const PAGE = 4096;
const CHANNELS = 4;
const TIMEOUT = 30_000;

/**
 * Page i: i % 8 == 3 holds its index (u64 LE, repeated); i % 61 == 7 random bytes; the
 * rest zero (QEMU 7.2 sends those on the main stream, the others on multifd channels).
 */
function writePatternRam(file: string): string {
  const buf = Buffer.alloc(RAM);
  const rnd = createHash('sha256');
  for (let i = 0; i < RAM / PAGE; i++) {
    const page = buf.subarray(i * PAGE, (i + 1) * PAGE);
    if (i % 8 === 3) for (let w = 0; w < PAGE; w += 8) page.writeBigUInt64LE(BigInt(i), w);
    else if (i % 61 === 7) {
      for (let w = 0; w < PAGE; w += 32) page.set(rnd.copy().update(`${i}:${w}`).digest(), w);
    }
  }
  writeFileSync(file, buf);
  return createHash('sha256').update(buf).digest('hex');
}

interface Pair {
  src: { proc: QemuProcess; qmp: QmpClient };
  dst: { proc: QemuProcess; qmp: QmpClient };
  srcRam: string;
  dstRam: string;
  sha256: string;
  port: number;
  uuid: string;
}

/**
 * Two paused QEMUs set up for multifd with `channels` (0: multifd off), the destination
 * listening; all of it undone when the test ends.
 */
async function startPair(t: TestContext, channels: number = CHANNELS): Promise<Pair> {
  const dir = makeTempDir('relay-test-');
  const uuid = randomUUID();
  const srcRam = `/dev/shm/multifd-relay-test-${process.pid}-${uuid.slice(0, 8)}-src.ram`;
  const dstRam = srcRam.replace(/-src\.ram$/, '-dst.ram');
  await createRamFile(srcRam, RAM, 'zero');
  await createRamFile(dstRam, RAM, 'zero');
  const sha256 = writePatternRam(srcRam);
  const started: Array<{ proc: QemuProcess; qmp: QmpClient | null }> = [];
  t.after(async () => {
    for (const s of started) await s.qmp?.close();
    for (const s of started) await s.proc.stop(1000);
    removePath(srcRam);
    removePath(dstRam);
    removePath(dir);
  });
  const start = async (name: 'src' | 'dst') => {
    const socket = path.join(dir, `${name}.qmp`);
    const proc = QemuProcess.spawn(`qemu ${name}`, qemu!, pausedGuestArgs({ ramPath: name === 'src' ? srcRam : dstRam, ramBytes: RAM, qmpSocket: socket, uuid, name, incoming: name === 'dst' ? 'defer' : undefined }));
    const entry: { proc: QemuProcess; qmp: QmpClient | null } = { proc, qmp: null };
    started.push(entry);
    await waitForSocket(socket, 15_000, proc);
    entry.qmp = await QmpClient.connect(socket, { connectTimeoutMs: 15_000, commandTimeoutMs: 15_000, eventTimeoutMs: TIMEOUT });
    return { proc, qmp: entry.qmp };
  };
  const dst = await start('dst');
  const src = await start('src');
  if (channels > 0) {
    await configureMultifd(dst.qmp, channels);
    await configureMultifd(src.qmp, channels, 1024 ** 4);
  } else {
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 1024 ** 4 });
  }
  const port = await startIncoming(dst.qmp);
  return { src, dst, srcRam, dstRam, sha256, port, uuid };
}

async function startRelay(t: TestContext, pair: Pair, extra: Partial<ConstructorParameters<typeof QemuRelay>[0]> = {}) {
  const relay = new QemuRelay({ listenHost: '127.0.0.1', listenPort: 0, toHost: '127.0.0.1', toPort: pair.port, tickMs: 50, ...extra });
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
});
