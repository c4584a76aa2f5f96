/**
 * The destination side of one migration, from its hello to its verdict: owns the main
 * channel, the accepted multifd channels, the incoming guest's RAM and the SYNC barrier.
 *
 * Page payloads are read by the kernel straight into guest RAM (PacketReader regions);
 * each page is hashed once its packet is complete, so the verdict at the end only sums.
 */
import type { ChannelSnapshot, ChannelState, Hello, MigrationSnapshot, MigrationState } from '../contracts';
import { AbortSchema, CompleteSchema, RoundSchema } from '../contracts';
import {
  CancelledError,
  ChannelClosedError,
  ChannelSetupTimeoutError,
  ChannelStalledError,
  DigestMismatchError,
  InternalError,
  MainBadFrameError,
  MainClosedError,
  MigrationError,
  PagesMissingError,
  SourceSilentError,
  RemoteFailedError,
  asMigrationError,
  type SerializedError,
} from '../errors';
import { Guest, PageHashes, Populator, formatDigest, type RamBlock } from '../guest';
import {
  FLAG_SYNC,
  FrameDecoder,
  PACKET_SLOTS,
  FrameType,
  PAGE_SIZE,
  PacketReader,
  decodeJsonPayload,
  encodeJsonFrame,
  uuidToBytes,
  type Frame,
  type PacketHeader,
  type PacketSink,
} from '../protocol';
import { compressionOps } from './compression';
import type { Connection } from './connection';
import { MigrationEmitter } from './emitter';
import { Deferred, Lifetime } from './lifetime';
import { RateMeter, emptyTimes, type ChannelTimes } from './stats';
import type { z } from 'zod';

/** How long a closed channel waits for the main channel's explanation before it is the error. */
const LOST_GRACE_MS = 250;
/** Main-channel frames queued behind a barrier before the main socket stops being read. */
const MAX_QUEUED_FRAMES = 64;

export interface IncomingOptions {
  setupTimeoutMs: number;
  noProgressTimeoutMs: number;
  tickMs: number;
  /** When the migration's first connection arrived (a held channel may precede the main). */
  firstConnectionAt: number;
}

export interface IncomingResult {
  state: 'completed' | 'failed' | 'cancelled';
  error: MigrationError | null;
  /** The guest, running here, when completed. */
  guest: Guest | null;
  snapshot: MigrationSnapshot;
}

/** A connection a destination refused, as each migration's diagnosis lists it. */
export interface Rejection extends SerializedError {
  at: number;
}

class DestChannel implements PacketSink {
  state: ChannelState = 'accepted';
  readonly times: ChannelTimes = emptyTimes();
  readonly reader: PacketReader;
  syncs = 0;
  lastProgress = Date.now();
  private lastBytes = 0;
  readonly meter = new RateMeter();
  error: SerializedError | null = null;
  slow = false;
  private block: RamBlock | null = null;
  /** the current packet's page indices, for hashing (reused) */
  private readonly pages: number[] = [];

  constructor(
    readonly id: number,
    readonly conn: Connection,
    private readonly m: IncomingMigration,
  ) {
    const method = compressionOps(m.hello.compression);
    this.reader = new PacketReader(
      this,
      {
        blockSize: (name) => m.guest.block(name)?.size,
        compression: method.flag,
        channel: id,
        peer: conn.peer,
        connection: conn.number,
      },
      PACKET_SLOTS,
      method.decoder(),
    );
  }

  header(h: PacketHeader): void {
    this.block = h.normalPages + h.zeroPages > 0 ? this.m.guest.block(h.ramblock)! : null;
  }

  region(_h: PacketHeader, offset: number, length: number): Uint8Array {
    return this.block!.bytes.subarray(offset, offset + length);
  }

  packet(h: PacketHeader): void {
    const block = this.block;
    if (block) {
      const normal = h.normalPages;
      const n = normal + h.zeroPages;
      const offs = h.offsets;
      const pages = this.pages;
      const written = this.m.written.get(block)!;
      pages.length = n;
      for (let i = 0; i < n; i++) pages[i] = offs[i] / PAGE_SIZE;
      for (let i = 0; i < normal; i++) written[pages[i]] = 1;
      // A zero page is already zero unless this migration wrote it: guest RAM starts zeroed,
      // so untouched pages stay unwritten (and, but for the populator, unallocated).
      for (let i = normal; i < n; i++) {
        if (written[pages[i]] === 0) continue;
        block.bytes.fill(0, offs[i], offs[i] + PAGE_SIZE);
        written[pages[i]] = 0;
      }
      this.m.hashes.hashPages(block, pages, 0, normal);
      this.m.hashes.hashZeroPages(block, pages, normal, n);
    }
    if (h.flags & FLAG_SYNC) {
      // Stop here until every channel has reached this round's SYNC (DESIGN 3.4): a page
      // re-sent next round on another channel must not be overwritten by this round's copy.
      this.syncs++;
      this.conn.reader.pause();
      this.setState('synced');
      this.m.onChannelSync();
    }
  }

