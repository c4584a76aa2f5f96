/**
 * What a destination bounds whoever connects (issue: a destination anyone can exhaust):
 * RAM committed to guests that have no channel yet and to all incoming guests together,
 * migrations at once, connections without a migration in total and per peer, bytes before
 * a hello, a source that goes silent without closing, one running copy per guest, and a
 * completion that only a whole migration can earn. Every refusal on the main channel says
 * why in a Failed frame and names the peer.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { MigrationEvent } from '../contracts';
import { FrameDecoder, FrameType, encodeFrame, encodeJsonFrame, encodePreamble, type Frame } from '../protocol';
import { type IncomingMigration } from './incoming';
import { MiB, handshake, makeGuest, migrate, rawConnect, startDest, waitFor, type TestDest } from './test-support';

type Rejected = Extract<MigrationEvent, { type: 'channel-rejected' }>;
const rejected = (code: string) => (e: MigrationEvent): e is Rejected => e.type === 'channel-rejected' && e.code === code;

function hello(uuid: string, migrationId: string, extra: Record<string, unknown> = {}): Buffer {
  return encodeJsonFrame(FrameType.Hello, {
    uuid,
    migrationId,
    channels: 2,
    pageSize: 4096,
    slots: 128,
    compression: 'none',
    blocks: [{ name: 'pc.ram', size: 32 * MiB }],
    ...extra,
  });
}

/** Every frame the destination writes on a main channel until it closes it. */
function framesUntilClose(s: net.Socket): Promise<Frame[]> {
  const decoder = new FrameDecoder();
  const frames: Frame[] = [];
  s.on('data', (chunk: Buffer) => frames.push(...decoder.push(chunk)));
  return new Promise((resolve) => s.once('close', () => resolve(frames)));
}

/** The Failed frame a refused main channel is told, decoded. */
async function failedFrame(s: net.Socket): Promise<Record<string, unknown>> {
  const frames = await framesUntilClose(s);
  const f = frames.find((x) => x.type === FrameType.Failed);
  assert.ok(f, `a Failed frame before close; got ${frames.map((x) => x.type).join(', ') || 'nothing'}`);
  return JSON.parse(f.payload.toString('utf8')) as Record<string, unknown>;
}

/** Connects from a loopback address of its own and sends `bytes` (then nothing: an idle connection). */
async function connectFrom(port: number, localAddress: string, bytes: Uint8Array = new Uint8Array(0)): Promise<net.Socket> {
  const s = net.connect({ host: '127.0.0.1', port, localAddress });
  s.on('error', () => {});
  s.resume(); // reads what the destination says, so its closing is seen
  await new Promise<void>((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
  });
  if (bytes.length) s.write(bytes);
  return s;
}

const closedOf = (s: net.Socket) => (s.destroyed ? Promise.resolve() : new Promise<void>((resolve) => s.once('close', () => resolve())));

function migrationOf(td: TestDest, id: string): IncomingMigration {
  const m = td.dest.active.find((x) => x.id === id);
  assert.ok(m, `migration ${id} is arriving`);
  return m;
}

