/**
 * The source side of a migration: main channel, N multifd channels, pre-copy rounds,
 * switchover, verification. One instance per attempt; the guest outlives it.
 *
 * Lifecycle (DESIGN 4): setup → active → switchover → completed, or failed / cancelled from
 * any state, with the guest left running and unchanged.
 */
import { randomUUID } from 'node:crypto';
import type net from 'node:net';
import {
  AbortSchema,
  ChannelAcceptedSchema,
  HelloAckSchema,
  ChannelRejectedSchema,
  FailedSchema,
  RoundSchema,
  VerifiedSchema,
  type ChannelState,
  type Hello,
  type MigrationConfig,
  type MigrationSnapshot,
  type MigrationState,
} from '../contracts';
import {
  CancelledError,
  ChannelIdDuplicateError,
  ConfigInvalidError,
  ChannelSetupTimeoutError,
  ChannelStalledError,
  DigestMismatchError,
  MainBadFrameError,
  MainClosedError,
  MigrationError,
  RemoteFailedError,
  VerifyTimeoutError,
  asMigrationError,
} from '../errors';
import { PageHashes, formatDigest, type Guest } from '../guest';
import { nextThrottle } from './converge';
import {
  FrameDecoder,
  FrameType,
  PACKET_SLOTS,
  PAGE_SIZE,
  decodeJsonPayload,
  encodeFrame,
  encodeJsonFrame,
  encodePreamble,
  type Frame,
} from '../protocol';
import { MigrationEmitter } from './emitter';
import type { Fault } from './faults';
import { Deferred, Lifetime } from './lifetime';
import { RoundPacker, compressedPacket, syncPacket, type PageSet } from './packer';
import { compressionOps, type CompressionOps } from './compression';
import { RateLimiter } from './ratelimit';
import { SourceChannel, connect, type ChannelTls } from './source-channel';
import { TLS_FAULTS } from './faults';
import { loadClientCredentials, secureClient, tlsFailure, type TlsClientCredentials, type TlsInfo } from './tls';
import { RateMeter } from './stats';
import { splitHostPort } from './address';
import type { z } from 'zod';

export interface SourceOptions {
  config: MigrationConfig;
  /** Faults to inject (DESIGN 7.2), at most one per channel. */
  faults?: Fault[];
  id?: string;
  /** Stats tick; progress events go out at this rate. */
  tickMs?: number;
}

export interface MigrationResult {
  state: 'completed' | 'failed' | 'cancelled';
  error: MigrationError | null;
  snapshot: MigrationSnapshot;
}

const DEFAULT_TICK_MS = 250;
const NEVER = new Promise<never>(() => {});
/** How long a closed channel waits for the main channel's explanation before it is the error. */
export const LOST_GRACE_MS = 250;
/** How long an ending migration waits for the destination to close the main channel. */
const MAIN_CLOSE_GRACE_MS = 2000;
/**
 * How often a round drops from its set the pages the guest has dirtied again since the
 * round took them (DirtyBitmap.clearMarkedFrom): such a page would only be sent twice.
 * A pass over the bitmap costs ~10 µs per GiB of RAM.
 */
const SKIP_REDIRTIED_MS = 5;
/** The bandwidth that predicts the downtime is measured over the last rounds adding up to this. */
const BANDWIDTH_WINDOW_MS = 1000;

/** One round's pages. */
interface RoundWork {
  packer: RoundPacker;
  sets: PageSet[];
  /** Pages in `sets` when the round took them. */
  taken: number;
  /**
   * A pre-copy round, the guest running: it drops re-dirtied pages from `sets` as it goes,
   * and honours the bandwidth cap. The final pass, the guest paused, does neither: as in
   * QEMU (migration_completion lifts the rate limit), the cap paces the live phase, and
   * holding the final pass to it would only lengthen the downtime.
   */
  precopy: boolean;
  lastSkipAt: number;
}

/** Main-channel heartbeat: a Ping every second, whatever else is sent. */
const PING_MS = 1000;
const PING_FRAME = encodeFrame(FrameType.Ping, new Uint8Array(0));

