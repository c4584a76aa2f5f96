/**
 * What the live view knows about one migration, folded from its events. Mutable on purpose:
 * batches arrive several times a second with a snapshot of every channel (up to 255), so the
 * view keeps one model in a ref, applies events as they come, and re-renders on a timer when
 * `version` moved. Applying the same event twice, or a stale one, changes nothing, so a
 * subscribe reply's timeline and the batches around it can overlap safely.
 *
 * Pure: imports only contract types.
 */
import type { MigrationEvent, MigrationSnapshot, MigrationState, QemuFigures, Role } from '../../lib/contracts';
import type { MigrationDetail, MigrationSummary, StartMigration } from '../../lib/contracts/console';

export type EventOf<T extends MigrationEvent['type']> = Extract<MigrationEvent, { type: T }>;
export type RoundEvent = EventOf<'round'>;
export type SwitchoverEvent = EventOf<'switchover'>;
export type RejectionEvent = EventOf<'channel-rejected'>;
export type TerminalEvent = EventOf<'completed'> | EventOf<'failed'> | EventOf<'cancelled'>;
export type ChannelSnapshot = MigrationSnapshot['channels'][number];
export type SerializedError = NonNullable<MigrationSnapshot['error']>;

export const PAGE_SIZE = 4096;
/** Aggregate chart: samples kept. */
export const CHART_SAMPLES = 120;
/** Per-channel sparkline: samples kept. */
export const SPARK_SAMPLES = 60;
/** Above this many channels the chart shows the aggregate only, not one band per channel. */
export const STACK_MAX_CHANNELS = 16;

const TERMINAL: readonly MigrationState[] = ['completed', 'failed', 'cancelled'];
export const isTerminal = (s: MigrationState | null | undefined): boolean => !!s && TERMINAL.includes(s);

export interface Sample {
  t: number;
  /** bytes/s, the migration's sliding-window transfer rate */
  total: number;
  /** bytes/s per channel (by position), when the chart stacks channels */
  perChannel: number[] | null;
}

/** One QEMU as the console last heard it (QMP query-migrate), in QEMU mode. */
export interface QemuSide {
  /** where the console reached its QMP */
  qmp: string;
  figures: QemuFigures;
  /** the event's time; 0 when only a detail said it */
  time: number;
}

/**
 * QEMU mode: the two QEMUs, the relay between them, and each QEMU's own figures. The relay's
 * per-channel view is the model's snapshot (role 'relay'); these are QEMU's words beside it.
 */
export interface QemuView {
  sourceQmp: string | null;
  destinationQmp: string | null;
  /** HOST:PORT the relay listened on for the source QEMU; null once only history knows it */
  relay: string | null;
  recordDir: string | null;
  source: QemuSide | null;
  destination: QemuSide | null;
}

export interface PeerAccept {
  time: number;
  connection: number | null;
  peer: string | null;
}

export interface LiveModel {
  id: string;
  /** The side this console drives (source); the other side's snapshot is `peerSide`. */
  primary: Role;
  loaded: boolean;
  summary: MigrationSummary | null;
  config: StartMigration | null;
  snapshot: MigrationSnapshot | null;
  /** The embedded destination's view, when there is one. */
  peerSide: MigrationSnapshot | null;
  /** First time the primary side entered each state. */
  stateTimes: Partial<Record<MigrationState, number>>;
  rounds: Map<number, RoundEvent>;
  switchover: SwitchoverEvent | null;
  terminal: TerminalEvent | null;
  rejections: RejectionEvent[];
  /**
   * The other side's 'accepted' per channel id (the embedded destination's view): which
   * connection, from which address, it took as that channel. The diagnosis names the
   * connection a duplicate claim collided with from this.
   */
  peerAccepted: Map<number, PeerAccept>;
  /** QEMU mode only (else null): the QEMUs and what each says. */
  qemu: QemuView | null;
  samples: Sample[];
  /** channel id → its last SPARK_SAMPLES throughputs */
  spark: Map<number, number[]>;
  lastProgress: number;
  lastPeerProgress: number;
  /** Bumped on every change; the view re-renders when it moved. */
  version: number;
}

