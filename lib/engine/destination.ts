/**
 * A destination: listens, classifies every accepted connection by its first 4 bytes (never
 * by accept order), routes it by UUID to the migration it belongs to, and refuses what
 * does not fit, as DESIGN 3.5 says. Serves several migrations at once, one per UUID.
 *
 * With TLS credentials every connection must open with a TLS handshake (its first byte is a
 * TLS record's, 0x16): after it, the decrypted bytes are classified the same way. A
 * connection in clear is refused with MIGRATION_TLS_REQUIRED, and a TLS one at a destination
 * without credentials with MIGRATION_TLS_NOT_CONFIGURED.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import type tls from 'node:tls';
import { COMPRESSION_METHODS, HelloSchema, type Compression, type Hello, type MigrationEvent } from '../contracts';
import {
  BusyError,
  ChannelCountMismatchError,
  ChannelIdDuplicateError,
  ChannelHandshakeTimeoutError,
  ChannelShortHandshakeError,
  ChannelStaleError,
  CompressionRefusedError,
  ChannelUuidMismatchError,
  ConfigInvalidError,
  MainBadFrameError,
  MigrationError,
  TlsHandshakeFailedError,
  TlsNotConfiguredError,
  TlsRequiredError,
  TooManyConnectionsError,
  TooManyMigrationsError,
  RamLimitError,
  GuestExistsError,
  asMigrationError,
  channelPrefix,
  withContext,
} from '../errors';
import { formatBytes, type Guest } from '../guest';
import {
  FrameDecoder,
  FrameType,
  FRAME_MAX_LENGTH,
  HANDSHAKE_SIZE,
  HELLO_MAX_LENGTH,
  PAGE_SIZE,
  PACKET_SLOTS,
  bytesToUuid,
  checkHandshake,
  claimedChannelId,
  classifyConnection,
  decodeHandshake,
  decodeJsonPayload,
  describeMagic,
  encodeJsonFrame,
  uuidToBytes,
  type Frame,
  type Handshake,
} from '../protocol';
import { compressionOps } from './compression';
import { Connection } from './connection';
import { MigrationEmitter, type EventListener } from './emitter';
import { IncomingMigration, type IncomingResult } from './incoming';
import { DiscardReader, FixedReader, HoldReader, type ReadConsumer } from './socket-reader';
import { TLS_HANDSHAKE_RECORD, abandon, loadServerCredentials, secureServer, type TlsInfo, type TlsServerConfig, type TlsServerCredentials } from './tls';

export interface DestinationOptions {
  host?: string;
  port?: number;
  /** Expected channel count (`--channels`); null learns it from each hello. */
  channels?: number | null;
  /** Expected guest UUID (`--uuid`); channels are checked against it as they arrive. */
  uuid?: string | null;
  handshakeTimeoutMs?: number;
  setupTimeoutMs?: number;
  noProgressTimeoutMs?: number;
  tickMs?: number;
  /**
   * RAM committed to incoming guests, all together: those being received and those that
   * arrived here and still run (bytes). A hello that would pass it is refused
   * (MIGRATION_RAM_LIMIT) before a byte is allocated. Default: 90% of this host's memory.
   */
  maxRamBytes?: number;
  /** Incoming migrations at once (MIGRATION_TOO_MANY_MIGRATIONS past it). Default 64. */
  maxMigrations?: number;
  /**
   * Connections no migration owns yet (before their handshake or hello, or held waiting for
   * their main channel), in total and per peer address. At the limit the oldest of them is
   * closed (MIGRATION_TOO_MANY_CONNECTIONS) to make room: a legitimate channel sends its
   * handshake at once, so an idle flood loses its own connections first. Default: half the
   * process's open-file limit, 16..1024; per peer the same.
   */
  maxConnections?: number;
  maxConnectionsPerPeer?: number;
  /**
   * Whether a guest of this uuid runs on this host and stays (not the source of a migration
   * away): a hello for it is refused with MIGRATION_GUEST_EXISTS unless it says `replace`.
   * Given by an owner that knows every guest of the host (the console, an agent); without it
   * the destination asks the guests it delivered itself.
   */
  guestRunning?: (uuid: string) => boolean;
  /**
   * The owner's own refusal of a hello (null: none), after the destination's checks: the
   * console refuses one that claims the id of a migration it knows without its pairing.
   */
  vetHello?: (hello: Hello) => MigrationError | null;
  /** Compression methods a source may announce (`--compression-allow`); default all. */
  compressionAllow?: Compression[];
  /** TLS required on every channel (credentials read at listen()); null: in clear. */
  tls?: TlsServerConfig | null;
}

const MAIN_CHUNK = 64 * 1024;
/** TCP keepalive on every accepted socket: a peer that vanished is found by the kernel too. */
const KEEPALIVE_MS = 5000;

interface Held {
  conn: Connection;
  hs: Handshake;
  uuid: string;
  timer: NodeJS.Timeout;
}

