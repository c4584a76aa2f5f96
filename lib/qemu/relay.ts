/**
 * A transparent TCP relay for a real QEMU migration, with the per-channel view.
 *
 * The source QEMU migrates to the relay's address; the relay forwards each connection to
 * the destination QEMU, bytes unchanged both ways, and watches the source's bytes go by:
 * QEMU's main stream through QemuMainDecoder (blocks, zero pages, sections, sync markers),
 * each multifd channel through PacketScanner (handshake, packets, pages, SYNCs). It never
 * copies or holds page data: it forwards the chunks it reads, with backpressure (a side
 * that cannot take more pauses the other).
 *
 * Order: every connection is classified by its first bytes, never by accept order. The
 * main channel (`QEVM`) is connected to the destination first and multifd channels only
 * after it, because QEMU 7.2's destination takes the first connection it accepts as the
 * main channel. A connection is half-closed like TCP: a FIN from one side is passed on,
 * an error on either side resets both.
 *
 * A "session" is one migration: it starts with a main channel (or a multifd channel that
 * arrives first) and ends when all its connections have closed. Its events are the
 * engine's (lib/contracts), with role 'relay': state, channel, channel-rejected, progress
 * snapshots, failed. The relay checks each handshake as it forwards it (the uuid of the
 * migration, the id range when the channel count is known, duplicates), so a fault it
 * forwards is named at once, whatever the destination then makes of it.
 *
 * For the lab it can inject the failure issue's handshake faults into real traffic
 * (`ch2:uuid`, `ch1:dup`, `ch0:id-9`, `ch3:magic`, `ch1:version`, `ch2:truncate:20`,
 * `ch1:stall`, `ch2:drop:65536`) and record each connection's forwarded bytes to files
 * that `multifd inspect` reads.
 */
import { randomUUID } from 'node:crypto';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { ChannelSnapshot, ChannelState, Compression, MigrationSnapshot, MigrationState } from '../contracts';
import { MigrationEmitter, type EventListener } from '../engine/emitter';
import { faultyHandshake, type Fault } from '../engine/faults';
import { RateMeter, emptyTimes, type ChannelTimes } from '../engine/stats';
import {
  ChannelClosedError,
  ChannelHandshakeTimeoutError,
  ChannelSetupTimeoutError,
  ChannelShortHandshakeError,
  ConfigInvalidError,
  ConnectFailedError,
  MainClosedError,
  MigrationError,
  asMigrationError,
  type SerializedError,
} from '../errors';
import {
  HANDSHAKE_SIZE,
  MULTIFD_MAGIC,
  QEMU_VM_MAGIC,
  bytesToUuid,
  checkHandshake,
  compressionName,
  decodeHandshake,
  readU32,
  uuidToBytes,
} from '../protocol';
import { QemuMainDecoder } from '../protocol/qemu-main';
import { PacketScanner } from '../protocol/scanner';

export interface RelayOptions {
  listenHost: string;
  listenPort: number;
  toHost: string;
  toPort: number;
  /** Record each connection's forwarded source bytes under DIR/<session>/. */
  record?: string | null;
  /** Handshake faults to inject, by multifd channel id. */
  faults?: readonly Fault[];
  /** The guest's UUID; default: the first multifd channel's, as the source sent it. */
  uuid?: string | null;
  /** The channel count, for the id range check; default: not checked. */
  channels?: number | null;
  /** Each connection must show its first bytes within this. Default 10 s. */
  handshakeTimeoutMs?: number;
  /** Multifd channels wait this long for their main channel. Default 10 s. */
  mainWaitMs?: number;
  /** Connecting to the destination. Default 10 s. */
  connectTimeoutMs?: number;
  /** Progress snapshots. Default 500 ms. */
  tickMs?: number;
}

/** Faults the relay can put into real traffic: the handshake ones, and drop. */
export const RELAY_FAULTS: readonly Fault['kind'][] = ['uuid', 'dup', 'id', 'id-big', 'magic', 'version', 'truncate', 'stall', 'drop'];

