/**
 * The diagnosis of a failed or struggling migration (issue 4, DESIGN 3.5 and 10), derived
 * from what both sides reported: the destination's rejections ('channel-rejected' with code,
 * claimed channel, peer, connection, expected, received), its 'accepted' per channel, the
 * failure (with `missing` for a setup timeout), and the source's channel snapshots (handshake
 * times, `slow`). One pass over the channels and one over the rejections: cheap enough to run
 * once per render tick for 255 channels.
 *
 * Pure: imports only contract types and the console's own pure helpers.
 */
import type { ErrorCode } from '../../lib/errors';
import { likelyCause } from './causes';
import { comparable } from './diff';
import { formatOffset } from './format';
import { failureOf, isTerminal, type ChannelSnapshot, type LiveModel, type RejectionEvent, type SerializedError } from './live-model';

/** A connection as the destination numbered it, and the source channel that opened it when known. */
export interface Endpoint {
  peer: string | null;
  connection: number | null;
  /** the source's channel id that opened this connection, when the data tells */
  source: number | null;
}

export interface UuidMismatch {
  key: string;
  /** the source channel that sent it (null: the main channel, or unknown) */
  channel: number | null;
  /** the id the connection claimed (null: the main channel's hello) */
  claimed: number | null;
  peer: string | null;
  connection: number | null;
  expected: string;
  received: string;
}

export interface DuplicateClaim {
  channel: number;
  /** the connection the destination took as this channel */
  accepted: Endpoint | null;
  /** the other claims: refused by the destination, or ours when another was taken first */
  others: Endpoint[];
}

export interface OutOfRangeClaim {
  key: string;
  /** the source channel that sent it, when known */
  channel: number | null;
  claimed: string;
  range: string;
  peer: string | null;
  connection: number | null;
}

export interface Straggler {
  channel: number;
  round: number;
}

/** What a retry changes to fix the cause: a channel count, or no fault-lab faults. */
export interface Fix {
  channels?: number;
  /** drop the fault lab's faults */
  clearFaults?: boolean;
  /** how the retry button says it */
  label: string;
}

export interface Diagnosis {
  /** One line: what most likely went wrong, as specific as the data allows. */
  cause: string;
  /** What the operator can do about it, when the code and its fields tell; null otherwise. */
  advice: string | null;
  /** A retry that applies the fix, when the console can make it (null: none). */
  fix: Fix | null;
  /** The fault-lab spec the cause points at, when the failure was injected. */
  injected: string | null;
  uuid: UuidMismatch[];
  duplicates: DuplicateClaim[];
  missing: number[];
  outOfRange: OutOfRangeClaim[];
  stragglers: Straggler[];
  /** Distinct rejections (each reported once, however many sides relayed it). */
  rejections: RejectionEvent[];
  /** Source channel ids the diagnosis points at, in order: their handshake lines are shown. */
  channels: number[];
  /** What the destination did with each of those channels' connections, when it said. */
  destinationSaw: Map<number, string>;
  /**
   * Who checked the handshakes and refused connections: the destination, or in QEMU mode the
   * console's relay (it checks each handshake as it forwards it; the refusals are its own).
   */
  seenBy: 'destination' | 'relay';
}

/** `MIGRATION_CHANNEL_UUID_MISMATCH` → `UUID MISMATCH`, as the channel grid's handshake column reads. */
export function shortCode(code: string): string {
  return code.replace(/^MIGRATION_(CHANNEL_|PACKET_)?/, '').replace(/_/g, ' ');
}

/** 127.0.0.1:5 and ::ffff:127.0.0.1:5 are one endpoint. */
export function normPeer(p: string | null | undefined): string | null {
  if (!p) return null;
  return p.replace(/^\[::ffff:(.*)\]/, '$1').replace(/^::ffff:/, '');
}

export function portOf(p: string | null | undefined): string | null {
  const m = /:(\d+)$/.exec(p ?? '');
  return m ? m[1] : null;
}

const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):\d{1,5}$/;