export function createModel(id: string): LiveModel {
  return {
    id,
    primary: 'source',
    loaded: false,
    summary: null,
    config: null,
    snapshot: null,
    peerSide: null,
    stateTimes: {},
    rounds: new Map(),
    switchover: null,
    terminal: null,
    rejections: [],
    peerAccepted: new Map(),
    qemu: null,
    samples: [],
    spark: new Map(),
    lastProgress: -Infinity,
    lastPeerProgress: -Infinity,
    version: 0,
  };
}

/** Replaces what the model knows with a detail and the timeline so far (in place). */
export function loadBase(m: LiveModel, detail: MigrationDetail, timeline: readonly MigrationEvent[]): void {
  const version = m.version;
  Object.assign(m, createModel(m.id));
  m.version = version + 1;
  m.primary = detail.snapshot.role;
  for (const ev of timeline) applyEvent(m, ev);
  // The detail was taken when the reply was: at least as new as the timeline's last snapshot.
  m.snapshot = detail.snapshot;
  m.peerSide = detail.destination ?? m.peerSide;
  m.summary = detail.summary;
  m.config = detail.config;
  if (detail.qemu) seedQemu(m, detail.qemu);
  m.loaded = true;
  if (detail.snapshot.startedAt) m.stateTimes.setup ??= detail.snapshot.startedAt;
}

export function applyEvents(m: LiveModel, events: readonly MigrationEvent[]): void {
  for (const ev of events) applyEvent(m, ev);
}

export function applyEvent(m: LiveModel, ev: MigrationEvent): void {
  const mine = ev.role === m.primary;
  switch (ev.type) {
    case 'state':
      if (mine) {
        m.stateTimes[ev.state] ??= ev.time;
        if (m.snapshot && ev.time >= m.lastProgress && m.snapshot.state !== ev.state) m.snapshot = { ...m.snapshot, state: ev.state };
      } else if (m.peerSide && ev.time >= m.lastPeerProgress && m.peerSide.state !== ev.state) {
        m.peerSide = { ...m.peerSide, state: ev.state };
      }
      break;
    case 'channel':
      // Fresher than the last snapshot until the next one arrives (a few per second).
      if (mine && m.snapshot && ev.time >= m.lastProgress) patchChannel(m, ev);
      else if (!mine && ev.state === 'accepted' && !m.peerAccepted.has(ev.channel)) {
        m.peerAccepted.set(ev.channel, { time: ev.time, connection: ev.connection, peer: ev.peer });
      }
      break;
    case 'channel-rejected': {
      const dup = m.rejections.some(
        (r) => r.time === ev.time && r.role === ev.role && r.code === ev.code && r.channel === ev.channel && r.peer === ev.peer,
      );
      if (!dup) m.rejections.push(ev);
      break;
    }
    case 'round':
      if (mine) m.rounds.set(ev.round, ev);
      break;
    case 'switchover':
      if (mine) m.switchover = ev;
      break;
    case 'progress':
      if (mine) {
        if (ev.time < m.lastProgress) return;
        m.lastProgress = ev.time;
        m.snapshot = ev.snapshot;
        addSample(m, ev.time, ev.snapshot);
      } else {
        if (ev.time < m.lastPeerProgress) return;
        m.lastPeerProgress = ev.time;
        m.peerSide = ev.snapshot;
      }
      break;
    case 'completed':
    case 'failed':
    case 'cancelled':
      if (mine) {
        m.terminal ??= ev;
        m.stateTimes[ev.type] ??= ev.time;
        if (m.snapshot && m.snapshot.state !== ev.type) m.snapshot = { ...m.snapshot, state: ev.type };
      }
      break;
    case 'qemu': {
      // Either side's figures, whichever role reported them: they are QEMU's, not a side's view.
      const q = (m.qemu ??= emptyQemu());
      const before = q[ev.side];
      if (before && ev.time < before.time) return;
      q[ev.side] = { qmp: ev.qmp, figures: ev.figures, time: ev.time };
      if (ev.side === 'source') q.sourceQmp ??= ev.qmp;
      else q.destinationQmp ??= ev.qmp;
      break;
    }
    case 'hello':
      break;
  }
  m.version++;
}