export class SourceMigration {
  readonly id: string;
  readonly events: MigrationEmitter;
  readonly config: MigrationConfig;
  state: MigrationState = 'setup';
  private readonly life = new Lifetime();
  private readonly channels: SourceChannel[] = [];
  private main: net.Socket | null = null;
  private readonly decoder = new FrameDecoder();
  private error: MigrationError | null = null;
  private readonly result = new Deferred<MigrationResult>();
  private readonly helloAck = new Deferred<void>();
  /**
   * The destination saw our main connection from another address than ours: a NAT, proxy
   * or relay is in the path, so the addresses it reports for channels cannot be matched
   * with our sockets, and a channel is taken as ours by its id alone.
   */
  private translated = false;
  private readonly allAccepted = new Deferred<void>();
  private readonly verdict = new Deferred<string>();
  private accepted = 0;
  /** Connections the destination refused that were not ours: likely causes on a timeout. */
  private readonly strays: MigrationError[] = [];
  private packetNum = 0n;
  private hashes: PageHashes | null = null;
  private readonly limiter: RateLimiter | null;
  private readonly meter = new RateMeter();
  private readonly tickMs: number;
  private started = false;
  private outcomeSent = false;
  /** The guest's pause in flight, so a failure meanwhile can wait for it and resume. */
  private pausing: Promise<Uint8Array> | null = null;
  private readonly compression: CompressionOps;
  /** Loaded at the start of run() when config.tls is set. */
  private tls: TlsClientCredentials | null = null;
  private mainSecurity: TlsInfo | null = null;

  // figures
  private round = 0;
  private transferred = 0;
  private pageBytes = 0;
  private remaining = 0;
  private dirtyRate = 0;
  private expectedDowntimeMs = 0;
  private readonly startedAt = Date.now();
  private endedAt: number | null = null;
  private setupTimeMs: number | null = null;
  private pausedAt: number | null = null;
  private downtimeMs: number | null = null;
  private switchoverReason: 'downtime' | 'round-limit' | null = null;
  private digest: string | null = null;
  private verified = false;
  private lastRoundBandwidth = 0;
  /** Bandwidth over the last rounds (BANDWIDTH_WINDOW_MS), what the expected downtime uses. */
  private bandwidth = 0;
  private readonly recentRounds: Array<{ bytes: number; ms: number }> = [];
  /** vCPU throttle auto-converge has set, 0..MAX_THROTTLE. */
  private throttle = 0;
  /** Last round whose SYNC barrier the destination confirmed (SyncDone), and who waits for the next. */
  private syncedRound = 0;
  private syncWaiter: { round: number; done: Deferred<void> } | null = null;

  constructor(
    readonly guest: Guest,
    opts: SourceOptions,
  ) {
    this.config = opts.config;
    this.id = opts.id ?? randomUUID();
    this.events = new MigrationEmitter('source', this.id, guest.uuid);
    this.tickMs = opts.tickMs ?? DEFAULT_TICK_MS;
    this.limiter = this.config.maxBandwidth > 0 ? new RateLimiter(this.config.maxBandwidth, this.life) : null;
    this.compression = compressionOps(this.config.compression);
    const faults = new Map((opts.faults ?? []).map((f) => [f.channel, f]));
    const hooks = {
      // After the outcome nothing more is said: a connect or write finishing late is not news.
      state: (ch: SourceChannel, state: ChannelState) =>
        void (this.outcomeSent || this.events.emit('channel', { channel: ch.id, state, connection: null, peer: ch.peer })),
      // The destination usually says why it closed a channel on the main channel; that
      // explanation, not the bare close (the sockets race), should be the first error.
      lost: (ch: SourceChannel, err: MigrationError) => void this.life.timeout(LOST_GRACE_MS, () => this.fail(err)),
    };
    for (let i = 0; i < this.config.channels; i++) {
      const ch = new SourceChannel(i, hooks, faults.get(i) ?? null);
      if (ch.fault?.kind === 'slow') ch.throttle = new RateLimiter(ch.fault.n!, this.life);
      this.channels.push(ch);
    }
  }

  /** Starts the migration; `done` settles when it ends (it never rejects). */
  start(): this {
    if (this.started) return this;
    this.started = true;
    this.events.emit('state', { state: 'setup', previous: null });
    this.run().catch((err) => this.fail(err));
    return this;
  }

  get done(): Promise<MigrationResult> {
    return this.result.promise;
  }

  /** Cancels in any state; harmless after the end and when called twice. */
  async cancel(reason = 'cancelled by operator'): Promise<MigrationResult> {
    if (!this.isTerminal() && this.state !== 'cancelling') {
      const err = new CancelledError(reason);
      this.setState('cancelling');
      await this.finish('cancelled', err);
    }
    return this.result.promise;
  }

  private isTerminal(): boolean {
    return this.state === 'completed' || this.state === 'failed' || this.state === 'cancelled';
  }

  private setState(state: MigrationState): void {
    if (this.state === state) return;
    const previous = this.state;
    this.state = state;
    this.events.emit('state', { state, previous });
  }

  // --- the run ---------------------------------------------------------------------------