/** `0–3, 7, 9–10`: ids as ranges, so 200 missing ids stay one line. */
export function formatIds(ids: readonly number[]): string {
  const s = [...new Set(ids)].sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < s.length; ) {
    let j = i;
    while (j + 1 < s.length && s[j + 1] === s[j] + 1) j++;
    out.push(j - i >= 2 ? `${s[i]}–${s[j]}` : j === i ? `${s[i]}` : `${s[i]}, ${s[j]}`);
    i = j + 1;
  }
  return out.join(', ');
}

/**
 * The few characters around the last difference, `…6a0` vs `…65f`: enough to tell two UUIDs
 * apart in a sentence. Returns [a's excerpt, b's excerpt].
 */
export function differingTail(a: string, b: string): [string, string] {
  let p = -1;
  for (let i = Math.max(a.length, b.length) - 1; i >= 0; i--) {
    if (a[i] !== b[i]) {
      p = i;
      break;
    }
  }
  if (p < 0) return [a, b];
  const start = Math.max(0, p - 2);
  const cut = (s: string) => `${start > 0 ? '…' : ''}${s.slice(start, p + 1)}${p + 1 < s.length ? '…' : ''}`;
  return [cut(a), cut(b)];
}

const rejectionKey = (r: { code: string; connection: number | null; peer: string | null; time: number; message: string }) =>
  r.connection !== null || r.peer !== null ? `${r.code}|${r.connection ?? '-'}|${normPeer(r.peer) ?? '-'}` : `${r.code}|${r.message}`;

/** Fault-lab specs by the channel they target. */
function injectedByChannel(specs: readonly string[] | undefined): Map<number, string> {
  const out = new Map<number, string>();
  for (const spec of specs ?? []) {
    const m = /^ch(\d+):/.exec(spec);
    if (m) out.set(Number(m[1]), spec);
  }
  return out;
}

export function injectedSpecs(m: LiveModel): string[] {
  return m.summary?.inject ?? m.config?.inject ?? [];
}