export class Destination {
  private server: net.Server | null = null;
  private nextConnection = 0;
  private readonly migrations = new Map<string, IncomingMigration>();
  private readonly held: Held[] = [];
  /** Migrations that ended lately, by uuid: their late channels are stale, not strays. */
  private readonly ended = new Map<string, { id: string; at: number }>();
  private readonly open = new Set<Connection>();
  private readonly listeners = new Set<EventListener>();
  private readonly migrationListeners = new Set<(m: IncomingMigration) => void>();
  /** Emits destination-level events (rejections no migration can be blamed for). */
  private readonly own = new MigrationEmitter('destination', 'destination', null);
  readonly opts: Required<Omit<DestinationOptions, 'uuid' | 'channels' | 'tls' | 'guestRunning' | 'vetHello'>> & {
    uuid: string | null;
    channels: number | null;
    tls: TlsServerConfig | null;
    guestRunning: ((uuid: string) => boolean) | null;
    vetHello: ((hello: Hello) => MigrationError | null) | null;
  };
  /** Connections no migration owns (yet), oldest first: what maxConnections bounds. */
  private readonly pending = new Set<Connection>();
  /** Guests that arrived here and may still run, by uuid: one identity, one running guest. */
  private readonly delivered = new Map<string, Guest>();
  /** Loaded by listen() when opts.tls is set. */
  private tlsCreds: TlsServerCredentials | null = null;
  /** TLS handshakes under way: ended without a word on close(). */
  private readonly handshaking = new Set<tls.TLSSocket>();
  private readonly expectUuid: Uint8Array | null;
  private closing = false;

  constructor(opts: DestinationOptions = {}) {
    this.opts = {
      host: opts.host ?? '127.0.0.1',
      port: opts.port ?? 0,
      channels: opts.channels ?? null,
      uuid: opts.uuid ?? null,
      handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 10_000,
      setupTimeoutMs: opts.setupTimeoutMs ?? 10_000,
      noProgressTimeoutMs: opts.noProgressTimeoutMs ?? 10_000,
      tickMs: opts.tickMs ?? 250,
      maxRamBytes: opts.maxRamBytes ?? Math.floor(os.totalmem() * 0.9),
      maxMigrations: opts.maxMigrations ?? 64,
      maxConnections: opts.maxConnections ?? defaultMaxConnections(),
      maxConnectionsPerPeer: opts.maxConnectionsPerPeer ?? opts.maxConnections ?? defaultMaxConnections(),
      guestRunning: opts.guestRunning ?? null,
      vetHello: opts.vetHello ?? null,
      compressionAllow: [...new Set(opts.compressionAllow ?? COMPRESSION_METHODS)],
      tls: opts.tls ?? null,
    };
    if (this.opts.compressionAllow.length === 0) throw new ConfigInvalidError('compression-allow must name at least one method (none, zlib, zstd)');
    if (this.opts.channels !== null && !(Number.isInteger(this.opts.channels) && this.opts.channels >= 1 && this.opts.channels <= 255)) {
      throw new ConfigInvalidError(`channels must be 1..255, got ${this.opts.channels}`);
    }
    for (const k of ['maxRamBytes', 'maxMigrations', 'maxConnections', 'maxConnectionsPerPeer'] as const) {
      const v = this.opts[k];
      if (!(Number.isSafeInteger(v) && v >= 1)) throw new ConfigInvalidError(`${k} must be a whole number of at least 1, got ${v}`);
    }
    this.expectUuid = this.opts.uuid ? uuidToBytes(this.opts.uuid) : null;
    // Connection-level rejections carry migration: null.
    this.own.on((e) => this.forward({ ...e, migration: null } as MigrationEvent));
  }

  /** The owner that knows this host's guests and migrations (the console's or an agent's registry). */
  attachOwner(owner: { guestRunning?: (uuid: string) => boolean; vetHello?: (hello: Hello) => MigrationError | null }): void {
    if (owner.guestRunning) this.opts.guestRunning = owner.guestRunning;
    if (owner.vetHello) this.opts.vetHello = owner.vetHello;
  }

