/**
 * Migration history: one record per migration (summary, config, final snapshots and the
 * event timeline), kept across restarts of the console.
 *
 * Behind `HistoryStore` so nothing outside this file knows the backend (DESIGN 9: SQLite
 * today, PostgreSQL later). Today it is one SQLite file, `<dataDir>/history.sqlite`, in WAL
 * mode, with a forward-only schema migration. Every JSON column is checked with the
 * contracts' zod schemas when read: a corrupt row is skipped by `list()` and `get()` returns
 * null for it, with one warning, never a throw.
 */
import Database from 'better-sqlite3';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  MigrationEventSchema,
  MigrationSnapshotSchema,
  TERMINAL_STATES,
  formatIssues,
  type MigrationEvent,
  type MigrationSnapshot,
  type MigrationState,
} from '../lib/contracts';
import {
  MigrationSummarySchema,
  StartMigrationSchema,
  type MigrationSummary,
  type StartMigration,
} from '../lib/contracts/console';
import type { z } from 'zod';

export interface HistoryRecord {
  summary: MigrationSummary;
  config: StartMigration;
  snapshot: MigrationSnapshot;
  destination: MigrationSnapshot | null;
  timeline: MigrationEvent[];
}

/** The history could not take a write (a read-only or full disk): nothing was started. */
export class HistoryUnavailableError extends Error {
  readonly code = 'HISTORY_UNAVAILABLE';
}

export interface HistoryStore {
  /**
   * Insert or replace by summary.id (called at start with the config and again at the end).
   * Throws on a record the contracts reject (a bug of the caller) or a storage error.
   */
  save(r: HistoryRecord): void;
  /** Newest first (startedAt desc), at most `limit` (default 200). Corrupt rows are skipped. */
  list(limit?: number): MigrationSummary[];
  /** null when there is no such migration, or its stored record is corrupt. */
  get(id: string): HistoryRecord | null;
  /**
   * Called once at open, before any migration runs: every stored migration that is not in a
   * terminal state (it was live when the console stopped) becomes 'failed' with
   * MIGRATION_INTERNAL, so history never shows a ghost 'active' migration. Returns how many.
   */
  markInterrupted(): number;
  /** Idempotent. */
  close(): void;
}

/** At most this many timeline events are stored per migration (the emitter bounds it too). */
export const HISTORY_TIMELINE_MAX = 20_000;
/** `list()` without a limit. */
export const HISTORY_LIST_DEFAULT = 200;

export const INTERRUPTED_CODE = 'MIGRATION_INTERNAL' as const;
export const INTERRUPTED_MESSAGE = 'the console stopped while this migration ran';

const FILE_NAME = 'history.sqlite';
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The data directory: $MULTIFD_DATA_DIR (relative to the working directory), else <repo>/data. */
export function defaultDataDir(): string {
  const env = process.env.MULTIFD_DATA_DIR?.trim();
  return env ? path.resolve(env) : path.join(REPO_ROOT, 'data');
}

// --- schema --------------------------------------------------------------------------

/** Forward-only: entry i takes the schema from version i to i + 1. Never edit a shipped one. */
const MIGRATIONS: ReadonlyArray<(db: Database.Database) => void> = [
  // 1: the migrations table.
  (db) => {
    db.exec(`
      CREATE TABLE migrations (
        id          TEXT PRIMARY KEY,
        started_at  INTEGER NOT NULL,
        state       TEXT NOT NULL,
        summary     TEXT NOT NULL,  -- JSON MigrationSummary
        config      TEXT NOT NULL,  -- JSON StartMigration
        snapshot    TEXT NOT NULL,  -- JSON MigrationSnapshot (source)
        destination TEXT NULL,      -- JSON MigrationSnapshot (embedded destination) or NULL
        timeline    TEXT NOT NULL   -- JSON MigrationEvent[]
      );
      CREATE INDEX migrations_started_at ON migrations (started_at);
    `);
  },
];
const SCHEMA_VERSION = MIGRATIONS.length;

function migrate(db: Database.Database): void {
  db.transaction(() => {
    db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
    const row = db.prepare<[], { version: number }>('SELECT version FROM schema_version').get();
    const current = row?.version ?? 0;
    if (current > SCHEMA_VERSION) {
      throw new Error(`history schema version ${current} is newer than this multifd understands (${SCHEMA_VERSION})`);
    }
    for (let v = current; v < SCHEMA_VERSION; v++) MIGRATIONS[v](db);
    if (!row) db.prepare('INSERT INTO schema_version (version) VALUES (?)').run(SCHEMA_VERSION);
    else if (current !== SCHEMA_VERSION) db.prepare('UPDATE schema_version SET version = ?').run(SCHEMA_VERSION);
  }).immediate();
}

