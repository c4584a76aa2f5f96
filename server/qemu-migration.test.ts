/**
 * QemuMigration's end, between two real QEMU 7.2 processes: its verdict is its last word
 * (nothing the relay says while it is shut down comes after it), and by the time `done`
 * resolves everything it opened is let go. Skipped, with the reason, when QEMU is not installed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MigrationEvent } from '../lib/contracts';
import { StartQemuMigrationSchema } from '../lib/contracts/console';
import { QmpClient } from '../lib/qemu/qmp';
import { skipWithoutQemu, startPair } from '../lib/qemu/test-support';
import { QemuMigration } from './qemu-migration';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('QemuMigration, its end (real QEMU)', { skip: skipWithoutQemu, timeout: 60_000 }, () => {
  it('a failed migration whose destination lingers: the verdict is the last event, and the QMP sockets are free when done resolves', async (t) => {
    const pair = await startPair(t, 4, { configure: false });
    const config = StartQemuMigrationSchema.parse({ sourceQmp: pair.srcQmp, destinationQmp: pair.dstQmp, channels: 4 });
    // A wrong uuid on channel 2: QEMU 7.2's destination keeps its connections open after it,
    // so the relay still holds connections when the migration is decided.
    const m = new QemuMigration(config, [{ channel: 2, kind: 'uuid' }], { pollMs: 100, destinationWaitMs: 1500 });
    const events: MigrationEvent[] = [];
    m.events.on((e) => events.push(e));
    await m.start();
    assert.equal(await m.done, 'failed');

    // QEMU serves one QMP client per socket: a new one is greeted only once ours has gone.
    const again = await QmpClient.connect(pair.srcQmp, { connectTimeoutMs: 500, commandTimeoutMs: 2000 });
    await again.close();

    await sleep(300);
    const verdict = events.findIndex((e) => e.type === 'failed');
    assert.ok(verdict >= 0, 'a failed event');
    assert.equal(events[verdict].type === 'failed' && events[verdict].code, 'MIGRATION_CHANNEL_UUID_MISMATCH');
    assert.deepEqual(events.slice(verdict).map((e) => e.type), ['failed', 'progress'], 'nothing after the verdict but its final snapshot');
  });
});