  private async run(): Promise<void> {
    const cfg = this.config;
    const { host, port } = splitHostPort(cfg.destination);
    const setupTimer = this.life.timeout(cfg.setupTimeoutMs, () => this.onSetupTimeout());
    // Credentials are read once, before anything connects: a bad file fails here.
    await this.loadTls();
    this.hashes = await PageHashes.create(this.guest.blocks);
    await this.prepareCompression();
    if (this.guest.state === 'created') await this.guest.start();

    // Main channel first; channels follow once the destination has taken the hello, so a
    // destination never sees our channels before it knows our migration.
    let main = await this.life.until(connect(host, port, cfg.connectTimeoutMs, (s) => this.life.socket(s), null));
    main.setNoDelay(true);
    if (this.tls) {
      const secured = await this.life.until(
        secureClient(main, this.tls, { channel: null, host, port, timeoutMs: cfg.connectTimeoutMs, track: (s) => this.life.socket(s) }),
      );
      main = secured.socket;
      this.mainSecurity = secured.info;
    }
    this.main = main;
    main.on('data', (chunk: Buffer) => this.onMainData(chunk));
    main.on('error', (err) => this.onMainError(err));
    main.on('close', () => this.onMainClosed());
    const hello: Hello = {
      uuid: this.guest.uuid,
      migrationId: this.id,
      channels: cfg.channels,
      pageSize: PAGE_SIZE,
      slots: PACKET_SLOTS,
      compression: cfg.compression,
      ...(cfg.compression !== 'none' ? { compressionLevel: cfg.compressionLevel } : {}),
      blocks: this.guest.blocks.map((b) => ({ name: b.name, size: b.size })),
      name: this.guest.name,
      ...(cfg.replace ? { replace: true } : {}),
      ...(cfg.pairing ? { pairing: cfg.pairing } : {}),
    };
    main.write(encodePreamble());
    this.sendJson(FrameType.Hello, hello);
    this.life.interval(this.tickMs, () => this.tick());
    // A live source is never silent: the destination ends one it has not heard from in its
    // no-progress timeout (a power loss or a partition closes nothing).
    this.life.interval(PING_MS, () => this.send(PING_FRAME));
    await this.life.until(this.helloAck.promise);

    const channelTls: ChannelTls | null = this.tls ? { creds: this.tls, host } : null;
    await this.life.until(
      Promise.all(
        this.channels.map((ch) =>
          ch
            .open(host, port, this.guest.uuid, cfg.channels, cfg.connectTimeoutMs, (s) => this.life.socket(s), channelTls)
            .then(() => this.checkAccepted(ch)),
        ),
      ),
    );
    await this.life.until(this.allAccepted.promise);
    this.life.clear(setupTimer);
    this.setupTimeMs = Date.now() - this.startedAt;
    this.setState('active');

    // Pre-copy rounds.
    for (;;) {
      this.round++;
      const t0 = Date.now();
      const before = this.transferred;
      const work = await this.sendRound(this.takePageSets(this.round === 1), true);
      await this.roundDelivered(this.round);
      const durationMs = Math.max(1, Date.now() - t0);
      const bytes = this.transferred - before;
      this.lastRoundBandwidth = (bytes * 1000) / durationMs;
      this.bandwidth = this.recentBandwidth(bytes, durationMs);
      const dirtyPages = this.guest.blocks.reduce((n, b) => n + b.dirty.count(), 0);
      this.remaining = dirtyPages * PAGE_SIZE;
      this.dirtyRate = (this.remaining * 1000) / durationMs;
      this.expectedDowntimeMs = this.bandwidth > 0 ? (this.remaining * 1000) / this.bandwidth : 0;
      const converged = this.expectedDowntimeMs <= cfg.downtimeLimitMs;
      const switching = converged || this.round >= cfg.roundLimit;
      // Not converged: set the throttle for the next round from what this one measured.
      if (cfg.autoConverge && !switching) this.setThrottle(this.nextThrottle());
      this.events.emit('round', {
        round: this.round,
        pages: work.packer.pagesPacked,
        zeroPages: work.packer.zeroPacked,
        bytes,
        durationMs,
        bandwidth: this.lastRoundBandwidth,
        dirtyPages,
        dirtyRate: this.dirtyRate,
        expectedDowntimeMs: this.expectedDowntimeMs,
        skippedPages: work.taken - work.packer.pagesPacked - work.packer.zeroPacked,
        throttlePct: cfg.autoConverge ? this.throttle * 100 : null,
      });
      if (switching) {
        this.switchoverReason = converged ? 'downtime' : 'round-limit';
        break;
      }
    }

    // Switchover: pause, last pages, device state, digest.
    this.events.emit('switchover', {
      reason: this.switchoverReason!,
      round: this.round,
      remaining: this.remaining,
      expectedDowntimeMs: this.expectedDowntimeMs,
      downtimeLimitMs: cfg.downtimeLimitMs,
    });
    this.setState('switchover');
    this.pausedAt = Date.now();
    this.pausing = this.guest.pause();
    const deviceState = await this.life.until(this.pausing);
    this.round++;
    await this.sendRound(this.takePageSets(false), false);
    this.send(encodeFrame(FrameType.DeviceState, deviceState));
    this.digest = formatDigest(this.hashes.digest());
    // What every channel sent, so the destination can tell that it received all of it.
    const pages = this.channels.reduce((n, c) => n + c.pages, 0);
    const zeroPages = this.channels.reduce((n, c) => n + c.zeroPages, 0);
    this.sendJson(FrameType.Complete, { digest: this.digest, round: this.round, pages, zeroPages });
    const verifyTimer = this.life.timeout(cfg.verifyTimeoutMs, () =>
      this.fail(
        new VerifyTimeoutError(`destination gave no verdict within ${cfg.verifyTimeoutMs} ms of sending the last pages`, {
          peer: this.mainPeer(),
          expected: `Verified or Failed within ${cfg.verifyTimeoutMs} ms`,
          received: 'nothing',
        }),
      ),
    );
    const theirs = await this.life.until(this.verdict.promise);
    this.life.clear(verifyTimer);
    this.downtimeMs = Date.now() - this.pausedAt;
    if (theirs !== this.digest) {
      throw new DigestMismatchError(`destination verified digest ${theirs} but the source's is ${this.digest}`, {
        peer: this.mainPeer(),
        expected: this.digest,
        received: theirs,
      });
    }
    this.verified = true;
    // The destination runs the guest now: only then does the source stop its copy.
    await this.finish('completed', null);
  }

