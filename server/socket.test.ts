/**
 * socket.io: a subscriber gets where a migration stands, then batches of both sides' events,
 * a few a second whatever the channel count, and never an event twice.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { io as connect, type Socket } from 'socket.io-client';
import type { MigrationEvent } from '../lib/contracts';
import type { ClientToServerEvents, ServerToClientEvents, SubscribeReply } from '../lib/contracts/console';
import { StartMigrationSchema } from '../lib/contracts/console';
import type { LocalRegistry } from './registry';
import { startTestConsole, type TestConsole } from './test-support';
import { attachSocket } from './socket';

describe('socket.io rooms', () => {
  let tc: TestConsole;
  let registry: LocalRegistry;
  let client: Socket<ServerToClientEvents, ClientToServerEvents>;

  before(async () => {
    tc = await startTestConsole((server, reg) => void attachSocket(server, reg));
    registry = tc.registry;
    client = connect(tc.url, { transports: ['websocket'] });
    await new Promise<void>((r) => client.once('connect', () => r()));
  });

  after(async () => {
    client.close();
    await tc.close();
  });

  it('64 channels: the subscriber sees both sides, batched, and no event twice', async () => {
    const started = await registry.start(StartMigrationSchema.parse({ channels: 64, ramSize: 64 << 20, maxBandwidth: 64 << 20 }));
    const reply = await new Promise<SubscribeReply>((r) => client.emit('migration:subscribe', started.id, r));
    assert.ok(reply.ok);
    const seen: MigrationEvent[] = [...reply.timeline];
    const batchTimes: number[] = [];
    const done = new Promise<void>((resolve) => {
      client.on('migration:events', (b) => {
        assert.equal(b.id, started.id);
        batchTimes.push(Date.now());
        seen.push(...b.events);
        if (b.events.some((e) => e.type === 'completed' && e.role === 'source')) resolve();
      });
    });
    await done;
    assert.ok(seen.some((e) => e.role === 'destination' && e.type === 'completed'), 'destination events reach the room too');
    const discrete = seen.filter((e) => e.type !== 'progress').map((e) => JSON.stringify(e));
    assert.equal(new Set(discrete).size, discrete.length, 'no event arrives twice');
    // a few batches a second, however many channel events there were
    const spanS = Math.max(1, (batchTimes.at(-1)! - batchTimes[0]) / 1000);
    assert.ok(batchTimes.length / spanS <= 6, `${batchTimes.length} batches over ${spanS} s`);
    const channelEvents = seen.filter((e) => e.type === 'channel').length;
    assert.ok(channelEvents > batchTimes.length, `${channelEvents} channel events in ${batchTimes.length} batches`);
  });

  it('refuses unknown ids and malformed subscriptions with a code', async () => {
    const r = await new Promise<SubscribeReply>((res) => client.emit('migration:subscribe', 'no-such-id', res));
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.code, 'NOT_FOUND');
    const bad = await new Promise<SubscribeReply>((res) => client.emit('migration:subscribe', '' as string, res));
    assert.equal(!bad.ok && bad.code, 'BAD_REQUEST');
  });
});