  setState(s: ChannelState): void {
    if (this.state === s) return;
    this.state = s;
    this.m.events.emit('channel', { channel: this.id, state: s, connection: this.conn.number, peer: this.conn.peer });
  }

  tick(now: number): void {
    const b = this.reader.bytes;
    this.meter.sample(now, b);
    if (b !== this.lastBytes || this.state === 'synced') this.lastProgress = now;
    this.lastBytes = b;
  }

  snapshot(): ChannelSnapshot {
    return {
      id: this.id,
      state: this.state,
      slow: this.slow,
      connection: this.conn.number,
      peer: this.conn.peer,
      times: { ...this.times },
      security: this.conn.security?.description ?? null,
      bytes: this.reader.bytes,
      payloadBytes: this.reader.payloadBytes,
      pages: this.reader.pages,
      zeroPages: this.reader.zeroPages,
      packets: this.reader.packets,
      syncs: this.syncs,
      throughput: this.meter.rate(),
      error: this.error,
    };
  }
}

export class IncomingMigration {
  readonly id: string;
  readonly uuid: string;
  readonly uuidBytes: Uint8Array;
  readonly channelCount: number;
  readonly events: MigrationEmitter;
  readonly guest: Guest;
  /** Per block, 1 for each page this migration wrote with data (its RAM starts all zero). */
  readonly written: Map<RamBlock, Uint8Array>;
  hashes!: PageHashes;
  state: MigrationState = 'setup';
  readonly rejections: Rejection[] = [];
  private readonly life = new Lifetime();
  private readonly chans: Array<DestChannel | null>;
  private accepted = 0;
  private readonly queue: Frame[] = [];
  private processing = false;
  private mainHeld = false;
  private readonly result = new Deferred<IncomingResult>();
  private error: MigrationError | null = null;
  private deviceState: Uint8Array | null = null;
  /** Round whose SYNC barrier is next to release. */
  private barrierRound = 1;
  private marker: { round: number; released: Deferred<void>; at: number } | null = null;
  private readonly meter = new RateMeter();
  private round = 0;
  private readonly startedAt: number;
  private endedAt: number | null = null;
  private setupTimeMs: number | null = null;
  private switchoverAt: number | null = null;
  private downtimeMs: number | null = null;
  private digest: string | null = null;
  private verified = false;
  private ready: Promise<void>;
  /** Faults in the guest's RAM ahead of the channels; started once every channel is up. */
  private populator: Populator | null = null;
  /** When a byte last came from the source, on any of its connections. */
  private lastHeard = Date.now();
  private heardBytes = 0;
  private mainBytesIn = 0;
  /** Complete arrived: the destination is the one working now. */
  private completing = false;

  constructor(
    readonly hello: Hello,
    readonly main: Connection,
    /** The main channel's decoder, past the hello; frames after it go through mainBytes(). */
    private readonly decoder: FrameDecoder,
    private readonly opts: IncomingOptions,
  ) {
    this.id = hello.migrationId;
    this.uuid = hello.uuid;
    this.uuidBytes = uuidToBytes(hello.uuid);
    this.channelCount = hello.channels;
    this.startedAt = opts.firstConnectionAt;
    this.events = new MigrationEmitter('destination', this.id, this.uuid);
    this.chans = new Array(hello.channels).fill(null);
    this.guest = Guest.incoming({ uuid: hello.uuid, name: hello.name, blocks: hello.blocks });
    this.written = new Map(this.guest.blocks.map((b) => [b, new Uint8Array(b.pages)]));
    this.life.defer(() => this.populator?.stop());
    main.owner = this;
    main.onEnd(() => this.onMainEnd());
    this.life.socket(main.socket);
    const remaining = Math.max(0, opts.firstConnectionAt + opts.setupTimeoutMs - Date.now());
    this.life.timeout(remaining, () => this.onSetupTimeout());
    this.life.interval(opts.tickMs, () => this.tick());
    this.ready = PageHashes.create(this.guest.blocks).then((h) => {
      this.hashes = h;
    });
  }