  /** Reads and checks the TLS credentials; TLS faults need TLS. */
  private async loadTls(): Promise<void> {
    const tlsFault = [...this.channels].find((ch) => ch.fault && (TLS_FAULTS as readonly string[]).includes(ch.fault.kind));
    if (!this.config.tls) {
      if (tlsFault) {
        throw new ConfigInvalidError(`fault ch${tlsFault.id}:${tlsFault.fault!.kind} needs a migration over TLS`, {
          field: 'inject',
          expected: 'TLS credentials',
          received: 'a migration in clear',
        });
      }
      return;
    }
    this.tls = await this.life.until(loadClientCredentials(this.config.tls));
    if (tlsFault?.fault?.kind === 'tls-anon' && !this.tls.hasCert) {
      throw new ConfigInvalidError(`fault ch${tlsFault.id}:tls-anon leaves out a client certificate, and this migration has none`, {
        field: 'inject',
        expected: 'a client certificate',
        received: 'none',
      });
    }
  }

  /** Loads the method (zstd's wasm) and gives each channel its compressor; checks the level. */
  private async prepareCompression(): Promise<void> {
    const ops = this.compression;
    if (ops.flag === 0) return;
    const { min, max } = ops.levels;
    const level = this.config.compressionLevel;
    if (level < min || level > max) {
      throw new ConfigInvalidError(`${ops.name} compression level must be ${min}..${max}, got ${level}`, {
        field: 'compressionLevel',
        expected: `${min}..${max}`,
        received: String(level),
      });
    }
    await this.life.until(ops.load());
    if (this.life.isEnded) return;
    // Released with the migration, whatever its end (zstd's workers), even one that ends
    // while they are still starting.
    const starting = ops.compressors(level, this.channels.length)!;
    this.life.defer(() => void starting.then((set) => set.close(), () => {}));
    const set = await this.life.until(starting);
    for (const ch of this.channels) ch.compressor = set.forChannel(ch.id);
  }

  /**
   * Round 1 sends every page (and forgets earlier dirt); later rounds take the dirty bitmap.
   * Round 1's "every page" is a full bitmap rather than the packer's 'all', so that it too
   * can drop pages the guest dirties again before they are sent.
   */
  private takePageSets(all: boolean): { sets: PageSet[]; taken: number } {
    let taken = 0;
    const sets = this.guest.blocks.map((b) => {
      const words = new Uint32Array(b.dirty.wordCount);
      taken += b.dirty.take(words);
      if (all) {
        words.fill(0xffffffff);
        const rem = b.pages & 31;
        if (rem !== 0) words[words.length - 1] = (2 ** rem - 1) >>> 0;
      }
      return { kind: 'bitmap' as const, words };
    });
    return { sets, taken: all ? this.guest.pageCount : taken };
  }

