/**
 * The migration registry: runs migrations through the engine for the console and the REST
 * API, keeps the guests this host runs, batches events for the browser, and writes history.
 *
 * An interface (DESIGN 9): in-process today, a job queue on a broker later. The engine knows
 * nothing of it.
 */
import { MigrationConfigSchema, type MigrationEvent } from '../lib/contracts';
import { TlsCredentialSets } from './tls-creds';
import {
  INJECT_KINDS,
  StartMigrationSchema,
  type EventBatch,
  type GuestSummary,
  type MigrationDetail,
  type MigrationSummary,
  type StartMigration,
  type StartQemuMigration,
  type CreateGuest,
  type AgentView,
} from '../lib/contracts/console';
import { randomBytes } from 'node:crypto';
import { BusyError, ConfigInvalidError, IdConflictError, type MigrationError } from '../lib/errors';
import { SourceMigration, parseFault, type Destination, type Fault, type FaultKind, type IncomingMigration } from '../lib/engine';
import { RELAY_FAULTS } from '../lib/qemu/relay';
import { Guest, formatWorkload, parseWorkload } from '../lib/guest';
import { Evacuations } from './evacuation';
import type { Fleet } from './fleet';
import { HistoryUnavailableError, type HistoryStore } from './history';
import { summaryFrom } from './summary';
import { QemuMigration, type QemuMigrationOptions } from './qemu-migration';

export interface MigrationRegistry {
  start(req: StartMigration): Promise<MigrationSummary>;
  /** QEMU mode: two running QEMUs driven over QMP, watched through the relay. */
  startQemu(req: StartQemuMigration): Promise<MigrationSummary>;
  /** A new running guest on this host, to migrate later. */
  createGuest(req: CreateGuest): Promise<GuestSummary>;
  cancel(id: string): Promise<MigrationSummary | null>;
  detail(id: string): MigrationDetail | null;
  timeline(id: string): MigrationEvent[] | null;
  list(): MigrationSummary[];
  guests(): GuestSummary[];
  stopGuest(uuid: string): Promise<GuestSummary | null>;
  /** Stops every guest here that is not migrating; returns the ones it stopped. */
  stopIdleGuests(): Promise<GuestSummary[]>;
  /** Batches of events per migration, a few a second. */
  onBatch(fn: (b: EventBatch) => void): () => void;
  /** Sends pending batches now (before a subscriber takes the timeline, so it sees no event twice). */
  flush(): void;
  /** The migration list, the guest list or the fleet's agents changed. */
  onChange(fn: (what: Change) => void): () => void;
  /** The fleet's agents ([] without a fleet). */
  agents(): AgentView[];
  /** The fleet, when this console has one. */
  readonly fleet: Fleet | null;
  /** Host evacuations (with the fleet). */
  readonly evacuations: Evacuations | null;
  /** The TLS credential sets a request may name (GET /api/tls). */
  readonly tls: TlsCredentialSets;
  close(): Promise<void>;
}

export type Change = 'migrations' | 'guests' | 'agents' | 'evacuations';

interface Hosted {
  guest: Guest;
  origin: 'created' | 'arrived';
  migrating: string | null;
}

interface Live {
  /** The secret its hello carries: only the incoming side that shows it is this migration's. */
  pairing: string;
  source: SourceMigration;
  config: StartMigration;
  destination: string;
  incoming: IncomingMigration | null;
  pending: MigrationEvent[];
}

/** A migration this host receives from elsewhere: only its destination side is here. */
interface IncomingLive {
  incoming: IncomingMigration;
  pending: MigrationEvent[];
}

interface QemuLive {
  migration: QemuMigration;
  request: StartQemuMigration;
  /** What the live view and history read as the config: the channel count and the faults. */
  config: StartMigration;
  pending: MigrationEvent[];
}

/** Browser updates: at most this often per migration, whatever the channel count. */
const BATCH_MS = 250;