describe('destination: RAM is committed only to migrations that can use it', () => {
  let td: TestDest;
  before(async () => {
    td = await startDest({ maxRamBytes: 48 * MiB, setupTimeoutMs: 10_000, handshakeTimeoutMs: 2000 });
  });
  after(() => td.close());

  it('a hello with no channel faults in none of its RAM; the channels arriving start it', async () => {
    const uuid = randomUUID();
    const main = await rawConnect(td.port, Buffer.concat([encodePreamble(), hello(uuid, 'no-channels')]));
    await waitFor(td.events, (e) => e.type === 'hello' && e.migration?.id === 'no-channels');
    const m = migrationOf(td, 'no-channels');
    assert.equal(m.populating, false, 'nothing faulted in for a hello alone');
    const a = await rawConnect(td.port, handshake({ uuid, id: 0 }));
    await waitFor(td.events, (e) => e.type === 'channel' && e.migration?.id === 'no-channels' && e.channel === 0 && e.state === 'streaming');
    assert.equal(m.populating, false, 'one of two channels: still nothing');
    const b = await rawConnect(td.port, handshake({ uuid, id: 1 }));
    await waitFor(td.events, (e) => e.type === 'state' && e.migration?.id === 'no-channels' && e.state === 'active');
    assert.equal(m.populating, true, 'every channel is up: the RAM is faulted in ahead of the pages');
    const failed = failedFrame(main);
    main.end();
    for (const s of [a, b]) s.destroy();
    await failed.catch(() => {});
    await m.done;
  });

  it('a hello past the RAM of all incoming guests is refused (MIGRATION_RAM_LIMIT) with a Failed frame; the first is untouched', async () => {
    const first = await rawConnect(td.port, Buffer.concat([encodePreamble(), hello(randomUUID(), 'ram-1')]));
    await waitFor(td.events, (e) => e.type === 'hello' && e.migration?.id === 'ram-1');
    const second = await rawConnect(td.port, Buffer.concat([encodePreamble(), hello(randomUUID(), 'ram-2')]));
    const f = await failedFrame(second);
    assert.equal(f.code, 'MIGRATION_RAM_LIMIT');
    assert.match(String(f.peer), /^127\.0\.0\.1:\d+$/);
    assert.equal(f.received, `${32 * MiB} bytes`);
    assert.equal(f.expected, `at most ${16 * MiB} bytes`);
    const e = await waitFor(td.events, rejected('MIGRATION_RAM_LIMIT'));
    assert.equal(e.migration, null);
    assert.equal(migrationOf(td, 'ram-1').state, 'setup');
    const m = migrationOf(td, 'ram-1');
    first.destroy();
    await m.done;
  });

  it('an arrived guest that still runs counts; once it is stopped its RAM is free again', async () => {
    const guest = await makeGuest({ ramSize: 32 * MiB });
    const run = await migrate(guest, td.port, { channels: 2 }, [], td);
    assert.equal(run.result.state, 'completed', run.result.error?.message);
    await guest.stop();
    assert.equal(td.dest.committedRam, 32 * MiB, 'the arrived guest runs here');
    const other = await makeGuest({ ramSize: 32 * MiB });
    const refused = await migrate(other, td.port, { channels: 2 });
    assert.equal(refused.result.state, 'failed');
    assert.equal(refused.result.error?.code, 'MIGRATION_RAM_LIMIT');
    assert.equal(other.state, 'running', 'the source guest keeps running');
    await run.dest!.guest!.stop();
    assert.equal(td.dest.committedRam, 0);
    const retry = await migrate(other, td.port, { channels: 2 }, [], td);
    assert.equal(retry.result.state, 'completed', retry.result.error?.message);
    await other.stop();
    await retry.dest?.guest?.stop();
  });
});

describe('destination: migrations at once', () => {
  it('past --max-migrations a hello is refused (MIGRATION_TOO_MANY_MIGRATIONS); when one ends the next is taken', async () => {
    const td = await startDest({ maxMigrations: 1, setupTimeoutMs: 10_000 });
    try {
      const first = await rawConnect(td.port, Buffer.concat([encodePreamble(), hello(randomUUID(), 'mm-1', { blocks: [{ name: 'm', size: 4096 }] })]));
      await waitFor(td.events, (e) => e.type === 'hello' && e.migration?.id === 'mm-1');
      const second = await rawConnect(td.port, Buffer.concat([encodePreamble(), hello(randomUUID(), 'mm-2', { blocks: [{ name: 'm', size: 4096 }] })]));
      const f = await failedFrame(second);
      assert.equal(f.code, 'MIGRATION_TOO_MANY_MIGRATIONS');
      const m = migrationOf(td, 'mm-1');
      first.destroy();
      await m.done;
      const guest = await makeGuest({ ramSize: 4 * MiB });
      const run = await migrate(guest, td.port, { channels: 2 }, [], td);
      assert.equal(run.result.state, 'completed', run.result.error?.message);
      await guest.stop();
    } finally {
      await td.close();
    }
  });
});