// --- rows ----------------------------------------------------------------------------

interface Row {
  id: string;
  started_at: number;
  state: string;
  summary: string;
  config: string;
  snapshot: string;
  destination: string | null;
  timeline: string;
}

interface ListRow {
  id: string;
  summary: string;
  /** 1 when config, snapshot and destination are well-formed JSON (cheap check in SQL). */
  ok: number;
}

type Parsed<T> = { ok: true; value: T } | { ok: false; why: string };

function parseJson<S extends z.ZodType>(schema: S, text: string | null, what: string): Parsed<z.infer<S>> {
  let raw: unknown;
  try {
    raw = JSON.parse(text ?? '');
  } catch {
    return { ok: false, why: `${what} is not JSON` };
  }
  const r = schema.safeParse(raw);
  return r.success ? { ok: true, value: r.data } : { ok: false, why: `${what}: ${formatIssues(r.error)}` };
}

function parseTimeline(text: string): { ok: true; value: MigrationEvent[]; dropped: number } | { ok: false; why: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, why: 'timeline is not JSON' };
  }
  if (!Array.isArray(raw)) return { ok: false, why: 'timeline is not an array' };
  const value: MigrationEvent[] = [];
  let dropped = 0;
  for (const e of raw) {
    const r = MigrationEventSchema.safeParse(e);
    if (r.success) value.push(r.data);
    else dropped++;
  }
  return { ok: true, value: boundTimeline(value), dropped };
}

const isVital = (e: MigrationEvent) =>
  e.type === 'state' || e.type === 'completed' || e.type === 'failed' || e.type === 'cancelled';

/**
 * At most HISTORY_TIMELINE_MAX events, in order: every state change and terminal event is
 * kept, then the earliest of the others (setup matters most in a post-mortem), as the
 * emitter does.
 */
function boundTimeline(timeline: MigrationEvent[]): MigrationEvent[] {
  if (timeline.length <= HISTORY_TIMELINE_MAX) return timeline;
  let vital = 0;
  for (const e of timeline) if (isVital(e)) vital++;
  if (vital >= HISTORY_TIMELINE_MAX) {
    // Absurd, but bounded all the same: the first half and the last half of the vital ones.
    const v = timeline.filter(isVital);
    const half = HISTORY_TIMELINE_MAX >> 1;
    return [...v.slice(0, half), ...v.slice(v.length - (HISTORY_TIMELINE_MAX - half))];
  }
  let room = HISTORY_TIMELINE_MAX - vital;
  const out: MigrationEvent[] = [];
  for (const e of timeline) {
    if (isVital(e)) out.push(e);
    else if (room > 0) {
      out.push(e);
      room--;
    }
  }
  return out;
}

function checked<S extends z.ZodType>(schema: S, value: unknown, what: string): z.infer<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw new TypeError(`history: invalid ${what}: ${formatIssues(r.error)}`);
  return r.data;
}

const isTerminal = (s: MigrationState) => TERMINAL_STATES.includes(s);

/** The summary of a migration that was live when the console died, ended at `lastSeen`. */
function interruptedSummary(s: MigrationSummary, lastSeen: number): MigrationSummary {
  const endedAt = s.endedAt ?? lastSeen;
  return {
    ...s,
    state: 'failed',
    endedAt,
    totalTimeMs: s.totalTimeMs ?? Math.max(0, endedAt - s.startedAt),
    errorCode: INTERRUPTED_CODE,
    errorMessage: INTERRUPTED_MESSAGE,
  };
}

/** A snapshot of a side that was live when the console died, as it ends now. */
function interruptedSnapshot(s: MigrationSnapshot, endedAt: number): MigrationSnapshot {
  if (isTerminal(s.state)) return s;
  return {
    ...s,
    state: 'failed',
    endedAt: s.endedAt ?? endedAt,
    totalTimeMs: s.totalTimeMs ?? Math.max(0, endedAt - s.startedAt),
    channels: s.channels.map((c) =>
      c.state === 'closed' || c.state === 'failed' || c.state === 'rejected' ? c : { ...c, state: 'closed' as const },
    ),
    error: s.error ?? INTERRUPTED_ERROR,
  };
}