export class LocalRegistry implements MigrationRegistry {
  private readonly hosted = new Map<string, Hosted>();
  private readonly live = new Map<string, Live>();
  private readonly qemuLive = new Map<string, QemuLive>();
  private readonly incomingLive = new Map<string, IncomingLive>();
  private readonly batchListeners = new Set<(b: EventBatch) => void>();
  private readonly changeListeners = new Set<(what: Change) => void>();
  fleet: Fleet | null = null;
  evacuations: Evacuations | null = null;
  private readonly flushTimer: NodeJS.Timeout;
  private readonly offMigration: () => void;

  constructor(
    private readonly history: HistoryStore,
    /** The embedded destination (loopback); `destination: 'embedded'` migrates to it. */
    private readonly embedded: Destination,
    /** QEMU mode's timeouts and where its recordings go. */
    private readonly qemuOptions: QemuMigrationOptions = {},
    /** The TLS credential sets the migrations this host starts may use (a request names one). */
    readonly tls: TlsCredentialSets = TlsCredentialSets.none(),
  ) {
    this.flushTimer = setInterval(() => this.flush(), BATCH_MS);
    this.offMigration = embedded.onMigration((m) => this.onIncoming(m));
    embedded.attachOwner({
      // A guest that runs here and is not leaving: a second copy would diverge from it.
      guestRunning: (uuid) => {
        const h = this.hosted.get(uuid);
        return h !== undefined && h.guest.state !== 'stopped' && h.migrating === null;
      },
      vetHello: (hello) => this.vetHello(hello),
    });
  }

  async start(req: StartMigration): Promise<MigrationSummary> {
    // Before anything is created: a refused fault starts nothing.
    const faults = parseFaults(req.inject, req.channels);
    let workload;
    try {
      workload = parseWorkload(req.workload);
    } catch (err) {
      throw new ConfigInvalidError((err as Error).message, { field: 'workload' });
    }
    const { port } = this.embedded.address;
    const destination = req.destination === 'embedded' ? `127.0.0.1:${port}` : req.destination;
    const pairing = randomBytes(16).toString('hex');
    const config = MigrationConfigSchema.parse({
      destination,
      pairing,
      channels: req.channels,
      maxBandwidth: req.maxBandwidth,
      downtimeLimitMs: req.downtimeLimitMs,
      roundLimit: req.roundLimit,
      setupTimeoutMs: req.setupTimeoutMs,
      compression: req.compression,
      compressionLevel: req.compressionLevel,
      tls: this.tls.resolve(req.tls),
    });
    const tlsFault = faults.find((f) => f.kind.startsWith('tls-'));
    if (tlsFault && !config.tls) {
      throw new ConfigInvalidError(`fault ch${tlsFault.channel}:${tlsFault.kind} needs a migration over TLS`, { field: 'inject', received: `ch${tlsFault.channel}:${tlsFault.kind}` });
    }
    let hosted: Hosted;
    if (req.guest) {
      const h = this.hosted.get(req.guest);
      if (!h || h.guest.state === 'stopped') {
        throw new ConfigInvalidError(`no running guest ${req.guest} on this host`, { field: 'guest', received: req.guest });
      }
      if (h.migrating) throw new BusyError(`guest ${req.guest} is already migrating (${h.migrating})`, { field: 'guest' });
      hosted = h;
    } else {
      const guest = await Guest.create({ ramSize: req.ramSize, fill: req.fill, workload });
      await guest.start();
      hosted = { guest, origin: 'created', migrating: null };
      this.hosted.set(guest.uuid, hosted);
    }
    const source = new SourceMigration(hosted.guest, { config, faults });
    const live: Live = { pairing, source, config: req, destination: req.destination === 'embedded' ? 'embedded' : destination, incoming: null, pending: [] };
    // The record first: a migration the history cannot keep is not started (a caller that
    // retries on the error starts no duplicate, and a restart finds every migration it ran).
    try {
      this.save(live);
    } catch (err) {
      if (!req.guest) await hosted.guest.stop().catch(() => {});
      if (!req.guest) this.hosted.delete(hosted.guest.uuid);
      throw new HistoryUnavailableError(`the migration was not started: its history record could not be written (${err instanceof Error ? err.message : String(err)})`);
    }
    this.live.set(source.id, live);
    hosted.migrating = source.id;
    source.events.on((e) => live.pending.push(e));
    source.start();
    void source.done.then(() => this.onSourceDone(live, hosted));
    this.changed('migrations');
    this.changed('guests');
    return this.summaryOf(live);
  }