describe('destination: connections without a migration are bounded, the oldest go first', () => {
  let td: TestDest;
  before(async () => {
    td = await startDest({ maxConnections: 8, maxConnectionsPerPeer: 4, handshakeTimeoutMs: 30_000, setupTimeoutMs: 30_000 });
  });
  after(() => td.close());

  it('a peer past its share loses its own oldest connections, another peer keeps its own', async () => {
    const other = await connectFrom(td.port, '127.0.0.3');
    const flood: net.Socket[] = [];
    for (let i = 0; i < 10; i++) flood.push(await connectFrom(td.port, '127.0.0.2'));
    // 10 from 127.0.0.2 with 4 allowed: the first 6 are closed, in order.
    await Promise.all(flood.slice(0, 6).map(closedOf));
    assert.equal(flood.slice(6).some((s) => s.destroyed), false, 'the newest 4 stay');
    const evicted = td.events.filter(rejected('MIGRATION_TOO_MANY_CONNECTIONS'));
    assert.equal(evicted.length, 6);
    for (const e of evicted) assert.match(e.peer ?? '', /^127\.0\.0\.2:/);
    assert.equal(other.destroyed, false, 'the other peer kept its connection');
    assert.equal(td.dest.pendingConnections, 5);
    for (const s of [other, ...flood]) s.destroy();
  });

  it('an idle flood past the total does not stop a real migration: the flood loses its oldest', async () => {
    const before = td.events.filter(rejected('MIGRATION_TOO_MANY_CONNECTIONS')).length;
    const flood: net.Socket[] = [];
    for (let i = 0; i < 12; i++) flood.push(await connectFrom(td.port, `127.0.1.${i + 1}`, encodePreamble()));
    const guest = await makeGuest({ ramSize: 8 * MiB });
    // 3 channels and the main channel: within the 4 a peer may have waiting at once.
    const run = await migrate(guest, td.port, { channels: 3 }, [], td);
    assert.equal(run.result.state, 'completed', run.result.error?.message);
    assert.ok(td.dest.pendingConnections <= 8, `at most 8 connections wait: ${td.dest.pendingConnections}`);
    const evicted = td.events.filter(rejected('MIGRATION_TOO_MANY_CONNECTIONS')).slice(before);
    assert.ok(evicted.length >= 4, `the flood's oldest were closed: ${evicted.length}`);
    for (const e of evicted) assert.doesNotMatch(e.peer ?? '', /^127\.0\.0\.1:/, 'none of the migration\'s connections was closed');
    await guest.stop();
    await run.dest?.guest?.stop();
    for (const s of flood) s.destroy();
  });
});

describe('destination: main-channel refusals before and inside the hello', () => {
  let td: TestDest;
  before(async () => {
    td = await startDest({ handshakeTimeoutMs: 500 });
  });
  after(() => td.close());

  const lengthOnly = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const cases: Array<{ name: string; bytes: () => Buffer; code: string; field: string | null }> = [
    { name: 'a hello frame announced at 16 MiB (more than a hello may be)', bytes: () => Buffer.concat([encodePreamble(), lengthOnly(16 * MiB)]), code: 'MIGRATION_MAIN_BAD_FRAME', field: 'length' },
    { name: 'a frame length of 0', bytes: () => Buffer.concat([encodePreamble(), lengthOnly(0)]), code: 'MIGRATION_MAIN_BAD_FRAME', field: 'length' },
    { name: 'a wrong main-channel version', bytes: () => Buffer.concat([encodePreamble(9)]), code: 'MIGRATION_MAIN_BAD_FRAME', field: 'version' },
    { name: 'an all-zero uuid', bytes: () => Buffer.concat([encodePreamble(), hello('00000000-0000-0000-0000-000000000000', 'nil')]), code: 'MIGRATION_CONFIG_INVALID', field: null },
    { name: 'a block name with a NUL', bytes: () => Buffer.concat([encodePreamble(), hello(randomUUID(), 'nul', { blocks: [{ name: 'pc\u0000ram', size: 4096 }] })]), code: 'MIGRATION_CONFIG_INVALID', field: null },
    { name: 'half a hello, then silence (handshake timeout)', bytes: () => Buffer.concat([encodePreamble(), hello(randomUUID(), 'half').subarray(0, 20)]), code: 'MIGRATION_CHANNEL_HANDSHAKE_TIMEOUT', field: null },
  ];
  for (const c of cases) {
    it(`${c.name}: a Failed frame (${c.code}) that names the peer`, async () => {
      const s = await rawConnect(td.port, c.bytes());
      const f = await failedFrame(s);
      assert.equal(f.code, c.code);
      if (c.field) assert.equal(f.field, c.field);
      assert.match(String(f.peer), /^127\.0\.0\.1:\d+$/);
      const e = td.events.filter((x): x is Rejected => x.type === 'channel-rejected' && x.code === c.code).at(-1);
      assert.ok(e);
      assert.match(e.peer ?? '', /^127\.0\.0\.1:\d+$/);
    });
  }

  it('still serves a real migration afterwards', async () => {
    const guest = await makeGuest({ ramSize: 4 * MiB });
    const run = await migrate(guest, td.port, { channels: 2 }, [], td);
    assert.equal(run.result.state, 'completed', run.result.error?.message);
    await guest.stop();
    await run.dest?.guest?.stop();
  });
});

