/**
 * The console's view of the fleet: every agent it was given (address and token, kept in
 * AgentStore), each watched over its control API and socket.io, and the migrations the
 * console started between two of them.
 *
 * An agent is `up` while its socket is connected and it answered its last request, `down`
 * when it does not answer (no request waits longer than requestTimeoutMs), `unauthorized`
 * when it refuses the token. Nothing here waits on an agent that is down: lists show what
 * was last known, with the state that says how old it is.
 *
 * A fleet migration runs on its source agent (POST /api/migrations there, toward the
 * destination agent's migration address). The console subscribes to its room on both
 * agents and keeps a mirror: the source's detail and snapshot, the destination's
 * snapshot, both timelines merged. Its browser room gets both agents' batches, so the live
 * view shows both sides as it does for the embedded destination. When the source's side
 * ends, the final details are read from both agents and kept in the console's history.
 */
import { io as connect, type Socket } from 'socket.io-client';
import type { MigrationEvent, MigrationSnapshot } from '../lib/contracts';
import {
  StartMigrationSchema,
  type AgentView,
  type ClientToServerEvents,
  type EventBatch,
  type GuestSummary,
  type MigrationDetail,
  type MigrationSummary,
  type ServerToClientEvents,
  type StartFleetMigration,
  type SubscribeReply,
} from '../lib/contracts/console';
import { AgentDownError, BusyError, ConfigInvalidError } from '../lib/errors';
import { AgentStore, type AgentRecord } from './agent-store';
import { summaryFrom } from './summary';

export interface FleetOptions {
  /** No request to an agent waits longer. Default 5 s. */
  requestTimeoutMs?: number;
  /** After the source's side ended, how long the destination's may take. Default 2 s. */
  settleMs?: number;
}

interface AgentInfo {
  name: string;
  migrationAddress: string;
  version: number;
}

/** An agent's answer that is not 2xx. */
export class AgentHttpError extends Error {
  constructor(
    readonly agent: string,
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fields: Record<string, string[]> | null,
  ) {
    super(message);
  }
}

/** One agent: its REST client, its socket, what it last said. */
class AgentClient {
  state: AgentView['state'] = 'connecting';
  error: string | null = null;
  lastSeen: number | null = null;
  info: AgentInfo | null = null;
  guests: GuestSummary[] = [];
  migrations: MigrationSummary[] = [];
  readonly socket: Socket<ServerToClientEvents, ClientToServerEvents>;

  constructor(
    readonly rec: AgentRecord,
    private readonly fleet: Fleet,
    private readonly timeoutMs: number,
  ) {
    this.socket = connect(rec.url, {
      transports: ['websocket'],
      auth: { token: rec.token },
      reconnectionDelay: 500,
      reconnectionDelayMax: 5000,
      timeout: timeoutMs,
    });
    this.socket.on('connect', () => void this.refresh());
    this.socket.on('disconnect', (reason) => this.setState('down', `disconnected (${reason})`));
    this.socket.on('connect_error', (err) => {
      if (/unauthorized/i.test(err.message)) this.setState('unauthorized', 'the agent refused the token');
      else this.setState('down', `cannot reach ${rec.url}: ${err.message}`);
    });
    this.socket.on('guests:changed', (list) => {
      this.guests = list;
      this.fleet.agentChanged();
    });
    this.socket.on('migrations:changed', (list) => {
      this.migrations = list;
      this.fleet.agentMigrations(this);
      this.fleet.agentChanged();
    });
    this.socket.on('migration:events', (b) => this.fleet.onAgentBatch(this, b));
  }

  get name(): string {
    return this.rec.name;
  }