  /** Emits the opening events; call once listeners are attached. */
  begin(): void {
    this.events.emit('state', { state: 'setup', previous: null });
    this.events.emit('hello', {
      channels: this.channelCount,
      ramSize: this.guest.ramSize,
      blocks: this.hello.blocks,
    });
  }

  get done(): Promise<IncomingResult> {
    return this.result.promise;
  }

  /** The guest's RAM is being faulted in ahead of the pages (only once every channel is up). */
  get populating(): boolean {
    return this.populator !== null;
  }

  get isSetup(): boolean {
    return this.state === 'setup';
  }

  get isTerminal(): boolean {
    return this.state === 'completed' || this.state === 'failed' || this.state === 'cancelled';
  }

  hasChannel(id: number): boolean {
    return this.chans[id] != null;
  }

  /** Main-channel bytes after the preamble and hello, from the connection's reader. */
  mainBytes(chunk: Uint8Array): void {
    this.mainBytesIn += chunk.length;
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.fail(err);
      return;
    }
    this.enqueue(frames);
  }

  /** Frames for processQueue(), in order; the main channel's reader pauses behind them. */
  enqueue(all: Frame[]): void {
    // A Ping only says the source is alive (its bytes were counted): it waits behind nothing.
    const frames = all.filter((f) => f.type !== FrameType.Ping);
    if (frames.length === 0) return;
    this.queue.push(...frames);
    // Frames wait behind a sync barrier; a source that keeps sending is held back by TCP.
    if (this.queue.length >= MAX_QUEUED_FRAMES && !this.mainHeld) {
      this.mainHeld = true;
      this.main.reader.pause();
    }
    if (!this.processing) void this.processQueue();
  }

  /** A multifd connection passed its handshake for this migration. */
  async acceptChannel(conn: Connection, id: number): Promise<void> {
    if (this.isTerminal) {
      conn.destroy();
      return;
    }
    const ch = new DestChannel(id, conn, this);
    this.chans[id] = ch;
    conn.owner = this;
    this.life.socket(conn.socket);
    ch.times.connected = conn.acceptedAt;
    ch.times.secured = conn.security?.securedAt ?? null;
    ch.times.accepted = Date.now();
    conn.onEnd(() => this.onChannelEnd(ch));
    this.events.emit('channel', { channel: id, state: 'accepted', connection: conn.number, peer: conn.peer });
    this.sendJson(FrameType.ChannelAccepted, { channel: id, connection: conn.number, peer: conn.peer });
    await this.ready;
    if (this.isTerminal) return;
    conn.reader.use(ch.reader);
    ch.setState('streaming');
    conn.reader.start();
    if (++this.accepted === this.channelCount && this.state === 'setup') {
      this.setupTimeMs = Date.now() - this.startedAt;
      // Only now is the guest's RAM faulted in ahead of the pages: a hello alone commits none.
      this.populator = new Populator(this.guest.blocks);
      this.setState('active');
    }
  }

  /**
   * A connection refused on this migration's account. `attributable`: it fails this
   * migration at once; otherwise it is only listed (and the source told) as a likely cause.
   */
  rejectConnection(err: MigrationError, attributable: boolean): void {
    this.rejections.push({ ...err.toJSON(), at: Date.now() });
    if (this.isTerminal) return;
    if (err.channel !== null && err.channel < this.channelCount && attributable) {
      const ch = this.chans[err.channel];
      if (!ch) this.events.emit('channel', { channel: err.channel, state: 'rejected', connection: err.connection, peer: err.peer });
    }
    this.events.emit('channel-rejected', MigrationEmitter.failure(err));
    this.sendJson(FrameType.ChannelRejected, err.toJSON());
    if (attributable) this.fail(err);
  }

  // --- main channel frames ----------------------------------------------------------------

  private async processQueue(): Promise<void> {
    this.processing = true;
    try {
      while (this.queue.length > 0 && !this.isTerminal) {
        await this.onFrame(this.queue.shift()!);
        if (this.mainHeld && this.queue.length < MAX_QUEUED_FRAMES / 2 && !this.isTerminal) {
          this.mainHeld = false;
          this.main.reader.start();
        }
      }
    } catch (err) {
      this.fail(err);
    } finally {
      this.processing = false;
    }
  }

  private parse<S extends z.ZodType>(schema: S, f: Frame): z.infer<S> {
    const r = schema.safeParse(decodeJsonPayload(f, { peer: this.main.peer, connection: this.main.number }));
    if (!r.success) {
      throw new MainBadFrameError(`main channel from ${this.main.peer}: malformed frame 0x${f.type.toString(16)}: ${r.error.issues[0]?.message}`, {
        peer: this.main.peer,
        connection: this.main.number,
        field: r.error.issues[0]?.path.join('.') ?? null,
      });
    }
    return r.data;
  }

  private async onFrame(f: Frame): Promise<void> {
    switch (f.type) {
      case FrameType.RoundStart: {
        const { round } = this.parse(RoundSchema, f);
        this.round = round;
        for (const ch of this.chans) if (ch && ch.state === 'synced') ch.setState('streaming');
        return;
      }
      case FrameType.SyncMarker: {
        const { round } = this.parse(RoundSchema, f);
        if (round !== this.barrierRound) {
          throw new MainBadFrameError(`main channel from ${this.main.peer}: sync marker for round ${round} but round ${this.barrierRound} is next`, {
            peer: this.main.peer,
            expected: String(this.barrierRound),
            received: String(round),
          });
        }
        const released = new Deferred<void>();
        this.marker = { round, released, at: Date.now() };
        this.onChannelSync();
        await this.life.until(released.promise);
        return;
      }
      case FrameType.DeviceState:
        this.deviceState = Uint8Array.from(f.payload);
        this.switchoverAt = Date.now();
        this.setState('switchover');
        return;
      case FrameType.Complete: {
        const c = this.parse(CompleteSchema, f);
        this.completing = true;
        await this.verify(c);
        return;
      }
      case FrameType.Abort: {
        const a = this.parse(AbortSchema, f);
        const ctx = { peer: this.main.peer, connection: this.main.number, received: a.code };
        this.fail(
          a.code === 'MIGRATION_CANCELLED'
            ? new CancelledError(`source cancelled: ${a.message}`, ctx)
            : new RemoteFailedError(`source failed: ${a.code}: ${a.message}`, ctx),
        );
        return;
      }
      default:
        throw new MainBadFrameError(`main channel from ${this.main.peer}: unexpected frame type 0x${f.type.toString(16)}`, {
          peer: this.main.peer,
          connection: this.main.number,
          received: `0x${f.type.toString(16)}`,
        });
    }
  }

  /** A channel reached its SYNC, or the marker arrived: release the barrier when all have. */
  onChannelSync(): void {
    const mk = this.marker;
    if (!mk || mk.round !== this.barrierRound) return;
    for (const ch of this.chans) if (!ch || ch.syncs < mk.round) return;
    this.marker = null;
    this.barrierRound++;
    this.sendJson(FrameType.SyncDone, { round: mk.round });
    for (const ch of this.chans) ch!.conn.reader.start();
    mk.released.resolve();
  }

  /**
   * A migration completes only when every channel connected, every round's SYNC barrier
   * passed, every page the source says it sent arrived, and the digests agree. A mismatch
   * names the source's digest, never this side's: the digest of RAM the source did not
   * fill is not for a peer to learn.
   */
  private async verify(c: z.infer<typeof CompleteSchema>): Promise<void> {
    const where = { peer: this.main.peer, connection: this.main.number };
    if (!this.deviceState) {
      throw new MainBadFrameError(`main channel from ${this.main.peer}: complete before device state`, { ...where, field: 'complete' });
    }
    if (this.accepted !== this.channelCount) {
      throw new MainBadFrameError(`main channel from ${this.main.peer}: complete with ${this.accepted} of ${this.channelCount} channels connected`, {
        ...where,
        field: 'complete',
        expected: `${this.channelCount} channels connected`,
        received: String(this.accepted),
      });
    }
    const synced = this.barrierRound - 1;
    if (synced < 1 || c.round !== synced) {
      throw new MainBadFrameError(`main channel from ${this.main.peer}: complete for round ${c.round}, but ${synced} rounds passed their SYNC barrier`, {
        ...where,
        field: 'round',
        expected: String(synced),
        received: String(c.round),
      });
    }
    const pages = this.chans.reduce((n, ch) => n + (ch ? ch.reader.pages : 0), 0);
    const zeroPages = this.chans.reduce((n, ch) => n + (ch ? ch.reader.zeroPages : 0), 0);
    if (pages !== c.pages || zeroPages !== c.zeroPages) {
      throw new PagesMissingError(
        `main channel from ${this.main.peer}: the source sent ${c.pages} pages and ${c.zeroPages} zero pages, ${pages} and ${zeroPages} arrived`,
        { ...where, expected: `${c.pages} pages, ${c.zeroPages} zero pages`, received: `${pages} pages, ${zeroPages} zero pages` },
      );
    }
    const theirs = c.digest;
    const ours = formatDigest(this.hashes.digest());
    if (ours !== theirs) {
      throw new DigestMismatchError(`RAM digest does not match the source's ${theirs}: pages were lost or corrupted`, {
        ...where,
        expected: theirs,
        received: 'another digest',
      });
    }
    this.digest = ours;
    this.verified = true;
    // Channels are done: their closing is no longer a failure.
    for (const ch of this.chans) ch?.conn.offEnd();
    this.main.offEnd();
    await this.guest.resumeFrom(this.deviceState);
    this.downtimeMs = this.switchoverAt === null ? null : Date.now() - this.switchoverAt;
    this.life.release(this.main.socket);
    this.main.finish(encodeJsonFrame(FrameType.Verified, { digest: ours }));
    this.finish('completed', null);
  }

  // --- failures -------------------------------------------------------------------------

  private onMainEnd(): void {
    if (this.isTerminal) return;
    this.fail(new MainClosedError(`main channel from ${this.main.peer}: closed before the migration completed`, {
      peer: this.main.peer,
      connection: this.main.number,
    }));
  }

  private onChannelEnd(ch: DestChannel): void {
    if (this.isTerminal) return;
    let err: unknown = new ChannelClosedError(`channel ${ch.id} from ${ch.conn.peer}: closed by the peer mid-stream`, {
      channel: ch.id,
      peer: ch.conn.peer,
      connection: ch.conn.number,
    });
    try {
      ch.reader.end();
    } catch (e) {
      err = e;
    }
    // A source that gives up says so on the main channel (Abort) before it closes its
    // channels, but the sockets race: give its explanation a moment to be the first error.
    this.life.timeout(LOST_GRACE_MS, () => this.fail(err));
  }

  /** Reads of a channel's socket failed in the reader (bad header, offsets, ...). */
  channelReadError(ch: Connection, err: unknown): void {
    this.fail(asMigrationError(err, { peer: ch.peer, connection: ch.number }));
  }

  private onSetupTimeout(): void {
    if (this.state !== 'setup') return;
    const missing: number[] = [];
    this.chans.forEach((c, i) => c === null && missing.push(i));
    const ms = this.opts.setupTimeoutMs;
    const cause = this.rejections.length
      ? `; refused meanwhile: ${this.rejections.map((r) => `#${r.connection} from ${r.peer} (${r.code})`).join(', ')}, likely the missing channels`
      : '';
    this.fail(
      new ChannelSetupTimeoutError(
        `${missing.length} of ${this.channelCount} channels missing after ${ms} ms: ids ${missing.join(', ')}${cause}`,
        { missing, expected: `${this.channelCount} channels`, received: `${this.accepted}` },
      ),
    );
  }

  fail(err: unknown): void {
    if (this.isTerminal || this.error) return;
    const e = asMigrationError(err);
    this.finish(e.code === 'MIGRATION_CANCELLED' ? 'cancelled' : 'failed', e);
  }

  cancel(reason: string): void {
    this.fail(new CancelledError(reason));
  }

  private finish(state: 'completed' | 'failed' | 'cancelled', err: MigrationError | null): void {
    if (this.endedAt !== null) return;
    this.endedAt = Date.now();
    this.error = err;
    if (err) {
      for (const ch of this.chans) {
        if (!ch) continue;
        if (ch.id === err.channel) {
          ch.error = err.toJSON();
          ch.setState('failed');
        } else ch.setState('closed');
      }
      // Tell the source why, then close; nothing of the guest is kept.
      this.main.offEnd();
      this.life.release(this.main.socket);
      if (!this.main.isClosed) this.main.finish(encodeJsonFrame(FrameType.Failed, err.toJSON()));
    } else {
      for (const ch of this.chans) ch?.setState('closed');
    }
    for (const ch of this.chans) if (ch) ch.slow = false;
    this.life.end(err ?? new InternalError('migration ended'));
    if (err) void this.guest.stop().catch(() => {});
    this.marker?.released.reject(err);
    this.setState(state);
    // The final snapshot, then the terminal event: the last event of a migration (DESIGN 7.1).
    const snapshot = this.snapshot();
    this.events.emit('progress', { snapshot });
    if (state === 'completed') {
      this.events.emit('completed', {
        verified: true,
        digest: this.digest!,
        rounds: this.round,
        transferred: this.transferred(),
        downtimeMs: this.downtimeMs,
        setupTimeMs: this.setupTimeMs,
        totalTimeMs: this.endedAt - this.startedAt,
      });
    } else {
      this.events.emit(state, MigrationEmitter.failure(err!));
    }
    this.result.resolve({ state, error: err, guest: state === 'completed' ? this.guest : null, snapshot });
  }

  private setState(state: MigrationState): void {
    if (this.state === state) return;
    const previous = this.state;
    this.state = state;
    this.events.emit('state', { state, previous });
  }

  private sendJson(type: number, value: unknown): void {
    const s = this.main.socket;
    if (!s.destroyed && s.writable) s.write(encodeJsonFrame(type, value));
  }

  // --- stats ------------------------------------------------------------------------------

  private transferred(): number {
    return this.chans.reduce((n, c) => n + (c ? c.reader.bytes : 0), 0);
  }

  private tick(): void {
    const now = Date.now();
    for (const ch of this.chans) ch?.tick(now);
    const transferred = this.transferred();
    this.meter.sample(now, transferred);
    const heard = transferred + this.mainBytesIn;
    if (heard !== this.heardBytes) {
      this.heardBytes = heard;
      this.lastHeard = now;
    }
    // Nothing from the source anywhere (not even its once-a-second Ping), and not because this
    // side holds it back: it lost power or its network, and closed nothing.
    const silent = now - this.lastHeard;
    if ((this.state === 'active' || this.state === 'switchover') && !this.completing && !this.mainHeld && silent > this.opts.noProgressTimeoutMs) {
      this.fail(
        new SourceSilentError(`main channel from ${this.main.peer}: nothing from the source on any connection for ${silent} ms (no-progress timeout ${this.opts.noProgressTimeoutMs} ms)`, {
          peer: this.main.peer,
          connection: this.main.number,
          expected: `a byte within ${this.opts.noProgressTimeoutMs} ms`,
          received: `none for ${silent} ms`,
        }),
      );
      return;
    }
    const mk = this.marker;
    if (mk && (this.state === 'active' || this.state === 'switchover')) {
      // The source has sent this round's SYNC on every channel: one that does not reach it
      // and does not move is holding everyone up.
      const limit = this.opts.noProgressTimeoutMs;
      for (const ch of this.chans) {
        if (!ch || ch.syncs >= mk.round) continue;
        const stuck = now - ch.lastProgress;
        ch.slow = now - mk.at > Math.min(1000, limit);
        if (stuck > limit) {
          this.fail(
            new ChannelStalledError(`channel ${ch.id} from ${ch.conn.peer}: no progress for ${stuck} ms while round ${mk.round}'s sync waits for it`, {
              channel: ch.id,
              peer: ch.conn.peer,
              connection: ch.conn.number,
              expected: `sync ${mk.round}`,
              received: `none for ${stuck} ms`,
            }),
          );
          return;
        }
      }
    }
    this.events.emit('progress', { snapshot: this.snapshot() });
  }

  snapshot(): MigrationSnapshot {
    const transferred = this.transferred();
    return {
      id: this.id,
      uuid: this.uuid,
      role: 'destination',
      state: this.state,
      peer: this.main.peer,
      channelCount: this.channelCount,
      compression: this.hello.compression,
      tls: this.main.security?.mode ?? null,
      round: this.round,
      ramSize: this.guest.ramSize,
      transferred,
      pageBytes: this.chans.reduce((n, c) => n + (c ? c.reader.pages * PAGE_SIZE : 0), 0),
      remaining: 0,
      dirtyRate: 0,
      transferRate: this.meter.rate(),
      convergence: 0,
      expectedDowntimeMs: 0,
      downtimeMs: this.downtimeMs,
      setupTimeMs: this.setupTimeMs,
      totalTimeMs: this.endedAt === null ? null : this.endedAt - this.startedAt,
      startedAt: this.startedAt,
      endedAt: this.endedAt,
      switchoverReason: null,
      digest: this.digest,
      verified: this.verified,
      channels: this.chans.filter((c): c is DestChannel => c !== null).map((c) => c.snapshot()),
      error: this.error ? this.error.toJSON() : null,
    };
  }
}