  async createGuest(req: CreateGuest): Promise<GuestSummary> {
    let workload;
    try {
      workload = parseWorkload(req.workload);
    } catch (err) {
      throw new ConfigInvalidError((err as Error).message, { field: 'workload' });
    }
    const guest = await Guest.create({ name: req.name, ramSize: req.ramSize, fill: req.fill, workload });
    await guest.start();
    this.hosted.set(guest.uuid, { guest, origin: 'created', migrating: null });
    this.changed('guests');
    return this.guests().find((g) => g.uuid === guest.uuid)!;
  }

  async startQemu(req: StartQemuMigration): Promise<MigrationSummary> {
    const faults = parseFaults(req.inject, req.channels);
    for (const f of faults) {
      if (!RELAY_FAULTS.includes(f.kind)) {
        throw new ConfigInvalidError(`fault ch${f.channel}:${f.kind}: the relay injects ${RELAY_FAULTS.join(', ')} into QEMU's traffic`, { field: 'inject', received: f.kind });
      }
    }
    const migration = new QemuMigration(req, faults, this.qemuOptions);
    const config = StartMigrationSchema.parse({ destination: 'embedded', channels: req.channels, maxBandwidth: req.maxBandwidth, inject: req.inject });
    const live: QemuLive = { migration, request: req, config, pending: [] };
    migration.events.on((e) => live.pending.push(e));
    // Setup errors (QMP unreachable, QEMU refusing) go back to the caller; nothing is listed.
    await migration.start();
    this.qemuLive.set(migration.id, live);
    this.saveQemu(live);
    void migration.done.then(() => {
      this.flush();
      this.saveQemu(live);
      this.qemuLive.delete(migration.id);
      this.changed('migrations');
    });
    this.changed('migrations');
    return this.qemuSummary(live);
  }

  private onIncoming(m: IncomingMigration): void {
    const arrived = (r: { guest: Guest | null }) => {
      if (!r.guest) return;
      this.hosted.set(r.guest.uuid, { guest: r.guest, origin: 'arrived', migrating: null });
      this.changed('guests');
    };
    const live = this.live.get(m.id);
    // Ours only when it shows the pairing our source sent (vetHello refused any other claim).
    if (live && m.hello.pairing === live.pairing) {
      live.incoming = m;
      m.events.on((e) => live.pending.push(e));
      void m.done.then(arrived);
      return;
    }
    // A migration from another host into this one (an agent receiving, or a `multifd
    // migrate` aimed at the console): listed, streamed and kept like our own.
    const entry: IncomingLive = { incoming: m, pending: [] };
    this.incomingLive.set(m.id, entry);
    m.events.on((e) => entry.pending.push(e));
    this.saveIncoming(entry);
    this.changed('migrations');
    void m.done.then((r) => {
      arrived(r);
      this.flush();
      this.saveIncoming(entry);
      this.incomingLive.delete(m.id);
      this.changed('migrations');
    });
  }

  /**
   * A hello that claims the id of a migration this host knows (one it runs, or one in its
   * history) without that migration's pairing is refused: the migration port is not a way to
   * rewrite a record or take over a live view.
   */
  private vetHello(hello: { migrationId: string; pairing?: string }): MigrationError | null {
    const id = hello.migrationId;
    const live = this.live.get(id);
    if (live && hello.pairing === live.pairing) return null;
    if (live || this.incomingLive.has(id) || this.qemuLive.has(id) || this.history.get(id) !== null) {
      return new IdConflictError(`migration id ${id} is already taken here${live ? ', and the hello does not carry its pairing' : ''}`, {
        field: 'migrationId',
        expected: 'a migration id new to this host (or the pairing of the migration it names)',
        received: id,
      });
    }
    return null;
  }