describe('destination: a forged main channel cannot complete', () => {
  let td: TestDest;
  before(async () => {
    td = await startDest({ setupTimeoutMs: 5000 });
  });
  after(() => td.close());

  const complete = (digest: string) => encodeJsonFrame(FrameType.Complete, { digest, round: 1, pages: 0, zeroPages: 0 });

  it('hello, device state and Complete with no channel: MIGRATION_MAIN_BAD_FRAME, and no digest of ours in it', async () => {
    const uuid = randomUUID();
    const s = await rawConnect(
      td.port,
      Buffer.concat([encodePreamble(), hello(uuid, 'forged', { blocks: [{ name: 'm', size: 4096 }] }), encodeFrame(FrameType.DeviceState, new Uint8Array(8)), complete('0123456789abcdef')]),
    );
    const f = await failedFrame(s);
    assert.equal(f.code, 'MIGRATION_MAIN_BAD_FRAME');
    assert.equal(f.field, 'complete');
    const r = td.results.at(-1)!;
    assert.equal(r.state, 'failed');
    assert.equal(r.guest, null, 'no guest planted');
    assert.equal(r.snapshot.digest, null);
  });

  it('every channel connected but no round synced: still refused', async () => {
    const uuid = randomUUID();
    const main = await rawConnect(td.port, Buffer.concat([encodePreamble(), hello(uuid, 'forged-2', { blocks: [{ name: 'm', size: 4096 }] })]));
    const verdict = failedFrame(main);
    await waitFor(td.events, (e) => e.type === 'hello' && e.migration?.id === 'forged-2');
    const chans = [await rawConnect(td.port, handshake({ uuid, id: 0 })), await rawConnect(td.port, handshake({ uuid, id: 1 }))];
    await waitFor(td.events, (e) => e.type === 'state' && e.migration?.id === 'forged-2' && e.state === 'active');
    main.write(Buffer.concat([encodeFrame(FrameType.DeviceState, new Uint8Array(8)), complete('0123456789abcdef')]));
    const f = await verdict;
    assert.equal(f.code, 'MIGRATION_MAIN_BAD_FRAME');
    assert.equal(f.field, 'round');
    for (const c of chans) c.destroy();
  });
});