  async request<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(this.rec.url.replace(/\/$/, '') + path, {
        method,
        headers: { authorization: `Bearer ${this.rec.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      const why = (err as Error).name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms` : ((err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message);
      this.setState('down', `cannot reach ${this.rec.url}: ${why}`);
      throw new AgentHttpError(this.name, 0, 'AGENT_DOWN', `agent ${this.name} (${this.rec.url}) is down: ${why}`, null);
    }
    const json = (await res.json().catch(() => ({}))) as { code?: string; message?: string; fields?: Record<string, string[]> };
    if (res.status === 401) {
      this.setState('unauthorized', 'the agent refused the token');
      throw new AgentHttpError(this.name, 401, 'AGENT_UNAUTHORIZED', `agent ${this.name} refused the console's token`, null);
    }
    this.lastSeen = Date.now();
    // It answered: a timeout a moment ago was load, not death.
    if (this.state === 'down' && this.socket.connected) this.setState('up', null);
    if (!res.ok) throw new AgentHttpError(this.name, res.status, json.code ?? `HTTP_${res.status}`, `agent ${this.name}: ${json.message ?? res.statusText}`, json.fields ?? null);
    return json as T;
  }

  async refresh(): Promise<void> {
    try {
      const [info, guests, migrations] = await Promise.all([
        this.request<AgentInfo>('GET', '/api/agent'),
        this.request<{ guests: GuestSummary[] }>('GET', '/api/guests'),
        this.request<{ migrations: MigrationSummary[] }>('GET', '/api/migrations'),
      ]);
      this.info = info;
      this.guests = guests.guests;
      this.migrations = migrations.migrations;
      // Answering REST while its event stream is still being set up: connecting, not down.
      if (this.socket.connected) this.setState('up', null);
      else this.setState(this.state === 'down' ? 'down' : 'connecting', this.state === 'down' ? 'its event stream is not connected' : null);
      this.fleet.agentUp(this);
    } catch {
      // request() has set the state and the reason
    }
  }

  subscribe(id: string): Promise<SubscribeReply> {
    return new Promise((resolve) => {
      this.socket.timeout(this.timeoutMs).emit('migration:subscribe', id, (err: Error | null, reply: SubscribeReply) => {
        resolve(err ? { ok: false, code: 'AGENT_DOWN', message: `agent ${this.name}: ${err.message}` } : reply);
      });
    });
  }

  view(): AgentView {
    return {
      name: this.name,
      url: this.rec.url,
      state: this.state,
      error: this.error,
      lastSeen: this.lastSeen,
      migrationAddress: reachable(this.info?.migrationAddress, this.rec.url) ?? null,
      guests: this.guests,
      inFlight: this.migrations.filter((m) => !['completed', 'failed', 'cancelled'].includes(m.state)).length,
    };
  }

  private setState(state: AgentView['state'], error: string | null): void {
    if (state === 'up') this.lastSeen = Date.now();
    if (this.state === state && this.error === error) return;
    this.state = state;
    this.error = error;
    this.fleet.agentChanged();
  }

  close(): void {
    this.socket.removeAllListeners();
    this.socket.close();
  }
}

/** A migration between two agents, as the console mirrors it. */
interface FleetLive {
  id: string;
  request: StartFleetMigration;
  source: AgentClient;
  destination: AgentClient;
  summary: MigrationSummary;
  snapshot: MigrationSnapshot;
  destinationSnapshot: MigrationSnapshot | null;
  timeline: MigrationEvent[];
  /** Event keys already in the timeline: a subscribe reply and batches may overlap. */
  seen: Set<string>;
  pending: MigrationEvent[];
  ending: boolean;
  /** Joined the migration's room on each agent (the destination's exists only once the hello arrived). */
  joined: { source: boolean; destination: boolean };
  /** Started when the source agent went down mid-migration. */
  lostTimer: NodeJS.Timeout | null;
  /** When the last event came from either agent (the watchdog polls a quiet one). */
  lastEventAt: number;
}

/** What history keeps of a fleet migration (HistoryRecord's shape). */
export interface FleetRecord {
  summary: MigrationSummary;
  config: MigrationDetail['config'];
  snapshot: MigrationSnapshot;
  destination: MigrationSnapshot | null;
  timeline: MigrationEvent[];
}

const TIMELINE_MAX = 20_000;
/** What a migration fails with when the other side's host vanished. */
const LOST_CODES = new Set(['MIGRATION_MAIN_CLOSED', 'MIGRATION_CHANNEL_CLOSED', 'MIGRATION_CHANNEL_STALLED', 'MIGRATION_CONNECT_FAILED', 'MIGRATION_VERIFY_TIMEOUT', 'MIGRATION_CHANNEL_SETUP_TIMEOUT', 'MIGRATION_REMOTE_FAILED']);
/** How often the watchdog looks at migrations in flight. */
const WATCH_MS = 2000;
/** A migration quiet this long is asked where it stands (events may have been lost under load). */
const QUIET_MS = 5000;
/** A source agent gone this long while its migration was in flight: the console calls it failed. */
const SOURCE_LOST_MS = 10_000;
const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

export class Fleet {
  readonly #store: AgentStore;
  readonly #agents = new Map<string, AgentClient>();
  readonly #live = new Map<string, FleetLive>();
  readonly #opts: Required<FleetOptions>;
  readonly #changed = new Set<() => void>();
  readonly #ended = new Set<(r: FleetRecord) => void>();
  #closed = false;
  readonly #watchdog: NodeJS.Timeout;
  /** A watchdog run is under way (one can outlast WATCH_MS: it waits on slow agents). */
  #watching = false;

  constructor(dataDir: string, opts: FleetOptions = {}) {
    this.#store = new AgentStore(dataDir);
    this.#opts = { requestTimeoutMs: opts.requestTimeoutMs ?? 5000, settleMs: opts.settleMs ?? 2000 };
    this.#watchdog = setInterval(() => void this.#watch(), WATCH_MS);
    this.#watchdog.unref();
    for (const rec of this.#store.load()) this.#agents.set(rec.name, new AgentClient(rec, this, this.#opts.requestTimeoutMs));
  }

  /** Agents, their health or guests changed (for 'agents:changed'). */
  onChange(fn: () => void): () => void {
    this.#changed.add(fn);
    return () => this.#changed.delete(fn);
  }

  /** A fleet migration ended: its final record, for history. */
  onEnded(fn: (r: FleetRecord) => void): () => void {
    this.#ended.add(fn);
    return () => this.#ended.delete(fn);
  }

  list(): AgentView[] {
    return [...this.#agents.values()].map((a) => a.view()).sort((x, y) => x.name.localeCompare(y.name));
  }

  /**
   * Adds an agent after asking it who it is with the token: a wrong token or an address
   * nobody answers is refused on its field, and nothing is stored.
   */
  async add(req: { url: string; token: string; name?: string }): Promise<AgentView> {
    const url = req.url.replace(/\/$/, '');
    const probe = new AgentClient({ name: req.name ?? url, url, token: req.token, addedAt: Date.now() }, this, this.#opts.requestTimeoutMs);
    let info: AgentInfo;
    try {
      info = await probe.request<AgentInfo>('GET', '/api/agent');
    } catch (err) {
      const e = err as AgentHttpError;
      throw new ConfigInvalidError(e.message, { field: e.code === 'AGENT_UNAUTHORIZED' ? 'token' : 'url', received: url });
    } finally {
      probe.close();
    }
    const name = req.name ?? info.name;
    if (this.#agents.has(name)) throw new ConfigInvalidError(`an agent named ${name} is already in the fleet`, { field: 'name', received: name });
    const rec: AgentRecord = { name, url, token: req.token, addedAt: Date.now() };
    this.#store.save([...[...this.#agents.values()].map((a) => a.rec), rec]);
    const client = new AgentClient(rec, this, this.#opts.requestTimeoutMs);
    this.#agents.set(name, client);
    await client.refresh();
    this.agentChanged();
    return client.view();
  }

  /** False when there is no such agent; refused while a fleet migration of it is in flight (its mirror needs its socket). */
  remove(name: string): boolean {
    const a = this.#agents.get(name);
    if (!a) return false;
    const busy = [...this.#live.values()].find((l) => l.source === a || l.destination === a);
    if (busy) throw new BusyError(`agent ${name} has a fleet migration in flight (${busy.id}); wait for it or cancel it first`, { field: 'name' });
    a.close();
    this.#agents.delete(name);
    this.#store.save([...this.#agents.values()].map((x) => x.rec));
    this.agentChanged();
    return true;
  }

  agent(name: string): AgentClient | undefined {
    return this.#agents.get(name);
  }

  /** A new guest on an agent. */
  async createGuest(agentName: string, body: unknown): Promise<GuestSummary> {
    return this.#require(agentName, 'agent').request<GuestSummary>('POST', '/api/guests', body);
  }

  /** Starts the migration on the source agent, toward the destination agent's migration address. */
  async start(req: StartFleetMigration): Promise<MigrationSummary> {
    const source = this.#require(req.sourceAgent, 'sourceAgent');
    const destination = this.#require(req.destinationAgent, 'destinationAgent');
    if (!destination.info) await destination.refresh();
    const address = reachable(destination.info?.migrationAddress, destination.rec.url);
    if (!address || destination.state !== 'up') {
      throw new ConfigInvalidError(`agent ${destination.name} is ${destination.state}${destination.error ? `: ${destination.error}` : ''}`, { field: 'destinationAgent', received: destination.name });
    }
    if (source.state !== 'up') {
      throw new ConfigInvalidError(`agent ${source.name} is ${source.state}${source.error ? `: ${source.error}` : ''}`, { field: 'sourceAgent', received: source.name });
    }
    const { sourceAgent: _s, destinationAgent: _d, ...rest } = req;
    void _s;
    void _d;
    const summary = await source.request<MigrationSummary>('POST', '/api/migrations', { ...rest, destination: address });
    const live: FleetLive = {
      id: summary.id,
      request: req,
      source,
      destination,
      summary: this.#fleetSummary(summary, source, destination),
      snapshot: emptySnapshot(summary),
      destinationSnapshot: null,
      timeline: [],
      seen: new Set(),
      pending: [],
      ending: false,
      joined: { source: false, destination: false },
      lostTimer: null,
      lastEventAt: Date.now(),
    };
    this.#live.set(live.id, live);
    await Promise.all([this.#join(live, 'source'), this.#join(live, 'destination')]);
    // Where it stands now: it may even have ended (and gone to history) during the joins.
    return this.#summaryNow(live);
  }

  has(id: string): boolean {
    return this.#live.has(id);
  }

  /** Fleet migrations not yet ended: in all, out of each agent, into each agent. */
  inFlight(): { total: number; bySource: Map<string, number>; byDestination: Map<string, number> } {
    const bySource = new Map<string, number>();
    const byDestination = new Map<string, number>();
    for (const l of this.#live.values()) {
      bySource.set(l.source.name, (bySource.get(l.source.name) ?? 0) + 1);
      byDestination.set(l.destination.name, (byDestination.get(l.destination.name) ?? 0) + 1);
    }
    return { total: this.#live.size, bySource, byDestination };
  }

  detail(id: string): MigrationDetail | null {
    const l = this.#live.get(id);
    if (!l) return null;
    return { summary: this.#summaryNow(l), config: configOf(l.request), snapshot: this.#named(l, l.snapshot), destination: l.destinationSnapshot, qemu: null };
  }

  timeline(id: string): MigrationEvent[] | null {
    const l = this.#live.get(id);
    return l ? [...l.timeline] : null;
  }

  summaries(): MigrationSummary[] {
    return [...this.#live.values()].map((l) => this.#summaryNow(l));
  }

  async cancel(id: string): Promise<MigrationSummary | null> {
    const l = this.#live.get(id);
    if (!l) return null;
    await l.source.request('POST', `/api/migrations/${encodeURIComponent(id)}/cancel`);
    return this.#summaryNow(l);
  }

  /** Pending events of every fleet migration, for the console's batches. */
  drain(): EventBatch[] {
    const out: EventBatch[] = [];
    for (const l of this.#live.values()) if (l.pending.length) out.push({ id: l.id, events: l.pending.splice(0) });
    return out;
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#watchdog);
    for (const l of this.#live.values()) if (l.lostTimer) clearTimeout(l.lostTimer);
    for (const a of this.#agents.values()) a.close();
  }

  // --- from the agents -------------------------------------------------------------------

  agentChanged(): void {
    for (const l of this.#live.values()) this.#watchSource(l);
    for (const fn of this.#changed) fn();
  }

  /**
   * A source agent that went down takes its side of the story with it: no terminal event
   * will come. The migration ends failed, naming it, once the destination has given up or
   * after SOURCE_LOST_MS.
   */
  #watchSource(l: FleetLive): void {
    if (l.ending || l.source.socket.connected || l.source.state === 'connecting') {
      if (l.lostTimer) clearTimeout(l.lostTimer);
      l.lostTimer = null;
      return;
    }
    const lost = () => {
      if (l.ending || l.source.socket.connected) return;
      const err = new AgentDownError(`source agent ${l.source.name} (${l.source.rec.url}) went down during the migration${l.source.error ? ` (${l.source.error})` : ''}; the guest is where that host left it`, {
        field: 'agent', expected: `agent ${l.source.name} up`, received: `${l.source.name} ${l.source.state}`,
      }).toJSON();
      const now = Date.now();
      const previous = l.snapshot.state;
      l.snapshot = { ...l.snapshot, state: 'failed', endedAt: now, totalTimeMs: now - l.snapshot.startedAt, error: err };
      // The console's conclusion, told to the live view as the source's side would have.
      const base = { time: now, role: 'source' as const, migration: { id: l.id, uuid: l.snapshot.uuid } };
      // Ended as lost first: the 'failed' below would otherwise start an ordinary end, which
      // asks the lost source and takes whatever it last said (even 'active') for the end.
      void this.#end(l, true);
      this.#take(l, [
        { ...base, type: 'state', state: 'failed', previous },
        { ...base, type: 'failed', ...err },
        { ...base, type: 'progress', snapshot: l.snapshot },
      ]);
    };
    // Given up: failed or cancelled. A destination that completed holds the guest; its source
    // may well come back to say so, so that case waits like any other.
    if (l.destinationSnapshot && (l.destinationSnapshot.state === 'failed' || l.destinationSnapshot.state === 'cancelled')) lost();
    else l.lostTimer ??= setTimeout(lost, SOURCE_LOST_MS);
  }

  agentUp(a: AgentClient): void {
    // After a reconnect, the rooms of migrations in flight are joined again.
    for (const l of this.#live.values()) {
      if (l.source === a) void this.#join(l, 'source');
      if (l.destination === a) void this.#join(l, 'destination');
    }
    this.agentChanged();
  }

  /** An agent's migration list changed: a destination that now knows a migration is joined. */
  agentMigrations(a: AgentClient): void {
    for (const l of this.#live.values()) {
      if (l.destination === a && !l.joined.destination && a.migrations.some((m) => m.id === l.id)) void this.#join(l, 'destination');
    }
  }

  /**
   * Under load a subscribe can time out, and then no event of that side ever comes. Rooms
   * not joined are joined again; a migration quiet for QUIET_MS is asked over REST where it
   * stands, and ended if its source says it has.
   */
  async #watch(): Promise<void> {
    // Not two runs at once: they would ask an agent that is already slow the same things again.
    if (this.#watching) return;
    this.#watching = true;
    try {
      // One slow answer marked it down; its stream still up says otherwise: ask again.
      for (const a of this.#agents.values()) if (a.state === 'down' && a.socket.connected) void a.refresh();
      for (const l of [...this.#live.values()]) {
        if (l.ending) continue;
        if (!l.joined.source && l.source.state === 'up') await this.#join(l, 'source');
        if (!l.joined.destination && l.destination.state === 'up' && l.destination.migrations.some((m) => m.id === l.id)) await this.#join(l, 'destination');
        if (Date.now() - l.lastEventAt < QUIET_MS || l.source.state !== 'up') continue;
        const d = await l.source.request<MigrationDetail>('GET', `/api/migrations/${encodeURIComponent(l.id)}`).catch(() => null);
        if (!d || l.ending) continue;
        l.lastEventAt = Date.now();
        l.snapshot = d.snapshot;
        if (TERMINAL.has(d.snapshot.state)) void this.#end(l);
      }
    } finally {
      this.#watching = false;
    }
  }

  /** Joins the migration's room on one side; its reply's detail and timeline fill the mirror. */
  async #join(l: FleetLive, side: 'source' | 'destination'): Promise<void> {
    const r = await l[side].subscribe(l.id);
    if (!r.ok) return;
    l.joined[side] = true;
    if (side === 'source') l.snapshot = r.detail.snapshot;
    else l.destinationSnapshot = r.detail.snapshot;
    this.#take(l, r.timeline);
    if (side === 'source' && TERMINAL.has(l.snapshot.state)) void this.#end(l);
  }

  onAgentBatch(a: AgentClient, b: EventBatch): void {
    const l = this.#live.get(b.id);
    if (!l || (a !== l.source && a !== l.destination)) return;
    this.#take(l, b.events);
  }

  #take(l: FleetLive, events: readonly MigrationEvent[]): void {
    for (const e of events) {
      // The whole event: two of a kind in one millisecond (channels 1 and 2 connecting) are two.
      // A progress event is the snapshot at that moment: one per side per millisecond is enough.
      const key = e.type === 'progress' ? `${e.role}:progress:${e.time}` : JSON.stringify(e);
      if (l.seen.has(key)) continue;
      l.seen.add(key);
      l.lastEventAt = Date.now();
      if (l.timeline.length < TIMELINE_MAX || e.type !== 'progress') l.timeline.push(e);
      l.pending.push(e);
      if (e.type === 'progress') {
        if (e.role === 'source') l.snapshot = e.snapshot;
        else if (e.role === 'destination') l.destinationSnapshot = e.snapshot;
      }
      if (e.role === 'source' && (e.type === 'completed' || e.type === 'failed' || e.type === 'cancelled')) void this.#end(l);
      // The destination's end (its snapshot says which) may be what a lost source waits for.
      if (e.role === 'destination' && (TERMINAL.has(e.type) || (e.type === 'progress' && TERMINAL.has(e.snapshot.state)))) this.#watchSource(l);
    }
  }

  /** The source's side ended: final details from both agents, then history. */
  async #end(l: FleetLive, sourceLost = false): Promise<void> {
    if (l.ending) return;
    l.ending = true;
    if (l.lostTimer) clearTimeout(l.lostTimer);
    await new Promise((r) => setTimeout(r, sourceLost ? 0 : this.#opts.settleMs));
    const [s, d] = await Promise.all([
      sourceLost ? null : l.source.request<MigrationDetail>('GET', `/api/migrations/${encodeURIComponent(l.id)}`).catch(() => null),
      l.destination.request<MigrationDetail>('GET', `/api/migrations/${encodeURIComponent(l.id)}`).catch(() => null),
    ]);
    if (s) l.snapshot = s.snapshot;
    if (d) l.destinationSnapshot = d.snapshot;
    l.snapshot = this.#named(l, l.snapshot);
    l.timeline.sort((x, y) => x.time - y.time);
    if (this.#closed) return; // the console is shutting down: its history is closed
    const record: FleetRecord = { summary: this.#summaryNow(l), config: configOf(l.request), snapshot: l.snapshot, destination: l.destinationSnapshot, timeline: l.timeline };
    for (const fn of this.#ended) fn(record);
    this.#live.delete(l.id);
    this.agentChanged();
  }

  #require(name: string, field: string): AgentClient {
    const a = this.#agents.get(name);
    if (!a) throw new ConfigInvalidError(`no agent named ${name} in the fleet`, { field, received: name });
    return a;
  }

  #fleetSummary(s: MigrationSummary, source: AgentClient, destination: AgentClient): MigrationSummary {
    return { ...s, destination: `${destination.name} (${destination.info?.migrationAddress ?? '?'})`, agents: { source: source.name, destination: destination.name } };
  }

  /**
   * A failure while one of the two agents is down is that agent's doing: the engine only saw
   * a connection close. Named here, the code MIGRATION_AGENT_DOWN, the engine's words kept.
   */
  #named(l: FleetLive, s: MigrationSnapshot): MigrationSnapshot {
    const err = s.error;
    if (s.state !== 'failed' || !err || err.code === 'MIGRATION_AGENT_DOWN') return s;
    // Gone means its event stream dropped too, not one slow answer under load.
    const down = [l.destination, l.source].find((a) => !a.socket.connected);
    if (!down || !LOST_CODES.has(err.code)) return s;
    const role = down === l.destination ? 'destination' : 'source';
    const named = new AgentDownError(
      `${role} agent ${down.name} (${down.rec.url}) went down during the migration${down.error ? ` (${down.error})` : ''}; the ${role === 'destination' ? 'source' : 'destination'} saw: ${err.code}: ${err.message}`,
      { channel: err.channel, peer: err.peer, connection: err.connection, field: 'agent', expected: `agent ${down.name} up`, received: `${down.name} ${down.state}` },
    ).toJSON();
    return { ...s, error: named };
  }

  #summaryNow(l: FleetLive): MigrationSummary {
    const s = this.#named(l, l.snapshot);
    // What was asked (destination, agents, faults) from the start; where it stands from the snapshot.
    return {
      ...summaryFrom(s, { destination: l.summary.destination, inject: l.summary.inject, agents: l.summary.agents }),
      uuid: s.uuid ?? l.summary.uuid,
      startedAt: l.summary.startedAt,
      channels: l.summary.channels,
    };
  }
}

/**
 * An agent listening on every address (0.0.0.0, ::) reports that as its migration address;
 * its peers reach it where the console does: the host of its control URL, its migration port.
 */
export function reachable(migrationAddress: string | undefined, controlUrl: string): string | undefined {
  if (!migrationAddress) return undefined;
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(migrationAddress);
  if (!m || !['0.0.0.0', '[::]', '::'].includes(m[1])) return migrationAddress;
  return `${new URL(controlUrl).host.replace(/:\d+$/, '')}:${m[2]}`;
}

function configOf(req: StartFleetMigration): MigrationDetail['config'] {
  const { sourceAgent: _s, destinationAgent: _d, ...rest } = req;
  void _s;
  void _d;
  return StartMigrationSchema.parse({ ...rest, destination: 'embedded' });
}

function emptySnapshot(s: MigrationSummary): MigrationSnapshot {
  return {
    id: s.id, uuid: s.uuid, role: 'source', state: s.state, peer: null, channelCount: s.channels, round: 0, ramSize: s.ramSize,
    transferred: 0, pageBytes: 0, remaining: 0, dirtyRate: 0, transferRate: 0, convergence: 0, expectedDowntimeMs: 0,
    throttlePct: null, downtimeMs: null, setupTimeMs: null, totalTimeMs: null, startedAt: s.startedAt, endedAt: null,
    switchoverReason: null, digest: null, verified: false, channels: [], error: null,
  };
}

