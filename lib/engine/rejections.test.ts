/**
 * Handshakes crafted by hand against a destination: each refusal has its own code, names
 * the channel wherever the bytes reached the id, and the destination keeps serving.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { MigrationEvent } from '../contracts';
import { FrameType, encodeJsonFrame, encodePreamble } from '../protocol';
import { handshake, makeGuest, migrate, rawConnect, startDest, waitFor, type TestDest } from './test-support';

type Rejected = Extract<MigrationEvent, { type: 'channel-rejected' }>;
const isRejected = (connection: number) => (e: MigrationEvent): e is Rejected => e.type === 'channel-rejected' && e.connection === connection;

describe('destination refuses crafted handshakes (expects 4 channels of one uuid)', () => {
  const uuid = randomUUID();
  const other = randomUUID();
  let td: TestDest;
  let conn = 0;
  before(async () => {
    td = await startDest({ channels: 4, uuid, handshakeTimeoutMs: 300, setupTimeoutMs: 1500 });
  });
  after(async () => {
    await td.close();
  });

  const cases: Array<{ name: string; bytes: () => Buffer; end?: boolean; code: string; channel: number | null }> = [
    { name: 'bad magic', bytes: () => handshake({ magic: 0xdeadbeef, uuid, id: 1 }), code: 'MIGRATION_CHANNEL_BAD_MAGIC', channel: null },
    { name: 'garbage (an HTTP request)', bytes: () => Buffer.from('GET / HTTP/1.1\r\n\r\n'), code: 'MIGRATION_CHANNEL_BAD_MAGIC', channel: null },
    { name: 'bad version', bytes: () => handshake({ version: 7, uuid, id: 2 }), code: 'MIGRATION_CHANNEL_BAD_VERSION', channel: 2 },
    { name: 'wrong uuid', bytes: () => handshake({ uuid: other, id: 3 }), code: 'MIGRATION_CHANNEL_UUID_MISMATCH', channel: 3 },
    { name: 'id equal to the channel count', bytes: () => handshake({ uuid, id: 4 }), code: 'MIGRATION_CHANNEL_ID_OUT_OF_RANGE', channel: 4 },
    { name: 'id above the channel count', bytes: () => handshake({ uuid, id: 200 }), code: 'MIGRATION_CHANNEL_ID_OUT_OF_RANGE', channel: 200 },
    { name: 'short handshake before the id', bytes: () => handshake({ uuid, id: 1 }).subarray(0, 20), end: true, code: 'MIGRATION_CHANNEL_SHORT_HANDSHAKE', channel: null },
    { name: 'short handshake past the id', bytes: () => handshake({ uuid, id: 1 }).subarray(0, 40), end: true, code: 'MIGRATION_CHANNEL_SHORT_HANDSHAKE', channel: 1 },
    { name: 'nothing sent (handshake timeout)', bytes: () => Buffer.alloc(0), code: 'MIGRATION_CHANNEL_HANDSHAKE_TIMEOUT', channel: null },
  ];

  for (const c of cases) {
    it(`${c.name}: ${c.code}, channel ${c.channel}`, async () => {
      const n = ++conn;
      const s = await rawConnect(td.port, c.bytes(), c.end);
      const e = await waitFor(td.events, isRejected(n), 3000);
      assert.equal(e.code, c.code);
      assert.equal(e.channel, c.channel);
      assert.match(e.peer ?? '', /^127\.0\.0\.1:\d+$/);
      assert.equal(e.migration, null, 'no migration to blame');
      assert.ok(e.message.length > 20);
      s.destroy();
    });
  }

  it('names expected and received for a wrong uuid', () => {
    const e = td.events.find((x): x is Rejected => x.type === 'channel-rejected' && x.code === 'MIGRATION_CHANNEL_UUID_MISMATCH');
    assert.ok(e);
    assert.equal(e.expected, uuid);
    assert.equal(e.received, other);
    assert.ok(e.message.includes(uuid) && e.message.includes(other));
  });

  it('duplicate id: the second connection claiming channel 0 fails the migration', async () => {
    // A main channel written by hand, then two channels claiming id 0.
    const main = await rawConnect(
      td.port,
      Buffer.concat([
        encodePreamble(),
        encodeJsonFrame(FrameType.Hello, {
          uuid,
          migrationId: 'crafted-dup',
          channels: 4,
          pageSize: 4096,
          slots: 128,
          compression: 'none',
          blocks: [{ name: 'pc.ram', size: 1 << 20 }],
        }),
      ]),
    );
    await waitFor(td.events, (e) => e.type === 'hello' && e.migration?.id === 'crafted-dup');
    conn++; // main
    const a = await rawConnect(td.port, handshake({ uuid, id: 0 }));
    conn++;
    await waitFor(td.events, (e) => e.type === 'channel' && e.migration?.id === 'crafted-dup' && e.state === 'streaming');
    const b = await rawConnect(td.port, handshake({ uuid, id: 0 }));
    const n = ++conn;
    const e = await waitFor(td.events, isRejected(n));
    assert.equal(e.code, 'MIGRATION_CHANNEL_ID_DUPLICATE');
    assert.equal(e.channel, 0);
    assert.equal(e.migration?.id, 'crafted-dup');
    const failed = await waitFor(td.events, (x) => x.type === 'failed' && x.migration?.id === 'crafted-dup');
    assert.equal(failed.type === 'failed' && failed.code, 'MIGRATION_CHANNEL_ID_DUPLICATE');
    for (const s of [main, a, b]) s.destroy();
  });

  it('still serves a real migration afterwards', async () => {
    const guest = await makeGuest({ uuid, ramSize: 4 << 20 });
    const run = await migrate(guest, td.port, { channels: 4 }, [], td);
    assert.equal(run.result.state, 'completed', run.result.error?.message);
    conn += 5;
    await run.dest?.guest?.stop();
  });
});

describe('destination without expectations', () => {
  let td: TestDest;
  before(async () => {
    td = await startDest({ handshakeTimeoutMs: 300, setupTimeoutMs: 600 });
  });
  after(async () => {
    await td.close();
  });

  it('refuses a hello whose channel count differs from --channels', async () => {
    const strict = await startDest({ channels: 4 });
    try {
      const guest = await makeGuest({ ramSize: 1 << 20 });
      const run = await migrate(guest, strict.port, { channels: 8 });
      assert.equal(run.result.state, 'failed');
      assert.equal(run.result.error?.code, 'MIGRATION_CHANNEL_COUNT_MISMATCH');
      assert.match(run.result.error!.message, /8 channels.*expects 4/);
      assert.equal(guest.state, 'running');
      await guest.stop();
    } finally {
      await strict.close();
    }
  });

  it('refuses a second main channel for a guest whose migration is running (MIGRATION_BUSY)', async () => {
    const uuid = randomUUID();
    const hello = (id: string) =>
      Buffer.concat([
        encodePreamble(),
        encodeJsonFrame(FrameType.Hello, { uuid, migrationId: id, channels: 2, pageSize: 4096, slots: 128, compression: 'none', blocks: [{ name: 'm', size: 4096 }] }),
      ]);
    const first = await rawConnect(td.port, hello('busy-1'));
    await waitFor(td.events, (e) => e.type === 'hello' && e.migration?.id === 'busy-1');
    const second = await rawConnect(td.port, hello('busy-2'));
    const e = await waitFor(td.events, (x) => x.type === 'channel-rejected' && x.code === 'MIGRATION_BUSY');
    assert.equal(e.type === 'channel-rejected' && e.channel, null);
    first.destroy();
    second.destroy();
  });

  it('holds a channel that arrives before its main channel, then accepts it', async () => {
    const guest = await makeGuest({ ramSize: 1 << 20 });
    // channel 1 of this guest comes first, by hand
    const early = await rawConnect(td.port, handshake({ uuid: guest.uuid, id: 1 }));
    await new Promise((r) => setTimeout(r, 50));
    // The source opens 2 channels; ours holds id 1 already, so the source's channel 1 is a duplicate.
    const run = await migrate(guest, td.port, { channels: 2 }, [], td);
    assert.equal(run.result.state, 'failed');
    assert.equal(run.result.error?.code, 'MIGRATION_CHANNEL_ID_DUPLICATE');
    assert.equal(run.result.error?.channel, 1);
    assert.equal(guest.state, 'running');
    early.destroy();
    await guest.stop();
  });
});