  /** Every event: of each migration, and destination-level rejections. */
  onEvent(fn: EventListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** A migration's hello was accepted (its events are forwarded to onEvent too). */
  onMigration(fn: (m: IncomingMigration) => void): () => void {
    this.migrationListeners.add(fn);
    return () => this.migrationListeners.delete(fn);
  }

  private forward(e: MigrationEvent): void {
    for (const fn of this.listeners) {
      try {
        fn(e);
      } catch {
        // a listener's bug must not break the destination
      }
    }
  }

  async listen(): Promise<{ host: string; port: number }> {
    // Bad credentials stop the destination here, before it accepts anything.
    if (this.opts.tls) this.tlsCreds = await loadServerCredentials(this.opts.tls);
    // zstd's wasm is instantiated now, so a hello that announces it never waits for it.
    for (const m of this.opts.compressionAllow) await compressionOps(m).load();
    const server = net.createServer({ pauseOnConnect: true, noDelay: true }, (s) => this.onConnection(s));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', () => {});
    return this.address;
  }

  get address(): { host: string; port: number } {
    const a = this.server?.address();
    if (!a || typeof a === 'string') throw new Error('destination is not listening');
    return { host: a.address, port: a.port };
  }

  get active(): IncomingMigration[] {
    return [...this.migrations.values()];
  }

  /** Guests that arrived here and still run (they count against maxRamBytes until stopped). */
  get guests(): Guest[] {
    for (const [uuid, g] of this.delivered) if (g.state === 'stopped') this.delivered.delete(uuid);
    return [...this.delivered.values()];
  }

  /** RAM of the migrations being received and of the guests that arrived and run. */
  get committedRam(): number {
    let n = 0;
    for (const m of this.migrations.values()) n += m.guest.ramSize;
    for (const g of this.guests) n += g.ramSize;
    return n;
  }

  /** Connections no migration owns yet (waiting for their first bytes, a handshake, a hello or their main channel). */
  get pendingConnections(): number {
    this.prunePending();
    return this.pending.size;
  }

  /** Stops listening; cancels migrations in flight; closes held connections. */
  async close(): Promise<void> {
    this.closing = true;
    for (const m of this.migrations.values()) m.cancel('destination shutting down');
    for (const h of this.held.splice(0)) {
      clearTimeout(h.timer);
      h.conn.destroy();
    }
    for (const t of this.handshaking) abandon(t);
    this.handshaking.clear();
    // A connection saying its last word (a verdict, a refusal) is let finish: destroyed, its
    // frame may still wait in a TLS socket's queue and be lost. finish() bounds the wait.
    const finishing: Array<Promise<void>> = [];
    for (const c of this.open) {
      if (c.finished) finishing.push(c.finished);
      else c.destroy();
    }
    const server = this.server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    await Promise.all([...this.migrations.values()].map((m) => m.done));
    await Promise.all(finishing);
  }

  // --- accept and classify -----------------------------------------------------------------

  private onConnection(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const number = ++this.nextConnection;
    socket.setKeepAlive(true, KEEPALIVE_MS);
    let conn!: Connection;
    const first = new FixedReader(new Uint8Array(4), (b) => this.classify(conn, b, timer));
    conn = new Connection(number, socket, first, (err) => this.readError(conn, err));
    conn.partial = () => first.buf.subarray(0, first.received);
    this.open.add(conn);
    this.admit(conn);
    socket.once('close', () => {
      this.open.delete(conn);
      this.pending.delete(conn);
    });
    const timer = setTimeout(() => this.handshakeTimeout(conn), this.opts.handshakeTimeoutMs);
    conn.onEnd(() => {
      clearTimeout(timer);
      if (conn.owner !== null) return;
      this.shortHandshake(conn);
    });
    conn.reader.start();
  }

  /**
   * A new connection joins those no migration owns; past maxConnections (in total, or from
   * its peer's address) the oldest of them is closed to make room.
   */
  private admit(conn: Connection): void {
    this.prunePending();
    const host = conn.socket.remoteAddress ?? 'unknown';
    const fromPeer = [...this.pending].filter((c) => (c.socket.remoteAddress ?? 'unknown') === host);
    if (fromPeer.length >= this.opts.maxConnectionsPerPeer) this.evict(fromPeer[0], `${fromPeer.length} connections from ${host}`, this.opts.maxConnectionsPerPeer, 'per peer');
    else if (this.pending.size >= this.opts.maxConnections) this.evict(this.pending.values().next().value!, `${this.pending.size} connections`, this.opts.maxConnections, 'in total');
    this.pending.add(conn);
  }

  private prunePending(): void {
    for (const c of this.pending) if (c.isClosed || c.owner === 'refused' || c.owner instanceof IncomingMigration) this.pending.delete(c);
  }

  private evict(old: Connection, what: string, limit: number, scope: string): void {
    this.pending.delete(old);
    const held = this.held.find((h) => h.conn === old);
    if (held) this.unhold(held);
    const channel = held ? held.hs.id : null;
    const err = new TooManyConnectionsError(
      `${channelPrefix({ channel, connection: old.number, peer: old.peer })}closed to make room: ${what} without a migration, the limit ${scope} is ${limit} (--max-connections${scope === 'per peer' ? '-per-peer' : ''})`,
      { channel, connection: old.number, peer: old.peer, expected: `at most ${limit} connections ${scope} without a migration`, received: String(limit + 1) },
    );
    old.owner = null;
    if (classifyConnection(old.partial()) === 'main') this.refuseMain(old, err);
    else this.refuse(old, err);
  }

  /** No whole handshake (or hello) within the handshake timeout of the connection's arrival. */
  private handshakeTimeout(conn: Connection): void {
    if (conn.owner !== null || conn.isClosed) return;
    const got = conn.partial().length;
    const ms = this.opts.handshakeTimeoutMs;
    const err = new ChannelHandshakeTimeoutError(`connection #${conn.number} from ${conn.peer}: ${got} bytes of handshake within ${ms} ms`, {
      connection: conn.number,
      peer: conn.peer,
      channel: null,
      expected: `a handshake within ${ms} ms`,
      received: `${got} bytes`,
    });
    // A main channel that never finished its hello is told why, as every main refusal is.
    if (classifyConnection(conn.partial()) === 'main') this.refuseMain(conn, err);
    else this.refuse(conn, err);
  }

  private classify(conn: Connection, first: Uint8Array, timer: NodeJS.Timeout): void {
    if (conn.security === null) {
      if (first[0] === TLS_HANDSHAKE_RECORD) {
        this.acceptTls(conn, first, timer);
        return;
      }
      if (this.tlsCreds && this.refuseClear(conn, first, timer)) return;
    }
    const kind = classifyConnection(first);
    if (kind === 'main') {
      // Nothing larger than a hello is buffered for a peer until its hello is accepted.
      const decoder = new FrameDecoder(HELLO_MAX_LENGTH, { preamble: true, peer: conn.peer, connection: conn.number });
      // The main channel's bytes so far, for reports (the preamble and a frame's first bytes).
      let seen = first;
      conn.partial = () => seen;
      let frames: Frame[] = decoder.push(first);
      const scratch = new Uint8Array(MAIN_CHUNK);
      const consumer: ReadConsumer = {
        next: () => scratch,
        advance: (n) => {
          if (seen.length < HANDSHAKE_SIZE) seen = Buffer.concat([seen, scratch.subarray(0, Math.min(n, HANDSHAKE_SIZE))]);
          try {
            frames = frames.concat(decoder.push(scratch.subarray(0, n)));
          } catch (err) {
            clearTimeout(timer);
            this.refuseMain(conn, withContext(asMigrationError(err), { peer: conn.peer, connection: conn.number }));
            return;
          }
          if (frames.length === 0) return;
          clearTimeout(timer);
          const [helloFrame, ...rest] = frames;
          frames = [];
          conn.reader.pause();
          conn.reader.use(new HoldReader());
          this.onHello(conn, decoder, helloFrame, rest);
        },
      };
      conn.reader.use(consumer);
      return;
    }
    if (kind === 'multifd') {
      this.readHandshake(conn, first, timer, (buf) => this.onHandshake(conn, buf));
      return;
    }
    clearTimeout(timer);
    const magic = new DataView(first.buffer, first.byteOffset, 4).getUint32(0);
    this.refuse(
      conn,
      new MigrationError(
        'MIGRATION_CHANNEL_BAD_MAGIC',
        `connection #${conn.number} from ${conn.peer}: received magic ${describeMagic(magic)} but expected a multifd channel (0x11223344) or a main channel (0x4d464443)`,
        { connection: conn.number, peer: conn.peer, channel: null, expected: '0x11223344', received: `0x${magic.toString(16).padStart(8, '0')}`, field: 'magic' },
      ),
    );
  }

  // --- TLS --------------------------------------------------------------------------------

  /**
   * A TLS ClientHello: without credentials it is refused, in clear; with them the TLS socket
   * takes the connection over (the 4 bytes read so far are put back for it), and once its
   * handshake is done the decrypted bytes are classified as any connection's are. The
   * handshake timeout of the connection covers the TLS handshake too.
   */
  private acceptTls(raw: Connection, first: Uint8Array, timer: NodeJS.Timeout): void {
    clearTimeout(timer);
    const creds = this.tlsCreds;
    const where = { connection: raw.number, peer: raw.peer, channel: null };
    if (!creds) {
      const err = new TlsNotConfiguredError(
        `connection #${raw.number} from ${raw.peer}: the source opened TLS, but this destination has no TLS credentials (give it --tls-cert/--tls-key or --tls-psk, or migrate in clear)`,
        { ...where, expected: 'a connection in clear', received: 'a TLS ClientHello' },
      );
      this.report(err, null, false);
      raw.owner = 'refused';
      // In clear: the source's TLS layer reads it as a record of no TLS version, which says "no TLS here".
      raw.finish(encodeJsonFrame(FrameType.Failed, err.toJSON()));
      return;
    }
    raw.owner = 'tls';
    raw.offEnd();
    raw.reader.pause();
    raw.reader.use(new HoldReader());
    // Once the read that brought the 4 bytes has returned (in 'data' mode the rest of its
    // chunk is held by then), everything read so far goes back for the TLS socket.
    queueMicrotask(() => this.startTls(raw, first, creds));
  }

  private startTls(raw: Connection, first: Uint8Array, creds: TlsServerCredentials): void {
    if (raw.isClosed || this.closing) {
      raw.destroy();
      return;
    }
    const where = { connection: raw.number, peer: raw.peer, channel: null };
    raw.socket.unshift(Buffer.concat([first, ...raw.reader.takeHeld()]));
    let inner: Connection | null = null;
    const ms = this.opts.handshakeTimeoutMs;
    const tlsTimer = setTimeout(
      () => {
        if (inner) {
          this.handshakeTimeout(inner);
          return;
        }
        abandon(socket);
        this.handshaking.delete(socket);
        this.report(
          new TlsHandshakeFailedError(`connection #${raw.number} from ${raw.peer}: no TLS handshake within ${ms} ms`, {
            ...where,
            expected: `a TLS handshake within ${ms} ms`,
            received: 'an unfinished one',
          }),
          null,
          false,
        );
      },
      Math.max(1, raw.acceptedAt + ms - Date.now()),
    );
    const socket = secureServer(raw.socket, creds, {
      connection: raw.number,
      peer: raw.peer,
      secure: (s, info) => {
        this.handshaking.delete(s);
        inner = this.onSecure(raw, s, info, tlsTimer);
      },
      refused: (err, open) => {
        clearTimeout(tlsTimer);
        this.handshaking.delete(socket);
        this.report(err, null, false);
        // The handshake is done but its client refused: say why over TLS, then close.
        if (open) this.finishTls(raw.number, open, encodeJsonFrame(FrameType.Failed, err.toJSON()));
      },
    });
    this.handshaking.add(socket);
    socket.once('close', () => {
      this.handshaking.delete(socket);
      if (!inner) clearTimeout(tlsTimer);
    });
  }

  /** TLS is up: the connection starts again over the TLS socket, from its first decrypted byte. */
  private onSecure(raw: Connection, socket: tls.TLSSocket, info: TlsInfo, timer: NodeJS.Timeout): Connection {
    // The TLS connection stands for it now (closing the TCP socket under it would cut it short).
    this.open.delete(raw);
    let conn!: Connection;
    const first = new FixedReader(new Uint8Array(4), (b) => this.classify(conn, b, timer));
    conn = new Connection(raw.number, socket, first, (err) => this.readError(conn, err), info, raw.acceptedAt);
    conn.partial = () => first.buf.subarray(0, first.received);
    this.open.add(conn);
    // Still without a migration: it keeps its place among the pending connections.
    if (this.pending.delete(raw)) this.pending.add(conn);
    socket.once('close', () => {
      this.open.delete(conn);
      this.pending.delete(conn);
    });
    conn.onEnd(() => {
      clearTimeout(timer);
      if (conn.owner !== null) return;
      if (conn.partial().length > 0) {
        this.shortHandshake(conn);
        return;
      }
      // In TLS 1.3 a source that refuses our certificate finds out after its side of the
      // handshake is done, and just closes.
      this.refuse(
        conn,
        new TlsHandshakeFailedError(
          `connection #${conn.number} from ${conn.peer}: the source closed the connection right after the TLS handshake (it may not trust this destination's certificate, or not the host name it names)`,
          { connection: conn.number, peer: conn.peer, channel: null, expected: 'a handshake after TLS', received: 'connection closed' },
        ),
      );
    });
    conn.reader.start();
    return conn;
  }

  /**
   * In clear at a destination that requires TLS. A main channel is told so in clear (its
   * source reports MIGRATION_TLS_REQUIRED); a multifd channel is read up to its id, to name
   * it. Garbage (false) is left to the bad-magic refusal.
   */
  private refuseClear(conn: Connection, first: Uint8Array, timer: NodeJS.Timeout): boolean {
    const kind = classifyConnection(first);
    const where = { connection: conn.number, peer: conn.peer };
    const mode = this.tlsCreds!.mode;
    if (kind === 'main') {
      clearTimeout(timer);
      this.refuseMain(
        conn,
        new TlsRequiredError(`main channel from ${conn.peer}: this destination requires TLS (${mode}), the source connected in clear`, {
          ...where,
          channel: null,
          expected: `TLS (${mode})`,
          received: 'a main channel in clear',
        }),
      );
      return true;
    }
    if (kind !== 'multifd') return false;
    this.readHandshake(conn, first, timer, (buf) => {
      const id = claimedChannelId(buf);
      const err = new TlsRequiredError(`${channelPrefix({ ...where, channel: id })}this destination requires TLS (${mode}), the channel connected in clear`, {
        ...where,
        channel: id,
        expected: `TLS (${mode})`,
        received: 'a multifd handshake in clear',
      });
      // Not attributable: bytes in clear prove nothing of whose they are. The source knows its own.
      this.report(err, null, false);
      conn.owner = 'refused';
      conn.finish(encodeJsonFrame(FrameType.Failed, err.toJSON()));
    });
    return true;
  }

  /** A last frame over a TLS connection refused after its handshake, then close. */
  private finishTls(number: number, socket: tls.TLSSocket, last: Uint8Array): void {
    const conn = new Connection(number, socket, new DiscardReader(), () => {});
    conn.owner = 'refused';
    this.open.add(conn);
    socket.once('close', () => this.open.delete(conn));
    conn.finish(last);
  }

  /**
   * Reads the rest of a multifd handshake whose first 4 bytes came, then holds the connection
   * (paused) and hands the 64 bytes on; until then a close is a short handshake of what came.
   */
  private readHandshake(conn: Connection, first: Uint8Array, timer: NodeJS.Timeout, then: (buf: Uint8Array) => void): void {
    const buf = new Uint8Array(HANDSHAKE_SIZE);
    buf.set(first);
    const rest = new FixedReader(buf.subarray(4), () => {
      clearTimeout(timer);
      conn.reader.pause();
      conn.reader.use(new HoldReader());
      then(buf);
    });
    conn.partial = () => buf.subarray(0, 4 + rest.received);
    conn.reader.use(rest);
  }

  /** The peer closed before a whole handshake (or hello). */
  private shortHandshake(conn: Connection): void {
    const partial = conn.partial();
    const got = partial.length;
    const multifd = classifyConnection(partial) === 'multifd';
    const claimed = multifd ? claimedChannelId(partial) : null;
    const err = new ChannelShortHandshakeError(
      `${channelPrefix({ channel: claimed, connection: conn.number, peer: conn.peer })}connection closed after ${got} of ${HANDSHAKE_SIZE} handshake bytes`,
      { connection: conn.number, peer: conn.peer, channel: claimed, expected: `${HANDSHAKE_SIZE} bytes`, received: `${got} bytes` },
    );
    // With the uuid complete, the fault is attributable to the migration it names.
    if (multifd && partial.length >= 24) {
      const m = this.migrations.get(bytesToUuid(partial.subarray(8, 24)));
      if (m && m.isSetup) {
        this.report(err, m, true);
        drop(conn);
        return;
      }
    }
    this.refuse(conn, err);
  }

  private readError(conn: Connection, err: unknown): void {
    const owner = conn.owner;
    if (owner instanceof IncomingMigration) owner.channelReadError(conn, err);
    else this.refuse(conn, asMigrationError(err, { connection: conn.number, peer: conn.peer }));
  }

  // --- main channel -----------------------------------------------------------------------

  private onHello(conn: Connection, decoder: FrameDecoder, f: Frame, rest: Frame[]): void {
    const where = { peer: conn.peer, connection: conn.number };
    let hello: Hello;
    try {
      if (f.type !== FrameType.Hello) {
        throw new MainBadFrameError(`main channel from ${conn.peer}: first frame is 0x${f.type.toString(16)}, expected a hello (0x01)`, {
          ...where,
          expected: '0x01',
          received: `0x${f.type.toString(16)}`,
        });
      }
      const r = HelloSchema.safeParse(decodeJsonPayload(f, where));
      if (!r.success) {
        const issue = r.error.issues[0];
        throw new MainBadFrameError(`main channel from ${conn.peer}: bad hello: ${issue?.path.join('.')}: ${issue?.message}`, {
          ...where,
          field: issue?.path.join('.') ?? null,
        });
      }
      hello = r.data;
      this.checkHello(hello, where);
      this.admitHello(hello, where);
    } catch (err) {
      this.refuseMain(conn, withContext(asMigrationError(err), where));
      return;
    }
    const heldHere = this.held.filter((h) => h.uuid === hello.uuid);
    const firstAt = Math.min(conn.acceptedAt, ...heldHere.map((h) => h.conn.acceptedAt));
    let m: IncomingMigration;
    try {
      // The guest's own checks (its uuid, its blocks' names) refuse here, before any listener.
      m = new IncomingMigration(hello, conn, decoder, {
        setupTimeoutMs: this.opts.setupTimeoutMs,
        noProgressTimeoutMs: this.opts.noProgressTimeoutMs,
        tickMs: this.opts.tickMs,
        firstConnectionAt: firstAt,
      });
    } catch (err) {
      conn.owner = null;
      this.refuseMain(conn, withContext(asMigrationError(err), where));
      return;
    }
    // The old copy is gone, says the operator: it stops before the new one arrives.
    if (hello.replace) void this.delivered.get(hello.uuid)?.stop();
    this.delivered.delete(hello.uuid);
    decoder.maxLength = FRAME_MAX_LENGTH;
    this.migrations.set(hello.uuid, m);
    m.events.on((e) => this.forward(e));
    for (const fn of this.migrationListeners) fn(m);
    m.begin();
    void m.done.then((r) => {
      if (r.guest) {
        const g = r.guest;
        this.delivered.set(hello.uuid, g);
        // Let go of it when it stops, so its RAM can go back to the host.
        void g.stopped.then(() => {
          if (this.delivered.get(hello.uuid) === g) this.delivered.delete(hello.uuid);
        });
      }
      if (this.migrations.get(hello.uuid) !== m) return;
      this.migrations.delete(hello.uuid);
      this.ended.set(hello.uuid, { id: m.id, at: Date.now() });
    });
    conn.reader.use({ next: () => MAIN_SCRATCH, advance: (n) => m.mainBytes(MAIN_SCRATCH.subarray(0, n)) });
    conn.reader.start();
    conn.socket.write(encodeJsonFrame(FrameType.HelloAck, { peer: conn.peer }));
    m.enqueue(rest);
    // Channels that came before their main channel, in arrival order.
    for (const h of heldHere) {
      this.unhold(h);
      this.route(h.conn, h.hs);
    }
  }

  private checkHello(hello: Hello, where: { peer: string; connection: number }): void {
    if (this.expectUuid && hello.uuid !== bytesToUuid(this.expectUuid)) {
      throw new ChannelUuidMismatchError(`main channel from ${where.peer}: received uuid ${hello.uuid} but this destination expects ${this.opts.uuid}`, {
        ...where,
        channel: null,
        expected: this.opts.uuid,
        received: hello.uuid,
        field: 'uuid',
      });
    }
    if (this.opts.channels !== null && hello.channels !== this.opts.channels) {
      throw new ChannelCountMismatchError(
        `main channel from ${where.peer}: the source opens ${hello.channels} channels but this destination expects ${this.opts.channels}`,
        { ...where, expected: String(this.opts.channels), received: String(hello.channels) },
      );
    }
    if (hello.slots !== PACKET_SLOTS) {
      throw new MainBadFrameError(`main channel from ${where.peer}: packets of ${hello.slots} pages, this destination takes ${PACKET_SLOTS}`, {
        ...where,
        field: 'slots',
        expected: String(PACKET_SLOTS),
        received: String(hello.slots),
      });
    }
    if (!this.opts.compressionAllow.includes(hello.compression)) {
      const allowed = this.opts.compressionAllow.join(', ');
      throw new CompressionRefusedError(
        `main channel from ${where.peer}: the source compresses with ${hello.compression}, this destination allows ${allowed}`,
        { ...where, field: 'compression', expected: allowed, received: hello.compression },
      );
    }
    // (the RAM limit is checked in admitHello, against everything committed)
    const names = new Set<string>();
    for (const b of hello.blocks) {
      if (b.size % PAGE_SIZE !== 0) {
        throw new MainBadFrameError(`main channel from ${where.peer}: block ${b.name} is ${b.size} bytes, not a whole number of pages`, { ...where, field: 'blocks' });
      }
      if (names.has(b.name)) throw new MainBadFrameError(`main channel from ${where.peer}: block ${b.name} listed twice`, { ...where, field: 'blocks' });
      names.add(b.name);
    }
  }

  /**
   * What this destination can take on, checked before a byte of guest RAM is allocated: one
   * migration per guest, one running copy of each guest, the migration count, and the RAM
   * of every guest arriving or arrived.
   */
  private admitHello(hello: Hello, where: { peer: string; connection: number }): void {
    const existing = this.migrations.get(hello.uuid);
    if (existing && !existing.isTerminal) {
      throw new BusyError(`main channel from ${where.peer}: a migration of guest ${hello.uuid} is already running here (${existing.id})`, {
        ...where,
        expected: 'no migration of this guest in progress',
        received: `migration ${hello.migrationId}`,
      });
    }
    const here = this.guests.find((g) => g.uuid === hello.uuid);
    const exists = this.opts.guestRunning ? this.opts.guestRunning(hello.uuid) : here !== undefined;
    if (!hello.replace && exists) {
      throw new GuestExistsError(
        `main channel from ${where.peer}: guest ${hello.uuid} already runs on this host; two running copies of one guest would diverge (stop this copy first, or migrate with --replace if it is gone)`,
        { ...where, field: 'uuid', expected: `no running guest ${hello.uuid} here`, received: `a migration of guest ${hello.uuid}` },
      );
    }
    if (this.migrations.size >= this.opts.maxMigrations) {
      throw new TooManyMigrationsError(
        `main channel from ${where.peer}: ${this.migrations.size} migrations are arriving here already, the limit is ${this.opts.maxMigrations} (--max-migrations)`,
        { ...where, expected: `at most ${this.opts.maxMigrations} migrations at once`, received: String(this.migrations.size + 1) },
      );
    }
    const vetoed = this.opts.vetHello?.(hello);
    if (vetoed) throw vetoed;
    const size = hello.blocks.reduce((n, b) => n + b.size, 0);
    // A replaced copy's RAM is given back as the new one arrives.
    const committed = this.committedRam - (hello.replace && here ? here.ramSize : 0);
    if (committed + size > this.opts.maxRamBytes) {
      throw new RamLimitError(
        `main channel from ${where.peer}: a guest of ${formatBytes(size)} does not fit: ${formatBytes(committed)} of this destination's ${formatBytes(this.opts.maxRamBytes)} (--max-ram) are committed to incoming and arrived guests`,
        { ...where, field: 'blocks', expected: `at most ${this.opts.maxRamBytes - committed} bytes`, received: `${size} bytes` },
      );
    }
  }

  /** A main channel refused before a migration exists: say why on it, then close. */
  private refuseMain(conn: Connection, err: MigrationError): void {
    this.own.emit('channel-rejected', MigrationEmitter.failure(err));
    conn.owner = 'refused';
    conn.finish(encodeJsonFrame(FrameType.Failed, err.toJSON()));
  }

  // --- multifd channels -------------------------------------------------------------------

  private onHandshake(conn: Connection, buf: Uint8Array): void {
    const hs = decodeHandshake(buf, { peer: conn.peer, connection: conn.number });
    this.route(conn, hs);
  }

  /** DESIGN 3.5: to its migration, held until it is known, or refused. */
  private route(conn: Connection, hs: Handshake): void {
    if (conn.isClosed) return;
    const ctx = { peer: conn.peer, connection: conn.number };
    const uuid = bytesToUuid(hs.uuid);
    const m = this.migrations.get(uuid);
    if (m) {
      const err = checkHandshake(hs, { uuid: m.uuidBytes, channels: m.channelCount, isTaken: (id) => m.hasChannel(id) }, ctx);
      if (!err && m.isSetup) {
        void m.acceptChannel(conn, hs.id);
        return;
      }
      const late =
        err ??
        new ChannelIdDuplicateError(`${channelPrefix({ ...ctx, channel: hs.id })}arrived after migration ${m.id} finished its setup`, {
          ...ctx,
          channel: hs.id,
          expected: 'channels only during setup',
          received: `channel ${hs.id} in state ${m.state}`,
          field: 'id',
        });
      this.report(late, m, m.isSetup);
      drop(conn);
      return;
    }
    const ended = this.recentlyEnded(uuid);
    if (ended) {
      // A channel of an attempt that already ended (its source gave up while it was in flight).
      const err = new ChannelStaleError(
        `${channelPrefix({ ...ctx, channel: hs.id })}belongs to migration ${ended.id} of guest ${uuid}, which ended ${Date.now() - ended.at} ms ago`,
        { ...ctx, channel: hs.id, expected: 'a migration in setup', received: `channel of ended migration ${ended.id}` },
      );
      this.report(err, null, false);
      drop(conn);
      return;
    }
    const inSetup = [...this.migrations.values()].filter((x) => x.isSetup);
    // With exactly one migration in setup, a channel that is not its own is its fault, as
    // in QEMU; with several, it may belong to a migration not yet announced: hold it.
    const only = inSetup.length === 1 ? inSetup[0] : null;
    const err =
      checkHandshake(hs, { uuid: this.expectUuid, channels: this.opts.channels }, ctx) ??
      (only ? checkHandshake(hs, { uuid: only.uuidBytes, channels: null }, ctx) : null);
    if (err) {
      this.report(err, only, only !== null);
      drop(conn);
      return;
    }
    this.hold(conn, hs, uuid, inSetup);
  }

  private hold(conn: Connection, hs: Handshake, uuid: string, inSetup: IncomingMigration[]): void {
    // Held connections count against maxConnections as every connection without a migration does.
    const perUuid = (this.opts.channels ?? 255) + 1;
    const same = this.held.filter((h) => h.uuid === uuid).length;
    if (same >= perUuid) {
      const err = new TooManyConnectionsError(
        `${channelPrefix({ channel: hs.id, connection: conn.number, peer: conn.peer })}refused: ${same} connections for uuid ${uuid} already wait for their main channel`,
        { channel: hs.id, connection: conn.number, peer: conn.peer, expected: `at most ${perUuid}`, received: String(same + 1) },
      );
      this.report(err, null, false);
      drop(conn);
      return;
    }
    conn.owner = 'held';
    const timer = setTimeout(() => {
      this.unhold(h);
      const err = new ChannelUuidMismatchError(
        `${channelPrefix({ channel: hs.id, connection: conn.number, peer: conn.peer })}received uuid ${uuid} but no migration of that guest arrived within ${this.opts.setupTimeoutMs} ms`,
        { channel: hs.id, connection: conn.number, peer: conn.peer, expected: 'a migration in setup with this uuid', received: uuid, field: 'uuid' },
      );
      this.report(err, null, false);
      drop(conn);
    }, this.opts.setupTimeoutMs);
    const h: Held = { conn, hs, uuid, timer };
    this.held.push(h);
    conn.onEnd(() => {
      if (this.held.includes(h)) {
        this.unhold(h);
        this.report(
          new ChannelShortHandshakeError(`${channelPrefix({ channel: hs.id, connection: conn.number, peer: conn.peer })}closed while waiting for its main channel`, {
            channel: hs.id,
            connection: conn.number,
            peer: conn.peer,
          }),
          null,
          false,
        );
      }
    });
    // Several migrations in setup: none is failed, each lists it as a possible cause.
    for (const m of inSetup) m.rejections.push({ ...new ChannelUuidMismatchError(`connection #${conn.number} from ${conn.peer}: uuid ${uuid} matches no migration in setup (held)`, { channel: hs.id, connection: conn.number, peer: conn.peer, received: uuid }).toJSON(), at: Date.now() });
  }

  private recentlyEnded(uuid: string): { id: string; at: number } | null {
    const now = Date.now();
    for (const [u, e] of this.ended) if (now - e.at > this.opts.setupTimeoutMs) this.ended.delete(u);
    return this.ended.get(uuid) ?? null;
  }

  private unhold(h: Held): void {
    clearTimeout(h.timer);
    const i = this.held.indexOf(h);
    if (i >= 0) this.held.splice(i, 1);
    h.conn.owner = null;
  }

  /**
   * Reports a refused connection at once: on the migration it concerns (which fails if
   * `attributable`), else as a destination-level event; migrations in setup list it.
   */
  private report(err: MigrationError, m: IncomingMigration | null, attributable: boolean): void {
    if (m) {
      m.rejectConnection(err, attributable);
      return;
    }
    this.own.emit('channel-rejected', MigrationEmitter.failure(err));
    for (const x of this.migrations.values()) if (x.isSetup) x.rejectConnection(err, false);
  }

  /** Refuses a connection no migration owns yet. */
  private refuse(conn: Connection, err: MigrationError): void {
    if (conn.owner !== null) return;
    this.report(err, null, false);
    drop(conn);
  }
}

/**
 * Half the process's open-file limit (Linux: /proc/self/limits), within 16..1024: room for
 * the migrations' own channels, whatever floods the port.
 */
function defaultMaxConnections(): number {
  let nofile = 2048;
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m) nofile = Number(m[1]);
  } catch {
    // not Linux: the default stands
  }
  return Math.max(16, Math.min(1024, Math.floor(nofile / 2)));
}

/** Closes a refused connection; its closing is not reported again. */
function drop(conn: Connection): void {
  conn.owner = 'refused';
  conn.destroy();
}

/** Main-channel reads land here; the frame decoder copies what it keeps. */
const MAIN_SCRATCH = new Uint8Array(MAIN_CHUNK);

export type { IncomingMigration, IncomingResult };