/** The error an interrupted migration ends with, on each side and in its last event. */
const INTERRUPTED_ERROR = {
  code: INTERRUPTED_CODE,
  message: INTERRUPTED_MESSAGE,
  channel: null,
  peer: null,
  connection: null,
  expected: null,
  received: null,
  field: null,
  missing: null,
} as const;

/** The events the engine would have ended this side's stream with: state → failed, failed. */
function interruptedEvents(s: MigrationSnapshot, time: number): MigrationEvent[] {
  if (isTerminal(s.state)) return [];
  const base = { time, role: s.role, migration: { id: s.id, uuid: s.uuid } };
  return [
    { type: 'state', ...base, state: 'failed', previous: s.state },
    { type: 'failed', ...base, ...INTERRUPTED_ERROR },
  ];
}

// --- the store -----------------------------------------------------------------------

/**
 * Opens (creating the directory and file) `<dataDir>/history.sqlite`. Throws if it cannot.
 * `readonly`: an existing history, for reading (every write then fails, as on a read-only disk).
 */
export function openHistory(dataDir: string, opts: { readonly?: boolean } = {}): HistoryStore {
  const file = path.join(dataDir, FILE_NAME);
  if (opts.readonly) return new SqliteHistory(new Database(file, { readonly: true, fileMustExist: true }), file);
  fs.mkdirSync(dataDir, { recursive: true });
  const db = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('busy_timeout = 5000');
    migrate(db);
  } catch (err) {
    db.close();
    throw new Error(`cannot open migration history ${file}: ${(err as Error).message}`, { cause: err });
  }
  return new SqliteHistory(db, file);
}

class SqliteHistory implements HistoryStore {
  private readonly upsert: Database.Statement<[Row]>;
  private readonly selectOne: Database.Statement<[string], Row>;
  private readonly selectList: Database.Statement<[], ListRow>;
  private readonly selectLive: Database.Statement<[], Row>;
  private readonly updateInterrupted: Database.Statement<[Pick<Row, 'id' | 'state' | 'summary' | 'snapshot' | 'destination' | 'timeline'>]>;
  private readonly updateSummary: Database.Statement<[Pick<Row, 'id' | 'state' | 'summary'>]>;
  /** Rows already warned about: one warning per corrupt row, however often it is read. */
  private readonly warned = new Set<string>();
  private closed = false;

  constructor(
    private readonly db: Database.Database,
    private readonly file: string,
  ) {
    this.upsert = db.prepare(`
      INSERT INTO migrations (id, started_at, state, summary, config, snapshot, destination, timeline)
      VALUES (@id, @started_at, @state, @summary, @config, @snapshot, @destination, @timeline)
      ON CONFLICT (id) DO UPDATE SET
        started_at = excluded.started_at, state = excluded.state, summary = excluded.summary,
        config = excluded.config, snapshot = excluded.snapshot, destination = excluded.destination,
        timeline = excluded.timeline`);
    this.selectOne = db.prepare('SELECT * FROM migrations WHERE id = ?');
    this.selectList = db.prepare(`
      SELECT id, summary,
             json_valid(config) AND json_valid(snapshot) AND (destination IS NULL OR json_valid(destination)) AS ok
      FROM migrations ORDER BY started_at DESC, rowid DESC`);
    const terminal = TERMINAL_STATES.map((s) => `'${s}'`).join(', ');
    this.selectLive = db.prepare(`SELECT * FROM migrations WHERE state NOT IN (${terminal})`);
    this.updateSummary = db.prepare('UPDATE migrations SET state = @state, summary = @summary WHERE id = @id');
    this.updateInterrupted = db.prepare(`
      UPDATE migrations SET state = @state, summary = @summary, snapshot = @snapshot,
                            destination = @destination, timeline = @timeline
      WHERE id = @id`);
  }

  save(r: HistoryRecord): void {
    const summary = checked(MigrationSummarySchema, r.summary, 'summary');
    const config = checked(StartMigrationSchema, r.config, 'config');
    const snapshot = checked(MigrationSnapshotSchema, r.snapshot, 'snapshot');
    const destination = r.destination === null ? null : checked(MigrationSnapshotSchema, r.destination, 'destination snapshot');
    if (!Array.isArray(r.timeline)) throw new TypeError('history: invalid timeline: not an array');
    this.upsert.run({
      id: summary.id,
      started_at: summary.startedAt,
      state: summary.state,
      summary: JSON.stringify(summary),
      config: JSON.stringify(config),
      snapshot: JSON.stringify(snapshot),
      destination: destination === null ? null : JSON.stringify(destination),
      timeline: JSON.stringify(boundTimeline(r.timeline)),
    });
    this.warned.delete(summary.id);
  }