  private async onSourceDone(live: Live, hosted: Hosted): Promise<void> {
    // The destination side settles on its own; give it a moment so history holds both.
    if (live.incoming) await Promise.race([live.incoming.done, new Promise((r) => setTimeout(r, 2000))]);
    hosted.migrating = null;
    if (hosted.guest.state === 'stopped' && this.hosted.get(hosted.guest.uuid) === hosted) this.hosted.delete(hosted.guest.uuid);
    this.flush();
    this.save(live);
    this.live.delete(live.source.id);
    this.changed('migrations');
    this.changed('guests');
  }

  async cancel(id: string): Promise<MigrationSummary | null> {
    if (this.fleet?.has(id)) return this.fleet.cancel(id);
    const inc = this.incomingLive.get(id);
    if (inc) {
      // The receiving side gives up: the source is told over the main channel and stops too.
      inc.incoming.cancel('cancelled by operator on the destination');
      return this.incomingSummary(inc);
    }
    const q = this.qemuLive.get(id);
    if (q) {
      await q.migration.cancel();
      return this.qemuSummary(q);
    }
    const live = this.live.get(id);
    if (live) {
      await live.source.cancel('cancelled by operator');
      return this.summaryOf(live);
    }
    return this.history.get(id)?.summary ?? null;
  }

  detail(id: string): MigrationDetail | null {
    const f = this.fleet?.detail(id);
    if (f) return f;
    const q = this.qemuLive.get(id);
    if (q) return this.qemuDetail(q);
    const inc = this.incomingLive.get(id);
    if (inc) return { summary: this.incomingSummary(inc), config: incomingConfig(inc), snapshot: inc.incoming.snapshot(), destination: null, qemu: null };
    const live = this.live.get(id);
    if (live) {
      return {
        summary: this.summaryOf(live),
        config: live.config,
        snapshot: live.source.snapshot(),
        destination: live.incoming?.snapshot() ?? null,
        qemu: null,
      };
    }
    const h = this.history.get(id);
    return h ? { summary: h.summary, config: h.config, snapshot: h.snapshot, destination: h.destination, qemu: qemuFromTimeline(h.timeline) } : null;
  }

  timeline(id: string): MigrationEvent[] | null {
    const f = this.fleet?.timeline(id);
    if (f) return f;
    const q = this.qemuLive.get(id);
    if (q) return [...q.migration.events.timeline];
    const inc = this.incomingLive.get(id);
    if (inc) return [...inc.incoming.events.timeline];
    const live = this.live.get(id);
    if (live) return this.mergedTimeline(live);
    return this.history.get(id)?.timeline ?? null;
  }

  list(): MigrationSummary[] {
    const live = [
      ...[...this.live.values()].map((l) => this.summaryOf(l)),
      ...[...this.qemuLive.values()].map((q) => this.qemuSummary(q)),
      ...[...this.incomingLive.values()].map((i) => this.incomingSummary(i)),
      ...(this.fleet?.summaries() ?? []),
    ];
    const ids = new Set(live.map((s) => s.id));
    const past = this.history.list().filter((s) => !ids.has(s.id));
    return [...live, ...past].sort((a, b) => b.startedAt - a.startedAt);
  }

  guests(): GuestSummary[] {
    return [...this.hosted.values()]
      .filter((h) => h.guest.state !== 'stopped')
      .map((h) => ({
        uuid: h.guest.uuid,
        name: h.guest.name,
        ramSize: h.guest.ramSize,
        state: h.guest.state,
        workload: formatWorkload(h.guest.workload),
        origin: h.origin,
        migrating: h.migrating,
      }));
  }