function emptyQemu(): QemuView {
  return { sourceQmp: null, destinationQmp: null, relay: null, recordDir: null, source: null, destination: null };
}

/**
 * The detail's QEMU part: the addresses (only it knows the relay's), and figures at least as
 * new as the timeline's last 'qemu' events (the server sends an event whenever they change).
 */
function seedQemu(m: LiveModel, d: NonNullable<MigrationDetail['qemu']>): void {
  const q = (m.qemu ??= emptyQemu());
  q.sourceQmp = d.sourceQmp || q.sourceQmp;
  q.destinationQmp = d.destinationQmp || q.destinationQmp;
  q.relay = d.relay ?? q.relay;
  q.recordDir = d.recordDir ?? q.recordDir;
  if (d.source) q.source = { qmp: q.sourceQmp ?? q.source?.qmp ?? '', figures: d.source, time: q.source?.time ?? 0 };
  if (d.destination) q.destination = { qmp: q.destinationQmp ?? q.destination?.qmp ?? '', figures: d.destination, time: q.destination?.time ?? 0 };
}

/** QEMU mode: the relay's view is this console's own (engine migrations are 'source'). */
export const isQemuMode = (m: LiveModel): boolean => m.primary === 'relay' || m.qemu !== null;

function patchChannel(m: LiveModel, ev: EventOf<'channel'>): void {
  const snap = m.snapshot!;
  const i = snap.channels.findIndex((c) => c.id === ev.channel);
  if (i < 0) return;
  const c = snap.channels[i];
  if (c.state === ev.state) return;
  const times = { ...c.times };
  if (ev.state === 'connecting') times.connecting ??= ev.time;
  else if (ev.state === 'handshake-sent') times.handshakeSent ??= ev.time;
  else if (ev.state === 'accepted') times.accepted ??= ev.time;
  else if (ev.state === 'rejected') times.rejected ??= ev.time;
  else if (ev.state === 'closed') times.closed ??= ev.time;
  const channels = snap.channels.slice();
  channels[i] = { ...c, state: ev.state, times, peer: c.peer ?? ev.peer };
  m.snapshot = { ...snap, channels };
}

function addSample(m: LiveModel, t: number, s: MigrationSnapshot): void {
  const last = m.samples[m.samples.length - 1];
  if (last && t <= last.t) return;
  m.samples.push({
    t,
    total: s.transferRate,
    perChannel: s.channels.length <= STACK_MAX_CHANNELS ? s.channels.map((c) => c.throughput) : null,
  });
  if (m.samples.length > CHART_SAMPLES) m.samples.splice(0, m.samples.length - CHART_SAMPLES);
  for (const c of s.channels) {
    let a = m.spark.get(c.id);
    if (!a) m.spark.set(c.id, (a = []));
    a.push(c.throughput);
    if (a.length > SPARK_SAMPLES) a.splice(0, a.length - SPARK_SAMPLES);
  }
}

// --- derived views ---------------------------------------------------------------------

/** Pages covered so far (sent or listed as zero), as bytes: never goes backwards. */
export function coveredBytes(s: MigrationSnapshot): number {
  let n = 0;
  for (const c of s.channels) n += c.pages + c.zeroPages;
  return n * PAGE_SIZE;
}

export interface RoundProgress {
  round: number;
  /** what the bar measures: this round's bytes covered out of this round's bytes */
  sent: number;
  total: number;
  fraction: number;
  /** `round 3 re-sends 12.0 MiB dirtied since round 2`, null in round 1 */
  resend: { round: number; bytes: number; since: number; final: boolean } | null;
}

export function roundProgress(m: LiveModel): RoundProgress | null {
  const s = m.snapshot;
  if (!s || s.round < 1) return null;
  const covered = coveredBytes(s);
  if (s.state === 'completed') return { round: s.round, sent: s.ramSize, total: s.ramSize, fraction: 1, resend: null };
  if (s.round === 1) {
    const total = s.ramSize;
    const sent = Math.min(covered, total);
    return { round: 1, sent, total, fraction: total > 0 ? sent / total : 0, resend: null };
  }
  let before = 0;
  for (const [k, r] of m.rounds) if (k < s.round) before += (r.pages + r.zeroPages) * PAGE_SIZE;
  const prev = m.rounds.get(s.round - 1);
  const final = m.switchover !== null && m.switchover.round === s.round - 1;
  const total = final ? m.switchover!.remaining : prev ? prev.dirtyPages * PAGE_SIZE : s.remaining;
  const sent = Math.max(0, Math.min(total, covered - before));
  return {
    round: s.round,
    sent,
    total,
    fraction: total > 0 ? sent / total : 1,
    resend: { round: s.round, bytes: total, since: s.round - 1, final },
  };
}