type Kind = 'main' | 'multifd' | 'other';

interface Conn {
  n: number;
  kind: Kind | null;
  /** Multifd channel id as the source sent it. */
  id: number | null;
  /** The id the forwarded handshake claims (a fault may change it): what duplicates are checked on. */
  sentId: number | null;
  peer: string;
  down: net.Socket;
  up: net.Socket | null;
  head: Buffer;
  fault: Fault | null;
  c2s: number;
  s2c: number;
  rate: RateMeter;
  state: ChannelState;
  times: ChannelTimes;
  error: SerializedError | null;
  recorder: WriteStream | null;
  scanner: PacketScanner | null;
  main: QemuMainDecoder | null;
  downEnded: boolean;
  upEnded: boolean;
  closed: boolean;
  /** The drop fault: source bytes still to forward before the connection is cut. */
  dropAfter: number | null;
  handshakeTimer: NodeJS.Timeout | null;
}

export interface RelaySessionSummary {
  id: string;
  state: MigrationState;
  recordDir: string | null;
  files: string[];
  snapshot: MigrationSnapshot;
}

class Session {
  readonly id = randomUUID();
  readonly emitter: MigrationEmitter;
  readonly conns: Conn[] = [];
  main: Conn | null = null;
  /** The main channel's upstream is connected: multifd channels may follow. */
  mainReady = false;
  held: Conn[] = [];
  state: MigrationState = 'setup';
  error: SerializedError | null = null;
  readonly startedAt = Date.now();
  endedAt: number | null = null;
  ramEnd = false;
  rounds = 0;
  uuid: string | null;
  readonly recordDir: string | null;
  readonly files: string[] = [];
  mainWait: NodeJS.Timeout | null = null;
  rate = new RateMeter();
  /** Snapshot the relay emitted last (kept for the summary). */
  last: MigrationSnapshot | null = null;

  constructor(readonly n: number, uuid: string | null, recordRoot: string | null) {
    this.uuid = uuid;
    this.emitter = new MigrationEmitter('relay', this.id, uuid);
    this.recordDir = recordRoot ? path.join(recordRoot, String(n)) : null;
  }
}