  /** Sends one round's pages over every channel, then SYNC on each and the marker on main. */
  private async sendRound(pages: { sets: PageSet[]; taken: number }, precopy: boolean): Promise<RoundWork> {
    const work: RoundWork = {
      packer: new RoundPacker(this.guest.blocks, pages.sets, this.hashes!),
      sets: pages.sets,
      taken: pages.taken,
      precopy,
      lastSkipAt: performance.now(),
    };
    this.sendJson(FrameType.RoundStart, { round: this.round });
    for (const ch of this.channels) ch.setState('streaming');
    await this.life.until(Promise.all(this.channels.map((ch) => this.pump(ch, work))));
    for (const ch of this.channels) {
      const p = syncPacket(this.packetNum++, PACKET_SLOTS, this.compression.flag);
      ch.write(p);
      ch.syncs++;
      this.transferred += p.bytes;
    }
    this.sendJson(FrameType.SyncMarker, { round: this.round });
    return work;
  }

  /**
   * QEMU sends every page a round took, even one the guest has written again since: that
   * page is dirty in the live bitmap, so the next round (or the final pass) sends it anyway
   * and this copy is wasted. Dropping such pages from the round's set as it goes costs
   * nothing in correctness (DirtyBitmap.clearMarkedFrom) and leaves the link to pages that
   * stay sent; a round whose set the guest keeps rewriting ends early instead of sending it.
   * The packer reads the set lazily, so pages it has passed are unaffected.
   */
  private skipRedirtied(work: RoundWork): void {
    const now = performance.now();
    if (!work.precopy || now - work.lastSkipAt < SKIP_REDIRTIED_MS) return;
    work.lastSkipAt = now;
    this.guest.blocks.forEach((b, i) => {
      const set = work.sets[i];
      if (set.kind === 'bitmap') b.dirty.clearMarkedFrom(set.words);
    });
  }

  /**
   * Waits until the destination has every page of `round` in place (its SyncDone). A round
   * ends on the source when its last packet is handed to the sockets, with up to tens of
   * MiB still in buffers and in the destination's hands: measured there, the round's
   * bandwidth is too high and its dirty count too early, and a switchover decided then
   * pauses the guest while that backlog drains, which is downtime the estimate did not
   * count (seen: 390 ms for an idle 1 GiB guest whose expected downtime was 0).
   */
  private async roundDelivered(round: number): Promise<void> {
    if (this.syncedRound >= round) return;
    const done = new Deferred<void>();
    this.syncWaiter = { round, done };
    const ms = this.config.noProgressTimeoutMs;
    const timer = this.life.timeout(ms, () =>
      this.fail(
        new ChannelStalledError(`destination did not confirm round ${round}'s pages within ${ms} ms of the last one sent`, {
          peer: this.mainPeer(),
          expected: `SyncDone for round ${round} within ${ms} ms`,
          received: this.syncedRound > 0 ? `SyncDone up to round ${this.syncedRound}` : 'none',
        }),
      ),
    );
    await this.life.until(done.promise);
    this.life.clear(timer);
  }

  /**
   * Bandwidth over the last rounds adding up to BANDWIDTH_WINDOW_MS: the link as it is now,
   * and not skewed by one short round (a few packets, mostly start-up and SYNC).
   */
  private recentBandwidth(bytes: number, ms: number): number {
    const r = this.recentRounds;
    r.push({ bytes, ms });
    let sumBytes = 0;
    let sumMs = 0;
    let keep = 0;
    for (let i = r.length - 1; i >= 0 && sumMs < BANDWIDTH_WINDOW_MS; i--, keep++) {
      sumBytes += r[i].bytes;
      sumMs += r[i].ms;
    }
    r.splice(0, r.length - keep);
    return sumMs > 0 ? (sumBytes * 1000) / sumMs : 0;
  }

  private nextThrottle(): number {
    return nextThrottle({
      throttle: this.throttle,
      remaining: this.remaining,
      bandwidth: this.bandwidth,
      dirtyRate: this.dirtyRate,
      downtimeLimitMs: this.config.downtimeLimitMs,
    });
  }

  private setThrottle(t: number): void {
    if (t === this.throttle) return;
    this.throttle = t;
    this.guest.throttle = t;
  }