/**
 * QEMU mode's progress. The relay sees pages go by but not which are still to send, and has
 * no rounds: QEMU's own ram.total and ram.remaining (the source's) say how far it is, and
 * dirty-sync-count which pass it is in. Until QEMU said anything, the relay's page bytes.
 */
export interface QemuProgress {
  total: number;
  done: number;
  fraction: number;
  /** QEMU's ram.remaining: what the current pass still has to send; null until it says */
  remaining: number | null;
  /** QEMU's dirty-sync-count: 1 during the first pass over RAM */
  pass: number | null;
}

export function qemuProgress(m: LiveModel): QemuProgress | null {
  const s = m.snapshot;
  if (!s) return null;
  const src = m.qemu?.source?.figures ?? null;
  const total = src?.ramTotal ?? s.ramSize;
  const remaining = src?.remaining ?? null;
  const pass = src?.dirtySyncCount ?? null;
  if (s.state === 'completed') return { total, done: total, fraction: 1, remaining, pass };
  const done = Math.max(0, Math.min(total, remaining !== null ? total - remaining : s.pageBytes));
  return { total, done, fraction: total > 0 ? done / total : 0, remaining, pass };
}

export interface Eta {
  /** ms, null when it cannot be told */
  ms: number | null;
  left: number | null;
  rate: number;
  dirtyRate: number;
  ratio: number;
  /** 'later-pass': QEMU mode after its first pass, when what is left depends on a dirty rate the console does not see. */
  kind: 'setup' | 'copying' | 'not-converging' | 'no-rate' | 'switchover' | 'ended' | 'later-pass';
}

export function eta(m: LiveModel, progress: RoundProgress | null): Eta | null {
  const s = m.snapshot;
  if (!s) return null;
  if (isQemuMode(m)) return qemuEta(m, s);
  const base = { rate: s.transferRate, dirtyRate: s.dirtyRate, ratio: s.convergence };
  if (isTerminal(s.state) || s.state === 'cancelling') return { ...base, ms: null, left: null, kind: 'ended' };
  if (s.state === 'setup') return { ...base, ms: null, left: null, kind: 'setup' };
  if (s.state === 'switchover') return { ...base, ms: s.expectedDowntimeMs, left: progress ? progress.total - progress.sent : s.remaining, kind: 'switchover' };
  const left = progress ? Math.max(0, progress.total - progress.sent) : s.remaining;
  if (!(s.transferRate > 0)) return { ...base, ms: null, left, kind: 'no-rate' };
  if (s.round > 1 && s.convergence >= 1) return { ...base, ms: null, left, kind: 'not-converging' };
  // Each pass re-sends what the guest dirtied during the last: left × (1 + r + r² + …).
  const r = s.round > 1 ? Math.max(0, s.convergence) : 0;
  return { ...base, ms: ((left / s.transferRate) * 1000) / (1 - r), left, kind: 'copying' };
}

/**
 * QEMU mode: the relay measures the wire rate but not the guest's dirty rate, so an ETA is
 * told only during QEMU's first pass (what is left of it, at the relay's rate); after that what
 * QEMU re-sends depends on the guest, and no ETA is better than a wrong one.
 */
function qemuEta(m: LiveModel, s: MigrationSnapshot): Eta {
  const base = { rate: s.transferRate, dirtyRate: 0, ratio: 0 };
  const p = qemuProgress(m);
  const left = p?.remaining ?? null;
  if (isTerminal(s.state) || s.state === 'cancelling') return { ...base, ms: null, left: null, kind: 'ended' };
  if (s.state === 'setup') return { ...base, ms: null, left, kind: 'setup' };
  if (s.state === 'switchover') return { ...base, ms: null, left, kind: 'switchover' };
  if (left === null || !(s.transferRate > 0)) return { ...base, ms: null, left, kind: 'no-rate' };
  if ((p?.pass ?? 1) > 1) return { ...base, ms: null, left, kind: 'later-pass' };
  return { ...base, ms: (left / s.transferRate) * 1000, left, kind: 'copying' };
}