  list(limit = HISTORY_LIST_DEFAULT): MigrationSummary[] {
    const max = Number.isFinite(limit) ? Math.max(0, Math.floor(limit)) : HISTORY_LIST_DEFAULT;
    const out: MigrationSummary[] = [];
    if (max === 0) return out;
    for (const row of this.selectList.iterate()) {
      if (!row.ok) {
        this.corrupt(row.id, 'a JSON column is not JSON');
        continue;
      }
      const s = parseJson(MigrationSummarySchema, row.summary, 'summary');
      if (!s.ok || s.value.id !== row.id) {
        this.corrupt(row.id, s.ok ? 'summary.id does not match the row' : s.why);
        continue;
      }
      out.push(s.value);
      if (out.length >= max) break;
    }
    return out;
  }

  get(id: string): HistoryRecord | null {
    const row = this.selectOne.get(id);
    return row ? this.read(row) : null;
  }

  markInterrupted(): number {
    let n = 0;
    this.db.transaction(() => {
      for (const row of this.selectLive.all()) {
        const rec = this.read(row);
        if (!rec) {
          // Corrupt (get() returns null for it). If list() can still show its summary, end
          // that; leave the rest as it is.
          const s = parseJson(MigrationSummarySchema, row.summary, 'summary');
          if (s.ok && s.value.id === row.id) {
            this.updateSummary.run({ id: row.id, state: 'failed', summary: JSON.stringify(interruptedSummary(s.value, s.value.startedAt)) });
            n++;
          }
          continue;
        }
        const { summary, snapshot, destination, timeline } = rec;
        let lastSeen = summary.startedAt;
        for (const e of timeline) if (e.time > lastSeen) lastSeen = e.time;
        const next = interruptedSummary(summary, lastSeen);
        const endedAt = next.endedAt!;
        const events = [
          ...interruptedEvents(snapshot, endedAt),
          ...(destination ? interruptedEvents(destination, endedAt) : []),
        ];
        this.updateInterrupted.run({
          id: row.id,
          state: next.state,
          summary: JSON.stringify(next),
          snapshot: JSON.stringify(interruptedSnapshot(snapshot, endedAt)),
          destination: destination ? JSON.stringify(interruptedSnapshot(destination, endedAt)) : null,
          timeline: JSON.stringify(boundTimeline([...timeline, ...events])),
        });
        n++;
      }
    }).immediate();
    return n;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  private read(row: Row): HistoryRecord | null {
    const summary = parseJson(MigrationSummarySchema, row.summary, 'summary');
    if (!summary.ok) return this.corrupt(row.id, summary.why);
    if (summary.value.id !== row.id) return this.corrupt(row.id, 'summary.id does not match the row');
    const config = parseJson(StartMigrationSchema, row.config, 'config');
    if (!config.ok) return this.corrupt(row.id, config.why);
    const snapshot = parseJson(MigrationSnapshotSchema, row.snapshot, 'snapshot');
    if (!snapshot.ok) return this.corrupt(row.id, snapshot.why);
    let destination: MigrationSnapshot | null = null;
    if (row.destination !== null) {
      const d = parseJson(MigrationSnapshotSchema, row.destination, 'destination snapshot');
      if (!d.ok) return this.corrupt(row.id, d.why);
      destination = d.value;
    }
    const timeline = parseTimeline(row.timeline);
    if (!timeline.ok) return this.corrupt(row.id, timeline.why);
    if (timeline.dropped > 0) {
      this.warnOnce(row.id, `history: migration ${row.id}: dropped ${timeline.dropped} invalid timeline event(s) in ${this.file}`);
    }
    return { summary: summary.value, config: config.value, snapshot: snapshot.value, destination, timeline: timeline.value };
  }

  private corrupt(id: string, why: string): null {
    this.warnOnce(id, `history: skipping corrupt migration ${id} in ${this.file}: ${why.slice(0, 500)}`);
    return null;
  }

  private warnOnce(id: string, message: string): void {
    if (this.warned.has(id)) return;
    this.warned.add(id);
    console.warn(message);
  }
}
