/**
 * The history store on real SQLite files, one fresh temporary data directory per test.
 */
import Database from 'better-sqlite3';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { MigrationSnapshotSchema, type MigrationEvent, type MigrationSnapshot, type MigrationState } from '../lib/contracts';
import { MigrationSummarySchema, StartMigrationSchema, type MigrationSummary } from '../lib/contracts/console';
import {
  HISTORY_TIMELINE_MAX,
  INTERRUPTED_MESSAGE,
  defaultDataDir,
  openHistory,
  type HistoryRecord,
  type HistoryStore,
} from './history';

const T0 = 1_700_000_000_000;

function snapshot(id: string, state: MigrationState, over: Partial<MigrationSnapshot> = {}): MigrationSnapshot {
  return MigrationSnapshotSchema.parse({
    id,
    uuid: '7c9e6679-7425-40de-944b-e07fc1f90ae7',
    role: 'source',
    state,
    peer: '127.0.0.1:4444',
    channelCount: 1,
    round: 1,
    ramSize: 1 << 20,
    transferred: 0,
    pageBytes: 0,
    remaining: 0,
    dirtyRate: 0,
    transferRate: 0,
    convergence: 0,
    expectedDowntimeMs: 0,
    downtimeMs: null,
    setupTimeMs: null,
    totalTimeMs: null,
    startedAt: T0,
    endedAt: null,
    switchoverReason: null,
    digest: null,
    verified: false,
    channels: [
      {
        id: 0,
        state: 'streaming',
        slow: false,
        connection: 1,
        peer: '127.0.0.1:4444',
        times: { connecting: T0, connected: T0 + 1, handshakeSent: T0 + 2, accepted: T0 + 3, rejected: null, closed: null },
        bytes: 4096,
        pages: 1,
        zeroPages: 0,
        packets: 1,
        syncs: 0,
        throughput: 0,
        error: null,
      },
    ],
    error: null,
    ...over,
  });
}

function summary(id: string, state: MigrationState, startedAt: number, over: Partial<MigrationSummary> = {}): MigrationSummary {
  return MigrationSummarySchema.parse({
    id,
    uuid: '7c9e6679-7425-40de-944b-e07fc1f90ae7',
    state,
    channels: 1,
    destination: 'embedded',
    ramSize: 1 << 20,
    startedAt,
    endedAt: null,
    totalTimeMs: null,
    transferred: 0,
    throughput: null,
    errorCode: null,
    errorMessage: null,
    ...over,
  });
}

function events(id: string, n = 3): MigrationEvent[] {
  const base = { role: 'source' as const, migration: { id, uuid: null } };
  const out: MigrationEvent[] = [{ type: 'state', time: T0, ...base, state: 'setup', previous: null }];
  for (let i = 1; i < n; i++) {
    out.push({ type: 'channel', time: T0 + i, ...base, channel: 0, state: 'streaming', connection: 1, peer: null });
  }
  return out;
}

function record(id: string, state: MigrationState = 'active', startedAt = T0): HistoryRecord {
  return {
    summary: summary(id, state, startedAt),
    config: StartMigrationSchema.parse({}),
    snapshot: snapshot(id, state, { startedAt }),
    destination: null,
    timeline: events(id),
  };
}

let root: string;
let dir: string;
let store: HistoryStore | null;
const open = () => (store = openHistory(dir));

beforeEach(() => {
  root = dir = fs.mkdtempSync(path.join(os.tmpdir(), 'multifd-history-'));
  store = null;
});

afterEach(() => {
  store?.close();
  fs.rmSync(root, { recursive: true, force: true });
});