  /** One channel takes packets while it can write; others take the rest while it drains. */
  private async pump(ch: SourceChannel, work: RoundWork): Promise<void> {
    const packer = work.packer;
    for (;;) {
      if (this.life.isEnded) return;
      this.skipRedirtied(work);
      let p = packer.next(this.packetNum);
      if (!p) return;
      this.packetNum++;
      // Compressing is work, not a stall; the cap below then counts the bytes the wire carries.
      if (ch.compressor) {
        const frame = p.normalPages > 0 ? await ch.compressor.compress(p.payload, p.normalPages * PAGE_SIZE) : new Uint8Array(0);
        if (this.life.isEnded) return;
        p = compressedPacket(p, this.compression.flag, frame);
      }
      // Waiting for the migration's bandwidth cap is nobody's stall; after it, this channel owes.
      if (this.limiter && work.precopy) await this.limiter.take(p.bytes);
      ch.holding = true;
      // The slow fault: this channel alone is throttled, and holds up every sync round.
      if (ch.throttle) await ch.throttle.take(p.bytes);
      this.transferred += p.bytes;
      this.pageBytes += p.normalPages * PAGE_SIZE;
      // A channel lost mid-write waits for the failure its loss reports (see LOST_GRACE_MS).
      if (!ch.write(p)) await ch.drain().catch(() => this.life.until(NEVER));
      ch.holding = false;
    }
  }

  // --- main channel --------------------------------------------------------------------

  private send(buf: Uint8Array): void {
    const m = this.main;
    if (m && !m.destroyed) m.write(buf);
  }

  private sendJson(type: number, value: unknown): void {
    this.send(encodeJsonFrame(type, value));
  }

  private mainPeer(): string | null {
    const m = this.main;
    return m?.remoteAddress ? `${m.remoteAddress}:${m.remotePort}` : null;
  }