  async stopGuest(uuid: string): Promise<GuestSummary | null> {
    const h = this.hosted.get(uuid);
    if (!h) return null;
    if (h.migrating) throw new BusyError(`guest ${uuid} is migrating (${h.migrating}); cancel the migration first`);
    const summary = this.guests().find((g) => g.uuid === uuid) ?? null;
    await h.guest.stop();
    this.hosted.delete(uuid);
    this.changed('guests');
    return summary ? { ...summary, state: 'stopped' } : null;
  }

  async stopIdleGuests(): Promise<GuestSummary[]> {
    const idle = this.guests().filter((g) => g.migrating === null && g.state !== 'stopped');
    const stopped: GuestSummary[] = [];
    for (const g of idle) {
      const h = this.hosted.get(g.uuid);
      // One that began migrating meanwhile is left alone.
      if (!h || h.migrating) continue;
      await h.guest.stop();
      this.hosted.delete(g.uuid);
      stopped.push({ ...g, state: 'stopped' });
    }
    if (stopped.length) this.changed('guests');
    return stopped;
  }

  onBatch(fn: (b: EventBatch) => void): () => void {
    this.batchListeners.add(fn);
    return () => this.batchListeners.delete(fn);
  }

  /** Serves the fleet's migrations beside this host's, and keeps them in history when they end. */
  attachFleet(fleet: Fleet): void {
    this.fleet = fleet;
    fleet.onEnded((r) => {
      this.flush();
      this.history.save(r);
      this.changed('migrations');
    });
    fleet.onChange(() => this.changed('agents'));
    this.evacuations = new Evacuations(fleet);
    this.evacuations.onChange(() => this.changed('evacuations'));
  }

  agents(): AgentView[] {
    return this.fleet?.list() ?? [];
  }

  onChange(fn: (what: Change) => void): () => void {
    this.changeListeners.add(fn);
    return () => this.changeListeners.delete(fn);
  }

  async close(): Promise<void> {
    clearInterval(this.flushTimer);
    this.fleet?.close();
    this.offMigration();
    await Promise.all([...this.live.values()].map((l) => l.source.cancel('console shutting down')));
    // The relay lives in this process: without it QEMU's migration breaks anyway; cancel it cleanly.
    await Promise.all([...this.qemuLive.values()].map(async (q) => {
      await q.migration.cancel();
      await q.migration.done;
    }));
    await Promise.all([...this.hosted.values()].map((h) => h.guest.stop().catch(() => {})));
    this.hosted.clear();
  }

  // ---------------------------------------------------------------------------------------

  flush(): void {
    for (const [id, live] of [...this.live, ...this.qemuLive, ...this.incomingLive]) {
      if (live.pending.length === 0) continue;
      const events = live.pending.splice(0);
      for (const fn of this.batchListeners) fn({ id, events });
    }
    for (const b of this.fleet?.drain() ?? []) for (const fn of this.batchListeners) fn(b);
  }

  private changed(what: Change): void {
    for (const fn of this.changeListeners) fn(what);
  }

  private mergedTimeline(live: Live): MigrationEvent[] {
    const a = live.source.events.timeline;
    const b = live.incoming?.events.timeline ?? [];
    return [...a, ...b].sort((x, y) => x.time - y.time);
  }

  private save(live: Live): void {
    this.history.save({
      summary: this.summaryOf(live),
      config: live.config,
      snapshot: live.source.snapshot(),
      destination: live.incoming?.snapshot() ?? null,
      timeline: this.mergedTimeline(live),
    });
  }

  private qemuDetail(q: QemuLive): MigrationDetail {
    const m = q.migration;
    return {
      summary: this.qemuSummary(q),
      config: q.config,
      snapshot: m.snapshot(),
      destination: null,
      qemu: {
        sourceQmp: q.request.sourceQmp,
        destinationQmp: q.request.destinationQmp,
        relay: m.relayAddress,
        recordDir: m.recordDir,
        source: m.figures.source,
        destination: m.figures.destination,
      },
    };
  }