export type StepStatus = 'done' | 'current' | 'pending' | 'failed';
export interface PhaseStep {
  key: string;
  label: string;
  start: number | null;
  end: number | null;
  status: StepStatus;
  note: string | null;
}

/** setup ▸ round 1 ▸ … ▸ switchover ▸ completed|failed|cancelled, from state and round events. */
export function phaseSteps(m: LiveModel): PhaseStep[] {
  const s = m.snapshot;
  const st = m.stateTimes;
  const state = s?.state ?? null;
  const ended = isTerminal(state);
  const endTime = ended ? (st[state!] ?? s?.endedAt ?? null) : null;
  const steps: PhaseStep[] = [];
  const t0 = s?.startedAt ?? st.setup ?? null;
  steps.push({ key: 'setup', label: 'setup', start: t0, end: st.active ?? endTime, status: 'done', note: null });

  if (isQemuMode(m)) {
    // QEMU sends no round events, and the relay's sync count is not a round: one pre-copy
    // step, with QEMU's own pass count.
    if (st.active !== undefined) {
      const pass = m.qemu?.source?.figures.dirtySyncCount ?? null;
      steps.push({ key: 'precopy', label: 'pre-copy', start: st.active, end: st.switchover ?? st.cancelling ?? endTime, status: 'done', note: pass !== null ? `QEMU dirty sync ${pass}` : null });
    }
  } else {
    const rounds = [...m.rounds.values()].sort((a, b) => a.round - b.round);
    for (const r of rounds) {
      steps.push({ key: `round-${r.round}`, label: `round ${r.round}`, start: r.time - r.durationMs, end: r.time, status: 'done', note: null });
    }
    const lastRound = rounds.length ? rounds[rounds.length - 1].round : 0;
    if (st.active !== undefined && s && s.round > lastRound && st.switchover === undefined) {
      const start = rounds.length ? rounds[rounds.length - 1].time : st.active;
      steps.push({ key: `round-${s.round}`, label: `round ${s.round}`, start, end: st.cancelling ?? endTime, status: 'done', note: null });
    }
  }
  if (st.switchover !== undefined) {
    const note = m.switchover ? (m.switchover.reason === 'downtime' ? 'downtime under limit' : 'round limit') : null;
    steps.push({ key: 'switchover', label: 'switchover', start: st.switchover, end: st.cancelling ?? endTime, status: 'done', note });
  }
  if (st.cancelling !== undefined) {
    steps.push({ key: 'cancelling', label: 'cancelling', start: st.cancelling, end: endTime, status: 'done', note: null });
  }
  if (ended) {
    steps.push({ key: state!, label: state!, start: endTime, end: null, status: state === 'completed' ? 'done' : 'failed', note: null });
  } else {
    steps[steps.length - 1].status = 'current';
    if (st.switchover === undefined && st.cancelling === undefined) {
      steps.push({ key: 'switchover', label: 'switchover', start: null, end: null, status: 'pending', note: null });
    }
    steps.push({ key: 'completed', label: 'completed', start: null, end: null, status: 'pending', note: null });
  }
  return steps;
}

/** The migration's error: the snapshot's, else the terminal event's. */
export function failureOf(m: LiveModel): SerializedError | null {
  if (m.snapshot?.error) return m.snapshot.error;
  const t = m.terminal;
  if (t && t.type !== 'completed') {
    return {
      code: t.code,
      message: t.message,
      channel: t.channel,
      peer: t.peer,
      connection: t.connection,
      expected: t.expected,
      received: t.received,
      field: t.field,
      missing: t.missing,
    };
  }
  return null;
}

export const isChannelFailed = (c: ChannelSnapshot): boolean => c.state === 'failed' || c.state === 'rejected' || c.error !== null;