  private onMainData(chunk: Buffer): void {
    // Once ended, what still arrives while the main channel closes changes nothing.
    if (this.endedAt !== null) return;
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.fail(asMigrationError(err, { peer: this.mainPeer() }));
      return;
    }
    for (const f of frames) {
      // A frame may end the migration: the rest of the chunk is then news to nobody.
      if (this.endedAt !== null) return;
      try {
        this.onFrame(f);
      } catch (err) {
        this.fail(asMigrationError(err, { peer: this.mainPeer() }));
        return;
      }
    }
  }

  private parse<S extends z.ZodType>(schema: S, f: Frame): z.infer<S> {
    const r = schema.safeParse(decodeJsonPayload(f));
    if (!r.success) {
      throw new MainBadFrameError(`main channel from ${this.mainPeer()}: malformed frame 0x${f.type.toString(16)}: ${r.error.issues[0]?.message}`, {
        peer: this.mainPeer(),
        field: r.error.issues[0]?.path.join('.') ?? null,
      });
    }
    return r.data;
  }

  private onFrame(f: Frame): void {
    switch (f.type) {
      case FrameType.HelloAck: {
        const ack = this.parse(HelloAckSchema, f);
        const m = this.main;
        const local = m?.localAddress ? `${m.localAddress}:${m.localPort}` : null;
        this.translated = ack.peer != null && local !== null && !samePeer(local, ack.peer);
        this.helloAck.resolve();
        return;
      }
      case FrameType.ChannelAccepted: {
        const a = this.parse(ChannelAcceptedSchema, f);
        const ch = this.channels[a.channel];
        if (!ch || ch.times.accepted !== null) return;
        ch.acceptedAs = a.peer;
        this.checkAccepted(ch);
        return;
      }
      case FrameType.ChannelRejected: {
        const r = this.parse(ChannelRejectedSchema, f);
        const err = MigrationError.fromJSON(r);
        // Ours, when the refused connection came from one of our channel sockets; otherwise
        // a stray connection the destination lists as a possible cause.
        const ch = this.channels.find((c) => samePeer(c.local, r.peer));
        if (ch) {
          // The destination could not tell which channel sent these bytes; we can.
          const ours =
            r.channel === null
              ? MigrationError.fromJSON({ ...r, channel: ch.id, message: `channel ${ch.id}: refused by the destination: ${r.message}` })
              : err;
          this.events.emit('channel-rejected', MigrationEmitter.failure(ours));
          ch.times.rejected = Date.now();
          ch.error = ours.toJSON();
          ch.setState('rejected');
          this.fail(ours);
        } else {
          this.events.emit('channel-rejected', MigrationEmitter.failure(err));
          this.strays.push(err);
        }
        return;
      }
      case FrameType.SyncDone: {
        const { round } = this.parse(RoundSchema, f);
        if (round === this.round && this.state === 'active') for (const ch of this.channels) ch.setState('synced');
        this.syncedRound = Math.max(this.syncedRound, round);
        const w = this.syncWaiter;
        if (w && round >= w.round) {
          this.syncWaiter = null;
          w.done.resolve();
        }
        return;
      }
      case FrameType.Verified:
        this.verdict.resolve(this.parse(VerifiedSchema, f).digest);
        return;
      case FrameType.Failed: {
        const why = this.parse(FailedSchema, f);
        // Refused before the hello was taken: it is the main channel that was refused (TLS).
        const main = !this.helloAck.settled && why.code.startsWith('MIGRATION_TLS_');
        this.fail(
          main
            ? MigrationError.fromJSON({ ...why, channel: null, message: `main channel to ${this.mainPeer() ?? this.config.destination}: refused by the destination: ${why.message}` })
            : MigrationError.fromJSON(why),
        );
        return;
      }
      case FrameType.Abort: {
        const a = this.parse(AbortSchema, f);
        this.fail(new RemoteFailedError(`destination aborted: ${a.message}`, { peer: this.mainPeer(), received: a.code }));
        return;
      }
      default:
        throw new MainBadFrameError(`main channel from ${this.mainPeer()}: unexpected frame type 0x${f.type.toString(16)}`, {
          peer: this.mainPeer(),
          received: `0x${f.type.toString(16)}`,
        });
    }
  }

  /**
   * The destination accepted a connection as this channel: ours only if it came from our
   * socket (unless addresses are translated on the way, see `translated`). Another connection accepted under our id took our place (an impostor or a
   * stale channel): refuse to stream to a destination that mixes channels.
   */
  private checkAccepted(ch: SourceChannel): void {
    if (ch.acceptedAs === undefined || ch.local === null || ch.times.accepted !== null) return;
    if (!this.translated && !samePeer(ch.local, ch.acceptedAs)) {
      this.fail(
        new ChannelIdDuplicateError(
          `channel ${ch.id}: the destination accepted another connection (${ch.acceptedAs}) as channel ${ch.id}, not ours (${ch.local})`,
          { channel: ch.id, peer: this.mainPeer(), expected: ch.local, received: ch.acceptedAs },
        ),
      );
      return;
    }
    ch.times.accepted = Date.now();
    ch.setState('accepted');
    if (++this.accepted === this.channels.length) this.allAccepted.resolve();
  }

  /** TLS 1.3: the destination's verdict on our certificate can arrive after our handshake, as an alert. */
  private onMainError(err: Error): void {
    if (this.isTerminal() || this.state === 'cancelling') return;
    const mode = this.mainSecurity?.mode;
    const tls = mode ? tlsFailure(err, { channel: null, peer: this.mainPeer() ?? this.config.destination, mode, expectedHost: null, hasCert: this.tls?.hasCert ?? false, phase: 'stream' }) : null;
    if (tls) this.fail(tls);
    else this.onMainClosed();
  }

  private onMainClosed(): void {
    if (this.isTerminal() || this.state === 'cancelling') return;
    this.fail(new MainClosedError(`main channel to ${this.mainPeer() ?? this.config.destination}: closed by the destination`, { peer: this.mainPeer() }));
  }

  private onSetupTimeout(): void {
    const missing = this.channels.filter((c) => c.times.accepted === null).map((c) => c.id);
    const ms = this.config.setupTimeoutMs;
    const cause = this.strays.length
      ? `; the destination refused meanwhile: ${this.strays.map((e) => `${e.code} from ${e.peer}`).join(', ')}`
      : '';
    const err =
      this.helloAck.settled
        ? new ChannelSetupTimeoutError(
            `${missing.length} of ${this.channels.length} channels not accepted within ${ms} ms: missing ${missing.join(', ')}${cause}`,
            { missing, expected: `${this.channels.length} channels accepted`, received: `${this.accepted}` },
          )
        : new ChannelSetupTimeoutError(`destination ${this.config.destination} did not take the main channel's hello within ${ms} ms`, {
            missing,
            peer: this.mainPeer(),
          });
    this.fail(err);
  }

  // --- stats -----------------------------------------------------------------------------

  private tick(): void {
    const now = Date.now();
    let moving = false;
    for (const ch of this.channels) if (ch.tick(now)) moving = true;
    this.meter.sample(now, this.channels.reduce((n, c) => n + c.flushed, 0));
    if (this.state === 'active' || this.state === 'switchover') {
      const limit = this.config.noProgressTimeoutMs;
      for (const ch of this.channels) {
        const stuck = now - ch.lastProgress;
        ch.slow = stuck > Math.min(limit, 1000) && ch.owes;
        if (stuck > limit) {
          this.fail(
            new ChannelStalledError(
              `channel ${ch.id}${ch.peer ? ` to ${ch.peer}` : ''}: no progress for ${stuck} ms${moving ? ' while other channels move' : ''}`,
              { channel: ch.id, peer: ch.peer, expected: `progress within ${limit} ms`, received: `none for ${stuck} ms` },
            ),
          );
          return;
        }
      }
    }
    this.events.emit('progress', { snapshot: this.snapshot() });
  }

  snapshot(): MigrationSnapshot {
    const rate = this.meter.rate();
    return {
      id: this.id,
      uuid: this.guest.uuid,
      role: 'source',
      state: this.state,
      peer: this.config.destination,
      channelCount: this.channels.length,
      compression: this.config.compression,
      tls: this.config.tls?.mode ?? null,
      round: this.round,
      ramSize: this.guest.ramSize,
      transferred: this.transferred,
      pageBytes: this.pageBytes,
      remaining: this.remaining,
      dirtyRate: this.dirtyRate,
      transferRate: rate,
      convergence: this.lastRoundBandwidth > 0 ? this.dirtyRate / this.lastRoundBandwidth : 0,
      expectedDowntimeMs: this.expectedDowntimeMs,
      throttlePct: this.config.autoConverge ? this.throttle * 100 : null,
      downtimeMs: this.downtimeMs,
      setupTimeMs: this.setupTimeMs,
      totalTimeMs: this.endedAt === null ? null : this.endedAt - this.startedAt,
      startedAt: this.startedAt,
      endedAt: this.endedAt,
      switchoverReason: this.switchoverReason,
      digest: this.digest,
      verified: this.verified,
      channels: this.channels.map((c) => c.snapshot()),
      error: this.error ? this.error.toJSON() : null,
    };
  }

  // --- ending ----------------------------------------------------------------------------

  /** First error wins; later ones are consequences of the teardown. */
  private fail(err: unknown): void {
    if (this.isTerminal() || this.error) return;
    const e = asMigrationError(err);
    void this.finish(e.code === 'MIGRATION_CANCELLED' ? 'cancelled' : 'failed', e);
  }

  private async finish(state: 'completed' | 'failed' | 'cancelled', err: MigrationError | null): Promise<void> {
    if (this.endedAt !== null) return;
    this.endedAt = Date.now();
    this.error = err;
    const m = this.main;
    let mainClosed: Promise<void> = Promise.resolve();
    if (m && !m.destroyed) {
      // Closed gracefully, so a last frame is not lost to a reset; `done` waits until the
      // destination has let go (bounded), so a retry of the same guest is not refused as busy.
      this.life.release(m);
      mainClosed = new Promise<void>((resolve) => {
        const t = setTimeout(() => m.destroy(), MAIN_CLOSE_GRACE_MS);
        t.unref();
        m.once('close', () => {
          clearTimeout(t);
          resolve();
        });
      });
      // Tell the destination why, so it discards at once instead of waiting for a timeout.
      if (err && m.writable) m.end(encodeJsonFrame(FrameType.Abort, { code: err.code, message: err.message }));
      else m.end();
      m.resume();
    }
    if (err) {
      for (const ch of this.channels) {
        if (ch.state !== 'rejected' && ch.state !== 'closed') {
          ch.error ??= ch.id === err.channel ? err.toJSON() : null;
          ch.setState(ch.id === err.channel ? 'failed' : 'closed');
        }
      }
    }
    for (const ch of this.channels) {
      ch.retire();
      ch.slow = false;
    }
    this.life.end(err ?? new CancelledError('migration ended'));
    // Whatever the outcome, the guest runs at full speed again: here if it stays, and a
    // stopped copy should not keep a throttle either.
    this.setThrottle(0);
    if (state === 'completed') {
      for (const ch of this.channels) ch.setState('closed');
      await this.guest.stop().catch(() => {});
    } else {
      if (this.pausing) await this.pausing.catch(() => {});
      // The guest was paused for switchover: it carries on, unchanged, here.
      if (this.guest.state === 'paused') await this.guest.resume().catch(() => {});
    }
    this.setState(state);
    // The final snapshot, then the terminal event: the last event of a migration (DESIGN 7.1).
    this.events.emit('progress', { snapshot: this.snapshot() });
    this.outcomeSent = true;
    if (state === 'completed') {
      this.events.emit('completed', {
        verified: true,
        digest: this.digest!,
        rounds: this.round,
        transferred: this.transferred,
        downtimeMs: this.downtimeMs,
        setupTimeMs: this.setupTimeMs,
        totalTimeMs: this.endedAt - this.startedAt,
      });
    } else {
      this.events.emit(state, MigrationEmitter.failure(err!));
    }
    await mainClosed;
    this.result.resolve({ state, error: err, snapshot: this.snapshot() });
  }
}

/** Same endpoint, whether a side writes IPv4 as a v4-mapped IPv6 address or not. */
function samePeer(a: string | null, b: string | null): boolean {
  if (!a || !b) return false;
  const norm = (s: string) => s.replace(/^::ffff:/, '').replace(/^\[::ffff:(.*)\]/, '$1');
  return norm(a) === norm(b);
}