describe('destination: one identity, one running guest', () => {
  let td: TestDest;
  before(async () => {
    td = await startDest();
  });
  after(() => td.close());

  it('the same uuid again after it arrived is refused (MIGRATION_GUEST_EXISTS); --replace stops the old copy and takes the new one', async () => {
    const guest = await makeGuest({ ramSize: 4 * MiB });
    const first = await migrate(guest, td.port, { channels: 2 }, [], td);
    assert.equal(first.result.state, 'completed', first.result.error?.message);
    await guest.stop();
    const arrived = first.dest!.guest!;
    assert.equal(arrived.state, 'running');

    const again = await makeGuest({ uuid: guest.uuid, ramSize: 4 * MiB });
    const refused = await migrate(again, td.port, { channels: 2 });
    assert.equal(refused.result.state, 'failed');
    assert.equal(refused.result.error?.code, 'MIGRATION_GUEST_EXISTS');
    assert.equal(again.state, 'running', 'the source keeps its guest');
    assert.equal(arrived.state, 'running', 'the copy here is untouched');

    const replaced = await migrate(again, td.port, { channels: 2, replace: true }, [], td);
    assert.equal(replaced.result.state, 'completed', replaced.result.error?.message);
    assert.equal(arrived.state, 'stopped', 'the old copy was stopped');
    assert.deepEqual(td.dest.guests.map((g) => g.uuid), [guest.uuid]);
    await again.stop();
    await replaced.dest?.guest?.stop();
  });

  it('a guest the host runs outside the destination counts too (guestRunning)', async () => {
    const uuid = randomUUID();
    const guarded = await startDest({ guestRunning: (u) => u === uuid });
    try {
      const g = await makeGuest({ uuid, ramSize: 4 * MiB });
      const run = await migrate(g, guarded.port, { channels: 2 });
      assert.equal(run.result.error?.code, 'MIGRATION_GUEST_EXISTS');
      await g.stop();
    } finally {
      await guarded.close();
    }
  });
});

/**
 * A TCP relay that can freeze: it stops reading and writing on every connection without
 * closing any, as a source that lost power or its network looks from the destination.
 */
async function freezableRelay(to: number): Promise<{ port: number; freeze(): void; close(): Promise<void> }> {
  const pairs: Array<[net.Socket, net.Socket]> = [];
  let frozen = false;
  const server = net.createServer((a) => {
    const b = net.connect({ host: '127.0.0.1', port: to });
    for (const s of [a, b]) s.on('error', () => {});
    a.pipe(b);
    b.pipe(a);
    a.on('close', () => b.destroy());
    b.on('close', () => a.destroy());
    pairs.push([a, b]);
    if (frozen) a.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    freeze() {
      frozen = true;
      for (const [a, b] of pairs) {
        a.unpipe(b);
        b.unpipe(a);
        a.pause();
        b.pause();
      }
    },
    async close() {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('destination: a source that goes silent without closing', () => {
  it('is ended with MIGRATION_SOURCE_SILENT after the no-progress timeout, and a retry of the same guest works', { timeout: 60_000 }, async () => {
    const td = await startDest({ noProgressTimeoutMs: 1500, setupTimeoutMs: 5000 });
    const relay = await freezableRelay(td.port);
    try {
      // A guest that keeps dirtying and a cap: the migration runs rounds for long enough to freeze it mid-way.
      const guest = await makeGuest({ ramSize: 16 * MiB, workload: { kind: 'random', rate: 8 * MiB, workingSet: 16 * MiB } });
      const incoming = td.next();
      let froze = false;
      const source = migrate(guest, relay.port, { channels: 2, maxBandwidth: 8 * MiB, noProgressTimeoutMs: 60_000, verifyTimeoutMs: 60_000 }, [], undefined, (e) => {
        if (e.type === 'round' && !froze) {
          froze = true;
          relay.freeze();
        }
      });
      const r = await incoming;
      assert.equal(r.state, 'failed');
      assert.equal(r.error?.code, 'MIGRATION_SOURCE_SILENT', r.error?.message);
      assert.equal(r.guest, null);
      assert.equal(td.dest.active.length, 0, 'nothing of it is held');
      await relay.close();
      const first = await source;
      assert.equal(first.result.state, 'failed');
      assert.equal(guest.state, 'running', 'the source guest keeps running');
      guest.workload = { kind: 'idle' };
      const retry = await migrate(guest, td.port, { channels: 2 }, [], td);
      assert.equal(retry.result.state, 'completed', retry.result.error?.message);
      await guest.stop();
      await retry.dest?.guest?.stop();
    } finally {
      await relay.close();
      await td.close();
    }
  });
});