describe('history store', () => {
  it('creates <dataDir>/history.sqlite (and the directory) in WAL mode with schema version 1', () => {
    dir = path.join(dir, 'nested', 'data');
    open().close();
    store = null;
    assert.ok(fs.existsSync(path.join(dir, 'history.sqlite')));
    const raw = new Database(path.join(dir, 'history.sqlite'), { readonly: true });
    try {
      assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
      assert.deepEqual(raw.prepare('SELECT version FROM schema_version').all(), [{ version: 1 }]);
    } finally {
      raw.close();
    }
    // Reopening an up-to-date file runs no migration again.
    open();
    assert.deepEqual(store!.list(), []);
  });

  it('save then get round-trips deep-equal', () => {
    const s = open();
    const r: HistoryRecord = {
      ...record('m-1', 'completed'),
      config: StartMigrationSchema.parse({ channels: 8, workload: 'random:32' }),
      destination: { ...snapshot('m-1', 'completed'), role: 'destination' },
    };
    s.save(r);
    assert.deepEqual(s.get('m-1'), r);
    assert.equal(s.get('nope'), null);
  });

  it('a second save (start, then end) replaces the first', () => {
    const s = open();
    s.save(record('m-1', 'active'));
    const end: HistoryRecord = {
      ...record('m-1', 'completed'),
      summary: summary('m-1', 'completed', T0, { endedAt: T0 + 500, totalTimeMs: 500, transferred: 1 << 20, throughput: 2 << 20 }),
      timeline: events('m-1', 10),
    };
    s.save(end);
    assert.deepEqual(s.get('m-1'), end);
    assert.deepEqual(s.list(), [end.summary]);
  });

  it('lists newest first, at most `limit`', () => {
    const s = open();
    s.save(record('b', 'completed', T0 + 2000));
    s.save(record('a', 'completed', T0));
    s.save(record('c', 'failed', T0 + 1000));
    assert.deepEqual(s.list().map((x) => x.id), ['b', 'c', 'a']);
    assert.deepEqual(s.list(2).map((x) => x.id), ['b', 'c']);
    assert.deepEqual(s.list(0), []);
    // The default limit is 200.
    for (let i = 0; i < 205; i++) s.save(record(`x-${i}`, 'completed', T0 + 10_000 + i));
    const all = s.list();
    assert.equal(all.length, 200);
    assert.equal(all[0].id, 'x-204');
  });

  it('survives close and reopen (a restart) with the same content', () => {
    const s = open();
    const a = record('a', 'completed', T0);
    const b = record('b', 'cancelled', T0 + 1);
    s.save(a);
    s.save(b);
    s.close();
    const again = open();
    assert.deepEqual(again.list(), [b.summary, a.summary]);
    assert.deepEqual(again.get('a'), a);
    assert.deepEqual(again.get('b'), b);
  });

  it('markInterrupted on reopen turns live migrations into failed ones, and only those', () => {
    const s = open();
    const done = record('done', 'completed', T0);
    s.save(done);
    s.save(record('live', 'active', T0 + 1));
    s.save({ ...record('cancelling', 'cancelling', T0 + 2), destination: { ...snapshot('cancelling', 'active'), role: 'destination' } });
    s.close(); // the console died here

    const again = open();
    assert.equal(again.markInterrupted(), 2);
    assert.equal(again.markInterrupted(), 0);
    assert.deepEqual(again.list().map((x) => [x.id, x.state]), [
      ['cancelling', 'failed'],
      ['live', 'failed'],
      ['done', 'completed'],
    ]);
    const live = again.get('live')!;
    assert.equal(live.summary.errorCode, 'MIGRATION_INTERNAL');
    assert.equal(live.summary.errorMessage, INTERRUPTED_MESSAGE);
    assert.equal(live.summary.endedAt, T0 + 2); // the last event it recorded
    assert.equal(live.snapshot.state, 'failed');
    assert.equal(live.snapshot.error?.code, 'MIGRATION_INTERNAL');
    assert.ok(live.snapshot.channels.every((c) => c.state === 'closed'));
    assert.deepEqual(live.timeline.slice(-2).map((e) => e.type), ['state', 'failed']);
    const both = again.get('cancelling')!;
    assert.equal(both.destination?.state, 'failed');
    assert.deepEqual(both.timeline.filter((e) => e.type === 'failed').map((e) => e.role), ['source', 'destination']);
    assert.deepEqual(again.get('done'), done);
  });

  it('skips a corrupt row in list, returns null from get, warns once, never throws', (t) => {
    const warn = t.mock.method(console, 'warn', () => {});
    const s = open();
    s.save(record('good', 'completed', T0));
    s.save(record('bad-json', 'completed', T0 + 1));
    s.save(record('bad-shape', 'completed', T0 + 2));
    s.save(record('bad-snapshot', 'completed', T0 + 3));
    s.save(record('bad-timeline', 'completed', T0 + 4));
    s.save(record('live-bad', 'active', T0 + 5));

    const raw = new Database(path.join(dir, 'history.sqlite'));
    try {
      const set = (col: string, value: string, id: string) => raw.prepare(`UPDATE migrations SET ${col} = ? WHERE id = ?`).run(value, id);
      set('summary', '{"id": "bad-json", "state": ', 'bad-json');
      set('summary', JSON.stringify({ ...summary('bad-shape', 'completed', T0 + 2), state: 'exploded' }), 'bad-shape');
      set('snapshot', '{not json', 'bad-snapshot');
      set('timeline', '{"not": "an array"}', 'bad-timeline');
      set('config', 'null', 'live-bad');
    } finally {
      raw.close();
    }

    const listed = s.list().map((x) => x.id);
    // bad-timeline and live-bad have a well-formed summary and JSON columns: list shows them,
    // get() (which checks everything) refuses them.
    assert.deepEqual(listed, ['live-bad', 'bad-timeline', 'good']);
    for (const id of ['bad-json', 'bad-shape', 'bad-snapshot', 'bad-timeline', 'live-bad']) assert.equal(s.get(id), null, id);
    assert.ok(s.get('good'));
    // The corrupt live row: its summary is readable, so it is marked failed all the same
    // (list never shows a ghost 'active'); the rest stays as it was, and get() still refuses it.
    assert.equal(s.markInterrupted(), 1);
    assert.deepEqual(s.list().map((x) => [x.id, x.state, x.errorCode]), [
      ['live-bad', 'failed', 'MIGRATION_INTERNAL'],
      ['bad-timeline', 'completed', null],
      ['good', 'completed', null],
    ]);
    assert.equal(s.get('live-bad'), null);
    // One warning per corrupt row, however many times it was read.
    assert.equal(warn.mock.callCount(), 5);
    s.list();
    s.get('bad-json');
    assert.equal(warn.mock.callCount(), 5);
    // A new save of a corrupt row's id replaces it.
    s.save(record('bad-json', 'completed', T0 + 1));
    assert.ok(s.get('bad-json'));
  });

  it('drops invalid timeline events, counting them in a warning', (t) => {
    const warn = t.mock.method(console, 'warn', () => {});
    const s = open();
    const r = record('m', 'completed');
    s.save(r);
    const raw = new Database(path.join(dir, 'history.sqlite'));
    try {
      const timeline = [...r.timeline, { type: 'state', time: 'yesterday' }, { type: 'nonsense' }, 42];
      raw.prepare('UPDATE migrations SET timeline = ? WHERE id = ?').run(JSON.stringify(timeline), 'm');
    } finally {
      raw.close();
    }
    assert.deepEqual(s.get('m')?.timeline, r.timeline);
    assert.equal(warn.mock.callCount(), 1);
    assert.match(String(warn.mock.calls[0].arguments[0]), /dropped 3 invalid timeline event/);
  });

  it(`stores at most ${HISTORY_TIMELINE_MAX} timeline events, keeping every state change`, () => {
    const s = open();
    const r = record('long', 'completed');
    const base = { role: 'source' as const, migration: { id: 'long', uuid: null } };
    const timeline = events('long', HISTORY_TIMELINE_MAX + 500);
    timeline.push({ type: 'state', time: T0 + 99_999, ...base, state: 'completed', previous: 'switchover' });
    s.save({ ...r, timeline });
    const got = s.get('long')!.timeline;
    assert.equal(got.length, HISTORY_TIMELINE_MAX);
    assert.deepEqual(got[0], timeline[0]);
    assert.deepEqual(got.at(-1), timeline.at(-1));
  });

  it('refuses to save a record the contracts reject', () => {
    const s = open();
    const r = record('m');
    assert.throws(() => s.save({ ...r, summary: { ...r.summary, state: 'exploded' as MigrationState } }), /invalid summary/);
    assert.equal(s.get('m'), null);
  });

  it('refuses a file written by a newer schema', () => {
    open().close();
    store = null;
    const raw = new Database(path.join(dir, 'history.sqlite'));
    raw.prepare('UPDATE schema_version SET version = 99').run();
    raw.close();
    assert.throws(() => openHistory(dir), /schema version 99 is newer/);
  });
});

describe('defaultDataDir', () => {
  it('honours MULTIFD_DATA_DIR, else <repo>/data', () => {
    const saved = process.env.MULTIFD_DATA_DIR;
    try {
      process.env.MULTIFD_DATA_DIR = '/tmp/somewhere/multifd';
      assert.equal(defaultDataDir(), '/tmp/somewhere/multifd');
      process.env.MULTIFD_DATA_DIR = 'relative/dir';
      assert.equal(defaultDataDir(), path.resolve('relative/dir'));
      delete process.env.MULTIFD_DATA_DIR;
      const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
      assert.equal(defaultDataDir(), path.join(repo, 'data'));
      process.env.MULTIFD_DATA_DIR = '  ';
      assert.equal(defaultDataDir(), path.join(repo, 'data'));
    } finally {
      if (saved === undefined) delete process.env.MULTIFD_DATA_DIR;
      else process.env.MULTIFD_DATA_DIR = saved;
    }
  });
});
