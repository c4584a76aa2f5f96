/**
 * The human output of `multifd migrate` / `dest`: on a terminal a live display with percent
 * and ETA that fits any reported size; off one (a pipe, a log) a plain progress line now and
 * then, never a cursor move, so a long round is not silent.
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import type { MigrationSnapshot } from '../../lib/contracts';
import { HumanOutput, progressFigures } from './output';

const MiB = 1 << 20;

function snapshot(over: Partial<MigrationSnapshot> = {}, channels = 4): MigrationSnapshot {
  return {
    role: 'source',
    state: 'active',
    round: 1,
    ramSize: 1024 * MiB,
    pageBytes: 430 * MiB,
    remaining: 594 * MiB,
    transferred: 431 * MiB,
    transferRate: 200 * MiB,
    dirtyRate: 0,
    channels: Array.from({ length: channels }, (_, id) => ({ id, state: 'streaming', throughput: 50 * MiB })),
    ...over,
  } as unknown as MigrationSnapshot;
}

function stream(tty: { rows: number; columns: number } | null): { out: NodeJS.WriteStream; text: () => string } {
  const s = new PassThrough();
  let text = '';
  s.on('data', (d: Buffer) => (text += d.toString()));
  Object.assign(s, tty ? { isTTY: true, ...tty } : { isTTY: false });
  return { out: s as unknown as NodeJS.WriteStream, text: () => text };
}

const progress = (snap: MigrationSnapshot) => ({ type: 'progress', time: 0, role: snap.role, migration: { id: 'm', uuid: 'u' }, snapshot: snap }) as never;

describe('CLI human output', () => {
  it('percent and ETA: 430 of 1024 MiB at 200 MiB/s with 594 MiB left', () => {
    assert.deepEqual(progressFigures(snapshot()), { fraction: 430 / 1024, text: '41%, ETA 3 s' });
    assert.equal(progressFigures(snapshot({ state: 'completed', pageBytes: 1024 * MiB, remaining: 0 })).text, '100%');
    // A destination counts what it has not received yet.
    assert.equal(progressFigures(snapshot({ role: 'destination', pageBytes: 824 * MiB, transferRate: 100 * MiB })).text, '80%, ETA 2 s');
  });

  it('off a terminal: a plain progress line at the first report and at most every 2 s after, no escapes', () => {
    let now = 10_000;
    const { out, text } = stream(null);
    const h = new HumanOutput(out, () => now);
    h.event(progress(snapshot()));
    now += 500;
    h.event(progress(snapshot({ pageBytes: 500 * MiB })));
    now += 2000;
    h.event(progress(snapshot({ pageBytes: 900 * MiB, remaining: 124 * MiB })));
    const lines = text().trimEnd().split('\n');
    assert.deepEqual(lines, [
      'source ACTIVE round 1 41%, ETA 3 s, 431 MiB at 200 MiB/s, 594 MiB dirty, 0 B/s dirty rate',
      'source ACTIVE round 1 87%, ETA <1 s, 431 MiB at 200 MiB/s, 124 MiB dirty, 0 B/s dirty rate',
    ]);
    assert.doesNotMatch(text(), /\x1b/);
  });

  it('a terminal reporting 0 rows still shows every channel', () => {
    const { out, text } = stream({ rows: 0, columns: 40 });
    new HumanOutput(out).event(progress(snapshot({}, 8)));
    for (let id = 0; id < 8; id++) assert.match(text(), new RegExp(`#\\s+${id} streaming`));
    assert.match(text(), /\[#+\.+\] 41%, ETA 3 s/);
  });

  it('a terminal too short for every channel says how many rows it left out', () => {
    const { out, text } = stream({ rows: 8, columns: 40 });
    new HumanOutput(out).event(progress(snapshot({}, 16)));
    assert.match(text(), /\.\.\. 16 channels, \d+ rows not shown/);
    assert.equal(text().trimEnd().split('\n').length, 4);
  });
});