/** The diagnosis, or null when there is nothing to diagnose (no failure, no refusal, no straggler). */
export function diagnose(m: LiveModel): Diagnosis | null {
  const s = m.snapshot;
  if (!s) return null;
  const failure = failureOf(m);
  const failed = s.state === 'failed';
  const ended = isTerminal(s.state);
  const channels = s.channels;

  // Which source channel opened the connection from `peer`: the source records the
  // destination's verdict on its own channel (error.peer is then its socket's local address).
  const sourceByPeer = new Map<string, number>();
  let anyRejected = false;
  for (const c of channels) {
    if (c.state === 'rejected') anyRejected = true;
    // Our own address on each connection is the peer the destination names.
    if (c.local) sourceByPeer.set(normPeer(c.local)!, c.id);
    const e = c.error;
    if (!e) continue;
    if (e.connection !== null && e.peer) sourceByPeer.set(normPeer(e.peer)!, c.id);
    // checkAccepted's duplicate: expected is our own socket, received the one taken instead.
    if (e.code === 'MIGRATION_CHANNEL_ID_DUPLICATE' && e.connection === null && e.expected && HOST_PORT.test(e.expected)) {
      sourceByPeer.set(normPeer(e.expected)!, c.id);
    }
  }
  const sourceOf = (peer: string | null): number | null => {
    const p = normPeer(peer);
    return p === null ? null : (sourceByPeer.get(p) ?? null);
  };

  // Each refusal once: the destination reports it, and the source relays what it was told.
  // The destination's version keeps the id the connection claimed; the source's names its own
  // channel when the destination could not read one (bad magic, a short handshake).
  const byKey = new Map<string, { dest: RejectionEvent | null; src: RejectionEvent | null }>();
  for (const r of m.rejections) {
    const key = rejectionKey(r);
    let e = byKey.get(key);
    if (!e) byKey.set(key, (e = { dest: null, src: null }));
    if (r.role === 'destination') e.dest ??= r;
    else e.src ??= r;
  }
  const rejections: RejectionEvent[] = [];
  for (const { dest, src } of byKey.values()) {
    rejections.push(dest ?? src!);
    const p = normPeer(src?.peer);
    if (dest && src && dest.channel === null && src.channel !== null && p !== null && !sourceByPeer.has(p)) sourceByPeer.set(p, src.channel);
  }

  // --- UUID mismatches -----------------------------------------------------------------
  const uuid: UuidMismatch[] = [];
  const uuidKeys = new Set<string>();
  const addUuid = (key: string, e: Pick<SerializedError, 'channel' | 'peer' | 'connection' | 'expected' | 'received'>, claimedIsId: boolean) => {
    if (uuidKeys.has(key) || !comparable(e.expected, e.received)) return;
    uuidKeys.add(key);
    const claimed = claimedIsId ? e.channel : null;
    uuid.push({
      key,
      channel: sourceOf(e.peer) ?? claimed,
      claimed,
      peer: e.peer,
      connection: e.connection,
      expected: e.expected!,
      received: e.received!,
    });
  };
  for (const r of rejections) if (r.code === 'MIGRATION_CHANNEL_UUID_MISMATCH') addUuid(rejectionKey(r), r, r.channel !== null);
  if (failure?.code === 'MIGRATION_CHANNEL_UUID_MISMATCH') {
    const key = rejectionKey({ ...failure, time: 0 });
    // A hello refused for its uuid (`multifd dest --uuid`) names no channel: the main channel.
    addUuid(key, failure, failure.channel !== null);
  }

  // --- duplicate ids -------------------------------------------------------------------
  const dups = new Map<number, DuplicateClaim>();
  const dupOf = (k: number): DuplicateClaim => {
    let d = dups.get(k);
    if (!d) {
      const a = m.peerAccepted.get(k);
      d = { channel: k, accepted: a ? { peer: a.peer, connection: a.connection, source: sourceOf(a.peer) } : null, others: [] };
      dups.set(k, d);
    }
    return d;
  };
  const addOther = (d: DuplicateClaim, e: Endpoint) => {
    const p = normPeer(e.peer);
    if (p !== null && normPeer(d.accepted?.peer) === p) return;
    const same = d.others.find((o) => (p !== null && normPeer(o.peer) === p) || (e.connection !== null && o.connection === e.connection));
    if (same) {
      same.connection ??= e.connection;
      same.source ??= e.source;
    } else d.others.push(e);
  };
  for (const r of rejections) {
    if (r.code !== 'MIGRATION_CHANNEL_ID_DUPLICATE' || r.channel === null) continue;
    addOther(dupOf(r.channel), { peer: r.peer, connection: r.connection, source: sourceOf(r.peer) });
  }
  // The source's own finding: the destination took another connection as our channel k.
  const sourceDups: SerializedError[] = [];
  if (failure) sourceDups.push(failure);
  for (const c of channels) if (c.error) sourceDups.push(c.error);
  for (const e of sourceDups) {
    if (e.code !== 'MIGRATION_CHANNEL_ID_DUPLICATE' || e.channel === null || e.connection !== null) continue;
    if (!e.expected || !e.received || !HOST_PORT.test(e.expected) || !HOST_PORT.test(e.received)) continue;
    const d = dupOf(e.channel);
    if (!d.accepted) d.accepted = { peer: e.received, connection: null, source: sourceOf(e.received) };
    addOther(d, { peer: e.expected, connection: null, source: e.channel });
  }
  const duplicates = [...dups.values()].sort((a, b) => a.channel - b.channel);

  // --- missing and out-of-range ids ----------------------------------------------------
  const missing = [...new Set([...(failure?.missing ?? []), ...(m.peerSide?.error?.missing ?? [])])].sort((a, b) => a - b);
  const outOfRange: OutOfRangeClaim[] = [];
  for (const r of rejections) {
    if (r.code !== 'MIGRATION_CHANNEL_ID_OUT_OF_RANGE') continue;
    outOfRange.push({
      key: rejectionKey(r),
      channel: sourceOf(r.peer),
      claimed: r.received ?? (r.channel !== null ? String(r.channel) : '?'),
      range: r.expected ?? '?',
      peer: r.peer,
      connection: r.connection,
    });
  }

  // --- stragglers: `slow` is live; once a migration completed or was cancelled it holds nothing.
  const stragglers: Straggler[] = [];
  if (!ended || failed) for (const c of channels) if (c.slow) stragglers.push({ channel: c.id, round: s.round });

  if (!failed && rejections.length === 0 && !anyRejected && stragglers.length === 0) return null;

  // --- the channels it points at -------------------------------------------------------
  const involved = new Set<number>();
  const add = (id: number | null) => {
    if (id !== null && id >= 0 && id < channels.length) involved.add(id);
  };
  const failureChannel = failure ? (sourceOf(failure.peer) ?? (failure.channel !== null && failure.channel < channels.length ? failure.channel : null)) : null;
  add(failureChannel);
  for (const c of channels) if (c.state === 'rejected' || c.state === 'failed' || (c.error && c.error.code !== 'MIGRATION_CANCELLED')) add(c.id);
  for (const u of uuid) add(u.channel);
  for (const d of duplicates) {
    add(d.channel);
    add(d.accepted?.source ?? null);
    for (const o of d.others) add(o.source);
  }
  for (const o of outOfRange) add(o.channel);
  for (const id of missing) add(id);
  for (const st of stragglers) add(st.channel);

  // The destination's side of each of those channels' handshakes.
  const destinationSaw = new Map<number, string>();
  const at = (t: number) => formatOffset(t - s.startedAt);
  for (const r of rejections) {
    const src = sourceOf(r.peer);
    if (src === null || !involved.has(src) || destinationSaw.has(src)) continue;
    destinationSaw.set(src, `refused${r.connection !== null ? ` #${r.connection}` : ''} ${at(r.time)} · ${shortCode(r.code)}`);
  }
  for (const id of involved) {
    if (destinationSaw.has(id)) continue;
    const a = m.peerAccepted.get(id);
    if (a && (sourceOf(a.peer) ?? id) === id) destinationSaw.set(id, `accepted${a.connection !== null ? ` #${a.connection}` : ''} ${at(a.time)}`);
  }

  const seenBy = m.primary === 'relay' ? 'relay' : 'destination';
  const injected = injectedByChannel(injectedSpecs(m));
  const failedAt = failed ? (m.terminal?.time ?? m.stateTimes.failed ?? s.endedAt ?? null) : null;
  const cause = causeLine({ failure, failed, failedAt, failureChannel, uuid, duplicates, outOfRange, missing, stragglers, rejections, channels, sourceOf, seenBy });
  const pointsAt = cause.channel;
  let injectedSpec = pointsAt !== null ? (injected.get(pointsAt) ?? null) : null;
  // `dup` on channel K claims (K+1) mod N (DESIGN 7.2): the duplicate of K+1 is its doing.
  if (!injectedSpec && failure?.code === 'MIGRATION_CHANNEL_ID_DUPLICATE') {
    for (const [k, spec] of injected) if (spec.endsWith(':dup') && (k + 1) % channels.length === failure.channel) injectedSpec = spec;
  }
  const { advice, fix } = adviceFor(failed ? failure : null, injectedSpec, cause.channel);
  return {
    cause: cause.text,
    advice,
    fix,
    injected: injectedSpec,
    uuid,
    duplicates,
    missing,
    outOfRange,
    stragglers,
    rejections,
    channels: [...involved].sort((a, b) => a - b),
    destinationSaw,
    seenBy,
  };
}

// --- what to do -------------------------------------------------------------------------

/** The operator's next step for a failure's code and fields, and a retry that applies it. */
function adviceFor(f: SerializedError | null, injected: string | null, channel: number | null): { advice: string | null; fix: Fix | null } {
  if (injected) return { advice: `the fault lab injected ${injected}: retry without it`, fix: { clearFaults: true, label: 'Retry without the faults' } };
  if (!f) return { advice: null, fix: null };
  const on = channel !== null ? ` on channel ${channel}` : '';
  switch (f.code as ErrorCode) {
    case 'MIGRATION_CHANNEL_COUNT_MISMATCH': {
      const want = Number(num(f.expected));
      const sent = num(f.received);
      if (!Number.isInteger(want) || want < 1 || want > 255) return { advice: null, fix: null };
      return {
        advice: `set Channels to ${want}, or restart the destination with --channels ${sent ?? 'N'}`,
        fix: { channels: want, label: `Retry with ${want} channels` },
      };
    }
    case 'MIGRATION_CHANNEL_UUID_MISMATCH':
      return f.channel === null
        ? { advice: "migrate the guest this destination expects, or restart it without --uuid (or with this guest's)", fix: null }
        : { advice: `a connection of another guest's migration reached this destination${on}: give each migration its own destination port, then retry`, fix: null };
    case 'MIGRATION_CHANNEL_ID_DUPLICATE':
    case 'MIGRATION_CHANNEL_ID_OUT_OF_RANGE':
      return { advice: `the connection${on} sent the wrong channel id: something between source and destination rewrites or mixes connections; retry, and look at that path`, fix: null };
    case 'MIGRATION_CHANNEL_SETUP_TIMEOUT':
      return { advice: 'check that every connection reaches the destination port (firewall, NAT, connection limits), or raise the channel-setup timeout, then retry', fix: null };
    case 'MIGRATION_CHANNEL_STALLED':
      return { advice: `the path${on} is slow or stuck: check it, or retry with fewer channels or a bandwidth cap`, fix: null };
    case 'MIGRATION_GUEST_EXISTS':
      return { advice: 'stop the copy of this guest that runs at the destination, then retry', fix: null };
    case 'MIGRATION_RAM_LIMIT':
      return { advice: 'stop guests at the destination, or raise its --max-ram, then retry', fix: null };
    case 'MIGRATION_TOO_MANY_MIGRATIONS':
      return { advice: "retry when one of the destination's migrations has ended, or raise its --max-migrations", fix: null };
    case 'MIGRATION_CONNECT_FAILED':
      return { advice: 'check the destination address and that a multifd destination listens there, then retry', fix: null };
    default:
      return { advice: null, fix: null };
  }
}

// --- the one line ----------------------------------------------------------------------

interface CauseInput {
  failure: SerializedError | null;
  failed: boolean;
  /** when the migration failed: refusals after it are consequences, not causes */
  failedAt: number | null;
  failureChannel: number | null;
  uuid: UuidMismatch[];
  duplicates: DuplicateClaim[];
  outOfRange: OutOfRangeClaim[];
  missing: number[];
  stragglers: Straggler[];
  rejections: RejectionEvent[];
  channels: ChannelSnapshot[];
  sourceOf: (peer: string | null) => number | null;
  seenBy: 'destination' | 'relay';
}

interface Cause {
  text: string;
  /** the source channel it points at, if one */
  channel: number | null;
}

const plural = (n: number, one: string, many: string) => (n === 1 ? one : many);
const channelList = (ids: readonly number[]) => `${plural(ids.length, 'channel', 'channels')} ${formatIds(ids)}`;

function num(text: string | null): string | null {
  const m = /\d+/.exec(text ?? '');
  return m ? m[0] : null;
}

function causeLine(x: CauseInput): Cause {
  const f = x.failure;
  if (f && x.failed) {
    const specific = failureCause(f, x);
    if (specific) return specific;
  }
  if (x.stragglers.length > 0) {
    const ids = x.stragglers.map((st) => st.channel);
    const round = x.stragglers[0].round;
    return {
      text: `${channelList(ids)} ${plural(ids.length, 'holds', 'hold')} up sync ${round}: ${plural(ids.length, 'it is', 'they are')} slow while the others wait`,
      channel: ids.length === 1 ? ids[0] : null,
    };
  }
  if (!x.failed && x.rejections.length > 0) {
    const r = x.rejections[0];
    const more = x.rejections.length > 1 ? ` and ${x.rejections.length - 1} more` : '';
    return {
      text: `the ${x.seenBy} refused a connection (${r.code}${r.peer ? ` from ${r.peer}` : ''})${more}; this migration goes on unless it was one of its channels`,
      channel: x.sourceOf(r.peer),
    };
  }
  if (f) {
    const generic = likelyCause(f.code);
    const ch = x.failureChannel;
    return { text: `${ch !== null ? `channel ${ch}: ` : ''}${generic ?? f.message}`, channel: ch };
  }
  return { text: 'a channel was refused; see the refused connections below', channel: null };
}

/** The failure's own line, when its fields say more than the code's generic hint. */
function failureCause(f: SerializedError, x: CauseInput): Cause | null {
  const code = f.code as ErrorCode;
  const ch = x.failureChannel;
  const who = ch !== null ? `channel ${ch}` : f.channel !== null ? `the connection claiming channel ${f.channel}` : f.peer ? `the connection from ${f.peer}` : 'a connection';
  switch (code) {
    case 'MIGRATION_CHANNEL_COUNT_MISMATCH':
      if (f.expected && f.received) return { text: `destination expects ${f.expected} channels, source opened ${f.received}`, channel: null };
      return null;
    case 'MIGRATION_CHANNEL_UUID_MISMATCH': {
      const u = x.uuid.find((u) => normPeer(u.peer) === normPeer(f.peer) && u.connection === f.connection) ?? x.uuid[0];
      if (!u) return null;
      const [r, e] = differingTail(u.received, u.expected);
      if (u.claimed === null && u.channel === null) {
        return { text: `the destination expects guest ${e}, but this migration's guest is ${r}`, channel: null };
      }
      const n = u.channel ?? u.claimed;
      return { text: `channel ${n}'s connection carried another guest's uuid (${r} vs ${e})`, channel: u.channel };
    }
    case 'MIGRATION_CHANNEL_ID_DUPLICATE': {
      const d = x.duplicates.find((d) => d.channel === f.channel) ?? x.duplicates[0];
      if (!d) return null;
      const ports = [d.accepted, ...d.others].map((e) => portOf(e?.peer)).filter((p): p is string => p !== null);
      const uniq = [...new Set(ports)];
      const by = uniq.length >= 2 ? ` (ports ${uniq.slice(0, -1).join(', ')} and ${uniq[uniq.length - 1]})` : uniq.length === 1 ? ` (port ${uniq[0]} and another)` : '';
      // The channel that sent another's id is the cause; the one it collided with is not.
      const impostor = [d.accepted, ...d.others].find((e) => e && e.source !== null && e.source !== d.channel);
      if (impostor) {
        return { text: `channel ${impostor.source} sent channel ${d.channel}'s id: two connections claimed channel ${d.channel}${by}`, channel: impostor.source };
      }
      return { text: `two connections claimed channel ${d.channel}${by}`, channel: d.channel };
    }
    case 'MIGRATION_CHANNEL_ID_OUT_OF_RANGE': {
      const o = x.outOfRange.find((o) => normPeer(o.peer) === normPeer(f.peer)) ?? x.outOfRange[0];
      const claimed = o?.claimed ?? f.received ?? String(f.channel);
      const range = o?.range ?? f.expected ?? '?';
      const src = o?.channel ?? null;
      return {
        text: `${src !== null ? `channel ${src}` : 'a connection'} claimed channel id ${claimed}, outside the destination's ids ${range}`,
        channel: src,
      };
    }
    case 'MIGRATION_CHANNEL_SETUP_TIMEOUT':
      return setupTimeoutCause(f, x);
    case 'MIGRATION_CHANNEL_BAD_MAGIC':
      return { text: `${who} sent magic ${f.received ?? '?'}, not multifd's ${f.expected ?? '0x11223344'}`, channel: ch };
    case 'MIGRATION_CHANNEL_BAD_VERSION':
      return { text: `${who} speaks multifd version ${f.received ?? '?'}, the destination version ${f.expected ?? '?'}`, channel: ch };
    case 'MIGRATION_CHANNEL_SHORT_HANDSHAKE': {
      const got = num(f.received);
      const want = num(f.expected) ?? '64';
      return { text: `${who} closed its connection after ${got ?? 'part'} of ${want} handshake bytes`, channel: ch };
    }
    case 'MIGRATION_CHANNEL_HANDSHAKE_TIMEOUT':
      return { text: `${who} connected but sent no handshake in time`, channel: ch };
    case 'MIGRATION_CHANNEL_STALLED':
      return { text: `${who} made no progress${f.received ? ` (${f.received})` : ''} while the others moved`, channel: ch };
    case 'MIGRATION_CHANNEL_CLOSED':
      return { text: `${who}'s connection closed mid-stream`, channel: ch };
    case 'MIGRATION_PACKET_BAD_HEADER':
      return {
        text: `${who} sent a packet header with a bad ${f.field ?? 'field'}${f.received ? `: ${f.received}` : ''}${f.expected ? ` (expected ${f.expected})` : ''}`,
        channel: ch,
      };
    case 'MIGRATION_PACKET_OFFSET_OUT_OF_RANGE':
      return { text: `${who} sent a page at an offset outside its RAM block${f.received ? ` (${f.received})` : ''}`, channel: ch };
    case 'MIGRATION_PACKET_UNKNOWN_RAMBLOCK':
      return { text: `${who} named RAM block ${f.received ?? '?'}, which the destination does not have`, channel: ch };
    case 'MIGRATION_PACKET_SHORT_PAYLOAD':
      return { text: `${who} closed in the middle of a page payload`, channel: ch };
    case 'MIGRATION_CONNECT_FAILED':
      return { text: `nothing accepted the ${f.channel !== null ? `connection of channel ${f.channel}` : 'main channel'}${f.peer ? ` at ${f.peer}` : ''}`, channel: f.channel };
    default:
      return null;
  }
}

type Reason = 'never-connecting' | 'never-connected' | 'never-sent' | 'refused' | 'not-accepted';
const REASON_TEXT: Record<Reason, [string, string]> = {
  'never-connecting': ['never started connecting', 'never started connecting'],
  'never-connected': ['never connected', 'never connected'],
  'never-sent': ['never sent its handshake', 'never sent their handshakes'],
  refused: ['was refused', 'were refused'],
  'not-accepted': ['sent its handshake but was never accepted', 'sent their handshakes but were never accepted'],
};

function reasonOf(c: ChannelSnapshot | undefined): Reason {
  if (!c || c.times.connecting === null) return 'never-connecting';
  if (c.times.connected === null) return 'never-connected';
  if (c.times.handshakeSent === null) return 'never-sent';
  if (c.times.rejected !== null || c.state === 'rejected') return 'refused';
  return 'not-accepted';
}

function setupTimeoutCause(f: SerializedError, x: CauseInput): Cause {
  const missing = f.missing ?? x.missing;
  if (missing.length === 0) return { text: likelyCause(f.code) ?? f.message, channel: null };
  const byId = new Map(x.channels.map((c) => [c.id, c]));
  const groups = new Map<Reason, number[]>();
  for (const id of missing) {
    const r = reasonOf(byId.get(id));
    let g = groups.get(r);
    if (!g) groups.set(r, (g = []));
    g.push(id);
  }
  // No channel even started: the main channel's hello was never taken.
  if (groups.size === 1 && groups.has('never-connecting') && missing.length === x.channels.length) {
    return { text: `the destination never took the main channel's hello${f.peer ? ` (${f.peer})` : ''}, so no channel opened`, channel: null };
  }
  const parts = [...groups].map(([r, ids]) => `${channelList(ids)} ${REASON_TEXT[r][ids.length === 1 ? 0 : 1]}`);
  const strays = x.rejections.filter((r) => (x.failedAt === null || r.time <= x.failedAt) && (r.channel === null || x.sourceOf(r.peer) !== null));
  const tail = strays.length > 0 ? `; the ${x.seenBy} refused ${strays[0].code}${strays[0].peer ? ` from ${strays[0].peer}` : ''}${strays.length > 1 ? ` and ${strays.length - 1} more` : ''}` : '';
  return { text: parts.join('; ') + tail, channel: missing.length === 1 ? missing[0] : null };
}