  private saveIncoming(i: IncomingLive): void {
    this.history.save({ summary: this.incomingSummary(i), config: incomingConfig(i), snapshot: i.incoming.snapshot(), destination: null, timeline: [...i.incoming.events.timeline] });
  }

  private incomingSummary(i: IncomingLive): MigrationSummary {
    return summaryFrom(i.incoming.snapshot(), { destination: 'this host', inject: [] });
  }

  private saveQemu(q: QemuLive): void {
    this.history.save({
      summary: this.qemuSummary(q),
      config: q.config,
      snapshot: q.migration.snapshot(),
      destination: null,
      timeline: [...q.migration.events.timeline],
    });
  }

  private qemuSummary(q: QemuLive): MigrationSummary {
    const s = q.migration.snapshot();
    return {
      ...summaryFrom(s, { destination: `QEMU ${q.request.destinationQmp}`, inject: q.request.inject }),
      channels: q.request.channels,
      // Completed: the whole RAM moved (zero pages too). Otherwise only the pages that did.
      throughput: s.totalTimeMs ? ((s.state === 'completed' ? s.ramSize : s.pageBytes) * 1000) / s.totalTimeMs : null,
    };
  }

  private summaryOf(live: Live): MigrationSummary {
    return summaryFrom(live.source.snapshot(), { destination: live.destination, inject: live.config.inject });
  }
}

// The fault lab offers no kind the engine does not know (checked when this compiles).
const _offered: readonly FaultKind[] = INJECT_KINDS.map((k) => k.kind);
void _offered;

/**
 * The fault lab's specs as the engine's faults (DESIGN 7.2): each parsed against the channel
 * count, at most one per channel. Refusals are ConfigInvalidError on field `inject`, naming
 * the spec (the API's 422 carries it under `fields.inject`).
 */
export function parseFaults(specs: readonly string[], channels: number): Fault[] {
  const faults: Fault[] = [];
  const byChannel = new Map<number, string>();
  for (const spec of specs) {
    let f: Fault;
    try {
      f = parseFault(spec, channels);
    } catch (err) {
      if (!(err instanceof ConfigInvalidError)) throw err;
      // The engine words it for the CLI's flag; here it is a fault of the form or the request.
      throw new ConfigInvalidError(err.message.replace(/^--inject /, 'fault '), { field: 'inject', received: spec });
    }
    const earlier = byChannel.get(f.channel);
    if (earlier !== undefined) {
      throw new ConfigInvalidError(`fault ${spec}: channel ${f.channel} already has a fault (${earlier}); at most one fault per channel`, {
        field: 'inject',
        received: spec,
      });
    }
    byChannel.set(f.channel, spec);
    faults.push(f);
  }
  return faults;
}

/** What a received migration's detail says was asked for: only the channel count is known here. */
function incomingConfig(i: IncomingLive): StartMigration {
  return StartMigrationSchema.parse({ channels: Math.max(1, i.incoming.channelCount) });
}

/** QEMU mode in history: the QMP addresses and QEMU's last word per side, from the timeline. */
function qemuFromTimeline(timeline: readonly MigrationEvent[]): MigrationDetail['qemu'] {
  let source: Extract<MigrationEvent, { type: 'qemu' }> | null = null;
  let destination: Extract<MigrationEvent, { type: 'qemu' }> | null = null;
  for (const e of timeline) {
    if (e.type !== 'qemu') continue;
    if (e.side === 'source') source = e;
    else destination = e;
  }
  if (!source && !destination) return null;
  return {
    sourceQmp: source?.qmp ?? '',
    destinationQmp: destination?.qmp ?? '',
    relay: source?.relay ?? destination?.relay ?? null,
    recordDir: source?.recordDir ?? destination?.recordDir ?? null,
    source: source?.figures ?? null,
    destination: destination?.figures ?? null,
  };
}