export class QemuRelay {
  readonly #opts: Required<Omit<RelayOptions, 'record' | 'uuid' | 'channels' | 'faults'>> & { record: string | null; uuid: string | null; channels: number | null };
  readonly #faults: Map<number, Fault>;
  readonly #listeners = new Set<EventListener>();
  readonly #sessionListeners = new Set<(s: RelaySessionSummary) => void>();
  #server: net.Server | null = null;
  #session: Session | null = null;
  readonly #open = new Set<Session>();
  #connections = 0;
  #sessions = 0;
  #ticker: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(opts: RelayOptions) {
    this.#opts = {
      listenHost: opts.listenHost,
      listenPort: opts.listenPort,
      toHost: opts.toHost,
      toPort: opts.toPort,
      record: opts.record ?? null,
      uuid: opts.uuid ?? null,
      channels: opts.channels ?? null,
      handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 10_000,
      mainWaitMs: opts.mainWaitMs ?? 10_000,
      connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
      tickMs: opts.tickMs ?? 500,
    };
    this.#faults = new Map();
    for (const f of opts.faults ?? []) {
      if (!RELAY_FAULTS.includes(f.kind)) {
        throw new ConfigInvalidError(`--inject ch${f.channel}:${f.kind}: the relay injects ${RELAY_FAULTS.join(', ')}; stream faults of our own source (bad-header, slow) need 'multifd migrate'`);
      }
      if (this.#faults.has(f.channel)) throw new ConfigInvalidError(`--inject: two faults for channel ${f.channel}`);
      this.#faults.set(f.channel, f);
    }
    if (opts.uuid) uuidToBytes(opts.uuid);
  }

  onEvent(fn: EventListener): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Called when a session has ended (all its connections closed). */
  onSession(fn: (s: RelaySessionSummary) => void): () => void {
    this.#sessionListeners.add(fn);
    return () => this.#sessionListeners.delete(fn);
  }

  async listen(): Promise<{ host: string; port: number }> {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => this.#accept(s));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#opts.listenPort, this.#opts.listenHost, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#ticker = setInterval(() => this.#tick(), this.#opts.tickMs);
    const a = server.address() as net.AddressInfo;
    return { host: a.address, port: a.port };
  }

  /** Stops listening and resets every connection still open; their sessions end as failed. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#ticker) clearInterval(this.#ticker);
    this.#ticker = null;
    const server = this.#server;
    this.#server = null;
    for (const s of [...this.#open]) {
      // Connections that already closed keep their own end (a clean close is not a failure).
      for (const c of s.conns) if (!c.closed) this.#destroy(c, c.error ? null : new ChannelClosedError(`${label(c)}: the relay was shut down`, { channel: c.id, peer: c.peer, connection: c.n }));
    }
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    await Promise.all([...this.#open].map((s) => new Promise<void>((resolve) => {
      const off = this.onSession((x) => {
        if (x.id === s.id) {
          off();
          resolve();
        }
      });
      if (!this.#open.has(s)) resolve();
    })));
  }

  // --- connections ---------------------------------------------------------------------

  #accept(down: net.Socket): void {
    if (this.#closed) {
      down.destroy();
      return;
    }
    down.setNoDelay(true);
    const c: Conn = {
      n: ++this.#connections,
      kind: null,
      id: null,
      sentId: null,
      peer: `${down.remoteAddress}:${down.remotePort}`,
      down,
      up: null,
      head: Buffer.alloc(0),
      fault: null,
      c2s: 0,
      s2c: 0,
      rate: new RateMeter(),
      state: 'connecting',
      times: { ...emptyTimes(), connecting: Date.now(), connected: Date.now() },
      error: null,
      recorder: null,
      scanner: null,
      main: null,
      downEnded: false,
      upEnded: false,
      closed: false,
      dropAfter: null,
      handshakeTimer: null,
    };
    const session = this.#sessionFor();
    session.conns.push(c);
    down.on('error', (err) => this.#destroy(c, new ChannelClosedError(`${label(c)}: the source's connection failed: ${err.message}`, { channel: c.id, peer: c.peer, connection: c.n })));
    down.on('close', () => this.#onClose(c));
    const onHead = (chunk: Buffer) => {
      c.head = c.head.length === 0 ? chunk : Buffer.concat([c.head, chunk]);
      const kind = classify(c.head);
      if (kind === null) return;
      down.off('data', onHead);
      down.pause();
      if (c.handshakeTimer) clearTimeout(c.handshakeTimer);
      c.handshakeTimer = null;
      this.#classified(session, c, kind);
    };
    down.on('data', onHead);
    down.once('end', () => {
      c.downEnded = true;
      if (c.kind === null) {
        // Ended before its first bytes told what it is: a short handshake, if it started like one.
        down.off('data', onHead);
        this.#classified(session, c, c.head.length >= 4 && readU32(c.head, 0) === MULTIFD_MAGIC ? 'multifd' : 'other');
      }
    });
    c.handshakeTimer = setTimeout(() => {
      c.handshakeTimer = null;
      if (c.kind !== null) return;
      this.#destroy(c, new ChannelHandshakeTimeoutError(
        `connection ${c.n} from ${c.peer} sent ${c.head.length} bytes in ${this.#opts.handshakeTimeoutMs} ms, not enough to tell what it is`,
        { peer: c.peer, connection: c.n, expected: 'QEVM or a 64-byte multifd handshake', received: `${c.head.length} bytes` },
      ));
    }, this.#opts.handshakeTimeoutMs);
  }

  #sessionFor(): Session {
    let s = this.#session;
    if (!s || s.endedAt !== null) {
      s = new Session(++this.#sessions, this.#opts.uuid, this.#opts.record);
      s.emitter.on((e) => this.#emit(e));
      this.#session = s;
      this.#open.add(s);
      s.emitter.emit('state', { state: 'setup', previous: null });
      s.mainWait = setTimeout(() => {
        s!.mainWait = null;
        if (s!.main) return;
        const ids = s!.conns.filter((x) => x.id !== null).map((x) => x.id!);
        this.#fail(s!, new ChannelSetupTimeoutError(
          `no QEMU main channel ("QEVM") arrived within ${this.#opts.mainWaitMs} ms; multifd channel(s) ${ids.join(', ') || 'none'} waited for it`,
          { expected: 'a main channel first', received: `${s!.conns.length} connection(s) without one` },
        ));
        for (const x of s!.conns) this.#destroy(x, null);
      }, this.#opts.mainWaitMs);
    }
    return s;
  }

  #classified(session: Session, c: Conn, kind: Kind): void {
    if (kind === 'main' && session.main && session.main !== c) {
      // A second main channel: a new migration (a retry). This connection starts it.
      session.conns.splice(session.conns.indexOf(c), 1);
      const next = new Session(++this.#sessions, this.#opts.uuid, this.#opts.record);
      next.emitter.on((e) => this.#emit(e));
      this.#session = next;
      this.#open.add(next);
      next.emitter.emit('state', { state: 'setup', previous: null });
      next.conns.push(c);
      this.#maybeEnd(session);
      session = next;
    }
    c.kind = kind;
    if (kind === 'main') {
      session.main = c;
      if (session.mainWait) clearTimeout(session.mainWait);
      session.mainWait = null;
      c.main = new QemuMainDecoder(
        {
          section: (s) => {
            if (s.name !== 'ram') return;
            if (s.type === 'end') session.ramEnd = true;
            if (session.state === 'setup' && s.type === 'part') this.#setState(session, 'active');
          },
          marker: () => {
            session.rounds++;
          },
        },
        { peer: c.peer, connection: c.n },
      );
      this.#connectUp(session, c, c.head, () => {
        session.mainReady = true;
        for (const h of session.held.splice(0)) this.#startMultifd(session, h);
      });
      return;
    }
    if (kind === 'multifd') {
      if (c.head.length < HANDSHAKE_SIZE) {
        // It ended (or will time out) short: forward what came, so the destination sees it too.
        c.id = c.head.length > 24 ? c.head[24] : null;
        this.#reject(session, c, new ChannelShortHandshakeError(
          `${label(c)}: closed after ${c.head.length} of the ${HANDSHAKE_SIZE} handshake bytes`,
          { channel: c.id, peer: c.peer, connection: c.n, expected: `${HANDSHAKE_SIZE} bytes`, received: `${c.head.length} bytes`, field: 'handshake' },
        ));
      } else {
        c.id = c.head[24];
      }
      c.fault = c.id !== null ? this.#faults.get(c.id) ?? null : null;
      if (session.mainReady) this.#startMultifd(session, c);
      else session.held.push(c);
      return;
    }
    // Neither QEMU's main stream nor a multifd channel: forwarded as it is, in accept order.
    this.#connectUp(session, c, c.head, () => {});
  }

  /** Applies the fault, checks the handshake as forwarded, then connects it through. */
  #startMultifd(session: Session, c: Conn): void {
    let head = c.head;
    if (head.length >= HANDSHAKE_SIZE) {
      const original = decodeHandshake(head.subarray(0, HANDSHAKE_SIZE));
      session.uuid ??= bytesToUuid(original.uuid);
      session.emitter.uuid = session.uuid;
      const channels = this.#opts.channels ?? 256;
      if (c.fault && c.fault.kind !== 'drop') {
        const hs = faultyHandshake(c.fault, original.uuid, original.id, channels);
        head = hs === null ? Buffer.alloc(0) : Buffer.concat([hs, c.fault.kind === 'truncate' ? Buffer.alloc(0) : head.subarray(HANDSHAKE_SIZE)]);
      }
      // drop:BYTES counts payload after the handshake, as the engine's source does.
      if (c.fault?.kind === 'drop') c.dropAfter = HANDSHAKE_SIZE + (c.fault.n ?? 0);
      c.times.handshakeSent = Date.now();
      if (head.length >= HANDSHAKE_SIZE) {
        const sent = decodeHandshake(head.subarray(0, HANDSHAKE_SIZE));
        c.sentId = sent.id;
        // The ids the destination was told, which a fault may have changed (ch1:dup claims 2).
        const taken = new Set(session.conns.filter((x) => x !== c && x.kind === 'multifd' && x.state !== 'rejected' && x.times.accepted !== null).map((x) => x.sentId));
        const err = checkHandshake(
          sent,
          { uuid: uuidToBytes(session.uuid), channels: this.#opts.channels, isTaken: (id) => taken.has(id) },
          { peer: c.peer, connection: c.n },
        );
        if (err) this.#reject(session, c, err);
        else this.#setChannel(session, c, 'accepted');
        c.scanner = new PacketScanner({}, { channel: c.id, peer: c.peer, connection: c.n, blockSize: (name) => blockSize(session, name), compression: null }, true);
      } else if (c.fault?.kind === 'truncate') {
        // What the destination gets is a short handshake: named now, as a source's own would be.
        this.#reject(session, c, new ChannelShortHandshakeError(
          `${label(c)}: ${head.length} of the ${HANDSHAKE_SIZE} handshake bytes forwarded, then closed (injected truncate)`,
          { channel: c.id, peer: c.peer, connection: c.n, expected: `${HANDSHAKE_SIZE} bytes`, received: `${head.length} bytes`, field: 'handshake' },
        ));
      }
      if (c.fault) {
        session.emitter.emit('channel', { channel: c.id ?? -1, state: c.state, connection: c.n, peer: c.peer });
      }
    }
    if (c.fault?.kind === 'stall') {
      // Connect, forward nothing from the source: the destination waits for a handshake.
      this.#connectUp(session, c, Buffer.alloc(0), () => {}, false);
      return;
    }
    this.#connectUp(session, c, head, () => {
      if (c.fault?.kind === 'truncate') c.up?.end();
    }, c.fault?.kind !== 'truncate');
  }

  #reject(session: Session, c: Conn, err: MigrationError): void {
    c.state = 'rejected';
    c.times.rejected = Date.now();
    c.error ??= err.toJSON();
    session.emitter.emit('channel-rejected', { ...err.toJSON() });
    this.#firstError(session, err.toJSON());
  }

  /**
   * Connects `c` to the destination (after its main channel, for multifd), writes `head`
   * (the bytes already read), then pipes both ways. `pipe` false: nothing more from the
   * source is forwarded (stall, truncate).
   */
  #connectUp(session: Session, c: Conn, head: Buffer, onConnected: () => void, pipe = true): void {
    const up = net.connect({ host: this.#opts.toHost, port: this.#opts.toPort, allowHalfOpen: true, noDelay: true });
    c.up = up;
    const timer = setTimeout(() => {
      up.destroy(new Error(`no connection within ${this.#opts.connectTimeoutMs} ms`));
    }, this.#opts.connectTimeoutMs);
    up.once('connect', () => {
      clearTimeout(timer);
      if (c.closed) {
        up.destroy();
        return;
      }
      this.#openRecorder(session, c);
      if (c.kind === 'main') this.#setChannel(session, c, 'streaming');
      if (head.length > 0) this.#forward(session, c, head);
      onConnected();
      // Without pipe the source's bytes are read and dropped: paused, its FIN would never be
      // seen behind the unread bytes, and the connection (and the session) would never end.
      c.down.on('data', pipe ? (chunk: Buffer) => this.#forward(session, c, chunk) : () => {});
      c.down.on('end', () => {
        c.downEnded = true;
        if (!c.up?.destroyed) c.up?.end();
        this.#recordEnd(c);
      });
      if (c.downEnded) {
        // The source's FIN came while the head was being read.
        up.end();
        this.#recordEnd(c);
      }
      c.down.resume();
    });
    up.on('data', (chunk: Buffer) => {
      c.s2c += chunk.length;
      if (!c.down.write(chunk)) {
        up.pause();
        c.down.once('drain', () => up.resume());
      }
    });
    up.on('end', () => {
      c.upEnded = true;
      if (!c.down.destroyed) c.down.end();
    });
    up.on('error', (err) => {
      clearTimeout(timer);
      const code = (err as NodeJS.ErrnoException).code;
      const e = c.times.accepted === null && c.kind === 'main' && !up.readyState.includes('open')
        ? new ConnectFailedError(`${label(c)}: cannot reach the destination ${this.#opts.toHost}:${this.#opts.toPort}: ${err.message}`, { channel: c.id, peer: c.peer, connection: c.n })
        : new ChannelClosedError(`${label(c)}: the destination's side failed after ${c.c2s} bytes from the source: ${code ?? err.message}`, { channel: c.id, peer: c.peer, connection: c.n });
      this.#destroy(c, e);
    });
    up.on('close', () => this.#onClose(c));
  }

  /** Source bytes: decode (tee), record, forward; pauses the source when a sink is full. */
  #forward(session: Session, c: Conn, chunk: Buffer): void {
    const up = c.up;
    if (!up || up.destroyed) return;
    if (c.dropAfter !== null) {
      const room = c.dropAfter - c.c2s;
      if (room <= 0) return;
      if (chunk.length >= room) {
        chunk = chunk.subarray(0, room);
        setImmediate(() => {
          this.#destroy(c, null);
        });
      }
    }
    c.c2s += chunk.length;
    try {
      if (c.scanner && !c.scanner.error) c.scanner.write(chunk);
      else if (c.main && !c.main.error) c.main.write(chunk);
    } catch (err) {
      const e = asMigrationError(err, { channel: c.id, peer: c.peer, connection: c.n });
      c.error ??= e.toJSON();
      session.emitter.emit('channel-rejected', e.toJSON());
      this.#firstError(session, e.toJSON());
    }
    let paused = false;
    if (c.recorder && !c.recorder.write(chunk)) {
      paused = true;
      c.down.pause();
      c.recorder.once('drain', () => {
        if (up.writableNeedDrain) return; // its drain resumes
        c.down.resume();
      });
    }
    if (!up.write(chunk)) {
      if (!paused) c.down.pause();
      up.once('drain', () => {
        if (c.recorder?.writableNeedDrain) return;
        c.down.resume();
      });
    }
  }

  /** A recording that fails is reported, and stops: it never stops the migration's bytes. */
  #openRecorder(session: Session, c: Conn): void {
    if (!session.recordDir) return;
    const taken = new Set(session.files.map((f) => path.basename(f)));
    let name = c.kind === 'main' ? 'main.bin' : c.kind === 'multifd' && c.id !== null ? `ch-${c.id}.bin` : `conn-${c.n}.bin`;
    if (taken.has(name)) name = name.replace(/\.bin$/, `-conn${c.n}.bin`);
    const file = path.join(session.recordDir, name);
    const failed = (err: Error) => this.#firstError(session, new MigrationError('MIGRATION_INTERNAL', `recording ${file}: ${err.message}`).toJSON());
    try {
      mkdirSync(session.recordDir, { recursive: true });
    } catch (err) {
      failed(err as Error);
      return;
    }
    session.files.push(file);
    const recorder = createWriteStream(file);
    c.recorder = recorder;
    recorder.on('error', (err) => {
      failed(err);
      // A failed stream never drains: let go of it, and of the source if it waited for it.
      if (c.recorder !== recorder) return;
      c.recorder = null;
      if (!c.up?.writableNeedDrain && !c.closed) c.down.resume();
    });
  }

  #recordEnd(c: Conn): void {
    c.recorder?.end();
  }

  #destroy(c: Conn, err: MigrationError | null): void {
    const session = this.#sessionOf(c);
    if (err && session && !c.error) {
      c.error = err.toJSON();
      if (c.state !== 'rejected') c.state = 'failed';
      session.emitter.emit('channel', { channel: c.id ?? -1, state: c.state, connection: c.n, peer: c.peer });
      this.#firstError(session, c.error);
    }
    if (c.handshakeTimer) clearTimeout(c.handshakeTimer);
    c.handshakeTimer = null;
    c.down.destroy();
    c.up?.destroy();
    c.recorder?.end();
  }

  #onClose(c: Conn): void {
    if (!c.down.destroyed || (c.up && !c.up.destroyed)) return;
    if (c.closed) return;
    c.closed = true;
    if (c.handshakeTimer) clearTimeout(c.handshakeTimer);
    c.handshakeTimer = null;
    c.recorder?.end();
    c.times.closed = Date.now();
    const session = this.#sessionOf(c);
    if (!session) return;
    if (c === session.main && !session.mainReady) {
      // The main channel never reached the destination: the channels held for it never will.
      for (const h of session.held.splice(0)) {
        this.#destroy(h, new ChannelClosedError(`${label(h)}: the main channel closed before it reached the destination`, { channel: h.id, peer: h.peer, connection: h.n }));
      }
    }
    if (c.state !== 'rejected' && c.state !== 'failed') {
      if (c.scanner && !c.scanner.error && !c.scanner.atBoundary && c.scanner.handshake) {
        // A clean close in the middle of a packet is a truncated stream (#destroy says so).
        this.#destroy(c, new ChannelClosedError(`${label(c)}: closed in the middle of a packet after ${c.c2s} bytes`, { channel: c.id, peer: c.peer, connection: c.n }));
      } else {
        c.state = 'closed';
        if (c.kind !== null) session.emitter.emit('channel', { channel: c.id ?? -1, state: c.state, connection: c.n, peer: c.peer });
      }
    }
    this.#maybeEnd(session);
  }

  #sessionOf(c: Conn): Session | null {
    for (const s of this.#open) if (s.conns.includes(c)) return s;
    return null;
  }

  #maybeEnd(s: Session): void {
    if (s.endedAt !== null) return;
    if (s.conns.some((c) => !c.closed)) return;
    if (s === this.#session && s.conns.length === 0) return;
    s.endedAt = Date.now();
    if (s.mainWait) clearTimeout(s.mainWait);
    s.mainWait = null;
    if (!s.error && !s.ramEnd) {
      this.#firstError(s, new MainClosedError(
        s.main ? `the migration's connections closed before QEMU's main stream finished sending RAM (${s.rounds} sync points, ${s.main.c2s} bytes)` : 'no QEMU main channel came',
        { channel: null, peer: s.main?.peer ?? null, connection: s.main?.n ?? null, expected: 'the RAM section\'s END', received: 'the end of the connections' },
      ).toJSON());
    }
    this.#tickSession(s);
    if (s.error) {
      this.#setState(s, 'failed');
      s.emitter.emit('failed', { ...s.error });
    } else {
      this.#setState(s, 'completed');
    }
    this.#open.delete(s);
    const summary: RelaySessionSummary = { id: s.id, state: s.state, recordDir: s.recordDir, files: s.files, snapshot: this.#snapshot(s) };
    // Recorders flush asynchronously: report once their files are whole.
    const pending = s.conns.map((c) => c.recorder).filter((r): r is WriteStream => r !== null && !r.closed);
    void Promise.all(pending.map((r) => new Promise<void>((resolve) => (r.closed ? resolve() : r.once('close', () => resolve()))))).then(() => {
      for (const fn of this.#sessionListeners) fn(summary);
    });
  }

  #firstError(s: Session, e: SerializedError): void {
    if (s.error) return;
    s.error = e;
  }

  #setState(s: Session, state: MigrationState): void {
    if (s.state === state) return;
    const previous = s.state;
    s.state = state;
    s.emitter.emit('state', { state, previous });
  }

  #setChannel(s: Session, c: Conn, state: ChannelState): void {
    c.state = state;
    if (state === 'accepted') c.times.accepted = Date.now();
    s.emitter.emit('channel', { channel: c.id ?? -1, state, connection: c.n, peer: c.peer });
    if (state === 'accepted' && c.kind === 'multifd') {
      c.state = 'streaming';
    }
  }

  #fail(s: Session, err: MigrationError): void {
    this.#firstError(s, err.toJSON());
  }

  #emit(e: Parameters<EventListener>[0]): void {
    for (const fn of this.#listeners) fn(e);
  }

  // --- progress ------------------------------------------------------------------------

  #tick(): void {
    for (const s of this.#open) this.#tickSession(s);
  }

  #tickSession(s: Session): void {
    const now = Date.now();
    let total = 0;
    for (const c of s.conns) {
      c.rate.sample(now, c.c2s);
      total += c.c2s;
    }
    s.rate.sample(now, total);
    const snap = this.#snapshot(s);
    s.last = snap;
    s.emitter.emit('progress', { snapshot: snap });
  }

  #snapshot(s: Session): MigrationSnapshot {
    const multifd = s.conns.filter((c) => c.kind === 'multifd').sort((a, b) => (a.id ?? 999) - (b.id ?? 999) || a.n - b.n);
    const channels: ChannelSnapshot[] = multifd.map((c) => ({
      id: c.id ?? -1,
      state: c.state,
      slow: false,
      connection: c.n,
      peer: c.peer,
      times: { ...c.times },
      bytes: c.c2s,
      pages: c.scanner?.pages ?? 0,
      zeroPages: c.scanner?.zeroPages ?? 0,
      packets: c.scanner?.packets ?? 0,
      syncs: c.scanner?.syncs ?? 0,
      payloadBytes: c.scanner?.payloadBytes ?? 0,
      throughput: c.rate.rate(),
      error: c.error,
    }));
    const main = s.main?.main?.summary;
    const ramSize = main ? main.blocks.reduce((n, b) => n + b.size, 0) : 0;
    const transferred = s.conns.reduce((n, c) => n + c.c2s, 0);
    const pageBytes = multifd.reduce((n, c) => n + (c.scanner?.pages ?? 0) * 4096, 0) + (main?.pages ?? 0) * 4096;
    const end = s.endedAt;
    return {
      id: s.id,
      uuid: s.uuid,
      role: 'relay',
      state: s.state,
      peer: s.main?.peer ?? null,
      channelCount: this.#opts.channels ?? multifd.length,
      compression: compressionOf(multifd),
      round: s.rounds,
      ramSize,
      transferred,
      pageBytes,
      remaining: 0,
      dirtyRate: 0,
      transferRate: end === null ? s.rate.rate() : 0,
      convergence: 0,
      expectedDowntimeMs: 0,
      throttlePct: null,
      downtimeMs: null,
      setupTimeMs: null,
      totalTimeMs: end === null ? null : end - s.startedAt,
      startedAt: s.startedAt,
      endedAt: end,
      switchoverReason: null,
      digest: null,
      verified: false,
      channels,
      error: s.error,
    };
  }
}

/** QEMU's multifd-compression, as its packets show it (none until a packet with pages came). */
function compressionOf(conns: Conn[]): Compression {
  for (const c of conns) {
    const flag = c.scanner?.compression;
    const name = flag ? compressionName(flag) : 'none';
    if (name === 'zlib' || name === 'zstd') return name;
  }
  return 'none';
}

function classify(head: Buffer): Kind | null {
  if (head.length < 4) return null;
  const magic = readU32(head, 0);
  if (magic === QEMU_VM_MAGIC) return 'main';
  if (magic === MULTIFD_MAGIC) return head.length >= HANDSHAKE_SIZE ? 'multifd' : null;
  return 'other';
}

function blockSize(s: Session, name: string): number | undefined {
  const blocks = s.main?.main?.summary.blocks;
  if (!blocks || blocks.length === 0) return Number.MAX_SAFE_INTEGER; // not known yet: do not refuse
  return blocks.find((b) => b.name === name)?.size;
}

function label(c: Conn): string {
  if (c.kind === 'main') return `main channel (connection ${c.n} from ${c.peer})`;
  if (c.id !== null) return `channel ${c.id} (connection ${c.n} from ${c.peer})`;
  return `connection ${c.n} from ${c.peer}`;
}
