/**
 * `multifd relay` and `multifd inspect` as an operator runs them, as processes, between two
 * real QEMU 7.2 processes: the relay's ndjson, its exit status with --once, the recording it
 * leaves, and inspect's rebuild of it. Skipped, with the reason, when QEMU is not installed.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { waitTerminal } from '../../lib/qemu/migrate';
import { makeTempDir, removePath } from '../../lib/qemu/process';
import { skipWithoutQemu, startPair } from '../../lib/qemu/test-support';
import { killAll, run, start } from './test-support';

describe('multifd relay and multifd inspect, as processes, with real QEMU', { skip: skipWithoutQemu }, () => {
  after(killAll);

  it('relays one migration (--once: exit 0), records it, and inspect rebuilds the source RAM', async (t) => {
    const pair = await startPair(t, 4);
    const record = makeTempDir('relay-cli-');
    t.after(() => removePath(record));
    const relay = start(['relay', '--listen', '127.0.0.1:0', '--to', `127.0.0.1:${pair.port}`, '--channels', '4', '--record', record, '--once', '--events', 'ndjson', '--tick-ms', '50']);
    const listening = await relay.waitFor((l) => l.type === 'listening', 10_000, 'listening');
    await pair.src.qmp.execute('migrate', { uri: `tcp:${listening.address as string}` });
    assert.equal((await waitTerminal(pair.src.qmp, 'src', 30_000, true)).status, 'completed');
    const exit = await relay.exit(15_000);
    assert.equal(exit.code, 0, relay.describe());

    const session = relay.lines.find((l) => l.type === 'relay-session') as unknown as { state: string; files: string[]; snapshot: { channels: Array<{ id: number; bytes: number }> } };
    assert.equal(session.state, 'completed');
    assert.deepEqual(session.snapshot.channels.map((c) => c.id), [0, 1, 2, 3]);
    assert.ok(relay.events.some((l) => l.type === 'channel' && l.state === 'accepted' && l.channel === 2), 'per-channel events');
    assert.ok(relay.events.some((l) => l.type === 'progress'), 'progress snapshots');

    const out = path.join(record, 'ram.img');
    const { cli, exit: ie } = await run(['inspect', '--ram-out', out, ...session.files], 30_000);
    assert.equal(ie.code, 0, cli.describe());
    assert.ok(readFileSync(out).equals(readFileSync(pair.srcRam)), 'the rebuilt RAM is the source RAM');
  });

  it('--inject ch2:uuid: the relay names channel 2 and exits 1', async (t) => {
    const pair = await startPair(t, 4);
    const relay = start(['relay', '--listen', '127.0.0.1:0', '--to', `127.0.0.1:${pair.port}`, '--channels', '4', '--inject', 'ch2:uuid', '--once', '--events', 'ndjson']);
    const listening = await relay.waitFor((l) => l.type === 'listening', 10_000, 'listening');
    await pair.src.qmp.execute('migrate', { uri: `tcp:${listening.address as string}` });
    const rejected = await relay.waitFor((l) => l.type === 'channel-rejected', 20_000, 'channel-rejected');
    assert.equal(rejected.code, 'MIGRATION_CHANNEL_UUID_MISMATCH');
    assert.equal(rejected.channel, 2);
    assert.equal(rejected.expected, pair.uuid);
    // QEMU 7.2's destination lingers with its connections open: stopping it ends the session.
    await waitTerminal(pair.src.qmp, 'src', 30_000, false).catch(() => undefined);
    await pair.dst.proc.stop(1000);
    const exit = await relay.exit(15_000);
    assert.equal(exit.code, 1, relay.describe());
    const failed = relay.events.find((l) => l.type === 'failed');
    assert.equal(failed?.code, 'MIGRATION_CHANNEL_UUID_MISMATCH');
    assert.equal(failed?.channel, 2);
  });

  it('bad usage exits 2 and says what is wrong', async () => {
    const { cli, exit } = await run(['relay', '--listen', '127.0.0.1:0'], 10_000);
    assert.equal(exit.code, 2);
    assert.match(cli.stderr, /--to HOST:PORT is required/);
    const bad = await run(['relay', '--listen', '127.0.0.1:0', '--to', '127.0.0.1:1', '--inject', 'ch1:slow:100'], 10_000);
    assert.equal(bad.exit.code, 2);
    assert.match(bad.cli.stderr, /the relay injects/);
  });
});
