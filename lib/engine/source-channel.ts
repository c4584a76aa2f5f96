/**
 * One multifd channel on the source: connects, sends its handshake (or the fault it was
 * told to inject), then writes packets with socket backpressure respected.
 */
import net from 'node:net';
import { FailedSchema, type ChannelSnapshot, type ChannelState } from '../contracts';
import { ChannelClosedError, ConnectFailedError, MigrationError, type SerializedError } from '../errors';
import { FrameDecoder, FrameType, decodeJsonPayload, uuidToBytes } from '../protocol';
import { TLS_FAULT_HOSTNAME, faultyHandshake, type Fault } from './faults';
import { secureClient, tlsFailure, type TlsClientCredentials } from './tls';
import type { Compressor } from './compression';
import type { OutPacket } from './packer';
import type { RateLimiter } from './ratelimit';
import { RateMeter, emptyTimes, type ChannelTimes } from './stats';

/** TLS for a channel: the migration's credentials, and the destination's host from --to. */
export interface ChannelTls {
  creds: TlsClientCredentials;
  host: string;
}

/** What the destination may say on a multifd channel (a Failed frame when it refuses it): read up to this much. */
const REFUSAL_MAX_BYTES = 64 * 1024;

export interface ChannelHooks {
  state(ch: SourceChannel, state: ChannelState): void;
  /** The socket failed or closed while the migration still needed it. */
  lost(ch: SourceChannel, err: MigrationError): void;
}

export class SourceChannel {
  state: ChannelState = 'connecting';
  socket: net.Socket | null = null;
  readonly times: ChannelTimes = emptyTimes();
  /** bytes queued to the socket (headers + payload) */
  bytes = 0;
  /** page payload bytes queued (compressed size when compressing) */
  payloadBytes = 0;
  /** This channel's compressor; null without compression. */
  compressor: Compressor | null = null;
  pages = 0;
  zeroPages = 0;
  packets = 0;
  syncs = 0;
  error: SerializedError | null = null;
  slow = false;
  /** What protects the channel once its TLS handshake is done ("TLSv1.3 ... x509"), null in clear. */
  security: string | null = null;
  /** Why the destination refused this channel, when it said so on the channel itself. */
  private refusal: MigrationError | null = null;
  private inbound: FrameDecoder | null = null;
  private inboundBytes = 0;
  private tlsMode: 'x509' | 'psk' | null = null;
  /** A client certificate went with this channel's handshake. */
  private presentedCert = false;
  /** The peer address the destination accepted as this channel (undefined until it says). */
  acceptedAs: string | null | undefined = undefined;
  readonly meter = new RateMeter();
  /** last time the bytes flushed to the kernel moved, for the no-progress check */
  lastProgress = 0;
  private lastFlushed = 0;
  /** set by the pump while it holds a packet for this channel */
  holding = false;
  /** the slow fault's own rate limit */
  throttle: RateLimiter | null = null;
  /** payload bytes sent, for the drop fault */
  private payloadSent = 0;
  /** a stream fault has been injected: the channel sends nothing more */
  private faulted = false;
  /** set once the migration no longer cares about this socket (done, failed, cancelled) */
  private retired = false;

  constructor(
    readonly id: number,
    private readonly hooks: ChannelHooks,
    readonly fault: Fault | null,
  ) {}

  /** Remote and local address:port, kept from the connect: a closed socket forgets them. */
  peer: string | null = null;
  local: string | null = null;

  /** Bytes the kernel has taken (queued bytes excluded). */
  get flushed(): number {
    return this.bytes - (this.socket?.writableLength ?? 0);
  }

  setState(state: ChannelState): void {
    if (this.state === state) return;
    this.state = state;
    this.hooks.state(this, state);
  }

  /**
   * Connects, secures the connection with TLS when `tls` is given (connect and TLS handshake
   * each within `timeoutMs`), and sends the handshake. Resolves once the handshake is written.
   */
  async open(
    host: string,
    port: number,
    uuid: string,
    channels: number,
    timeoutMs: number,
    track: (s: net.Socket) => void,
    tls: ChannelTls | null = null,
  ): Promise<void> {
    this.times.connecting = Date.now();
    this.setState('connecting');
    let socket = await connect(host, port, timeoutMs, track, this.id);
    this.peer = `${socket.remoteAddress}:${socket.remotePort}`;
    this.local = `${socket.localAddress}:${socket.localPort}`;
    socket.setNoDelay(true);
    this.times.connected = Date.now();
    if (tls && this.fault?.kind !== 'tls-clear') {
      this.setState('tls');
      const secured = await secureClient(socket, tls.creds, {
        channel: this.id,
        host: tls.host,
        port,
        timeoutMs,
        track,
        hostname: this.fault?.kind === 'tls-hostname' ? TLS_FAULT_HOSTNAME : undefined,
        anonymous: this.fault?.kind === 'tls-anon',
      });
      socket = secured.socket;
      this.tlsMode = tls.creds.mode;
      this.presentedCert = tls.creds.hasCert && this.fault?.kind !== 'tls-anon';
      this.security = secured.info.description;
      this.times.secured = secured.info.securedAt;
    }
    this.socket = socket;
    this.lastProgress = Date.now();
    socket.on('error', (err) => this.onLost(err));
    socket.on('close', () => this.onLost(null));
    // The destination says nothing on a multifd channel but why it refuses it; reading keeps a FIN visible.
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    const hs = this.handshakeBytes(uuid, channels);
    if (hs === null) return; // stall: connect, send nothing
    await new Promise<void>((resolve) => socket.write(hs, () => resolve()));
    this.times.handshakeSent = Date.now();
    this.setState('handshake-sent');
    if (this.fault?.kind === 'truncate') socket.end();
  }

  /** The 64 handshake bytes, with this channel's injected fault applied. */
  private handshakeBytes(uuid: string, channels: number): Uint8Array | null {
    return faultyHandshake(this.fault, uuidToBytes(uuid), this.id, channels);
  }

  /** Queues one packet (header and payload in one writev). False: wait for drain(). */
  write(p: OutPacket): boolean {
    const s = this.socket;
    if (!s || s.destroyed || this.faulted) return true; // the loss is reported by onLost
    const f = this.fault;
    if (f && (f.kind === 'drop' || (f.kind === 'bad-header' && p.normalPages > 0))) return this.writeFaulty(s, p, f);
    s.cork();
    s.write(p.header);
    for (const v of p.payload) s.write(v);
    s.uncork();
    this.bytes += p.bytes;
    this.payloadBytes += p.bytes - p.header.length;
    this.pages += p.normalPages;
    this.zeroPages += p.zeroPages;
    this.packets++;
    return !s.writableNeedDrain;
  }

  /**
   * Stream faults (DESIGN 7.2): drop closes the connection after n payload bytes;
   * bad-header corrupts the first packet that carries pages, then the channel sends nothing
   * more (the destination has to say what it found).
   */
  private writeFaulty(s: net.Socket, p: OutPacket, f: Fault): boolean {
    const chunks: Uint8Array[] = [p.header, ...p.payload];
    if (f.kind === 'drop') {
      const budget = (f.n ?? 0) - this.payloadSent;
      const payloadLen = p.bytes - p.header.length;
      if (payloadLen <= budget) {
        this.payloadSent += payloadLen;
        return this.writeAll(s, chunks, p);
      }
      // The cut falls inside this packet: send up to it, then close.
      const out: Uint8Array[] = [p.header];
      let left = budget;
      for (const v of p.payload) {
        if (left <= 0) break;
        out.push(v.subarray(0, Math.min(v.length, left)));
        left -= v.length;
      }
      this.faulted = true;
      this.writeAll(s, out, p);
      s.end();
      return true;
    }
    const h = Uint8Array.from(p.header);
    const dv = new DataView(h.buffer);
    switch (f.field) {
      case 'normal_pages':
        dv.setUint32(16, dv.getUint32(12) + 1); // above pages_alloc
        break;
      case 'offset':
        dv.setUint32(320, 0x7fff); // high word: an offset far outside any block
        break;
      case 'ramblock':
        h.fill(0, 64, 320);
        h.set(new TextEncoder().encode('no-such-block'), 64);
        break;
      case 'short-payload':
        chunks.length = 0;
        chunks.push(p.header, ...p.payload.map((v) => v.subarray(0, v.length >> 1)));
        this.faulted = true;
        this.writeAll(s, chunks, p);
        s.end();
        return true;
    }
    this.faulted = true;
    return this.writeAll(s, [h, ...p.payload], p);
  }

  private writeAll(s: net.Socket, chunks: Uint8Array[], p: OutPacket): boolean {
    s.cork();
    for (const v of chunks) s.write(v);
    s.uncork();
    const written = chunks.reduce((n, v) => n + v.length, 0);
    this.bytes += written;
    this.payloadBytes += written - chunks[0].length;
    this.pages += p.normalPages;
    this.zeroPages += p.zeroPages;
    this.packets++;
    return !s.writableNeedDrain;
  }

  /** Resolves when the socket can take more, rejects if it closes first. */
  drain(): Promise<void> {
    const s = this.socket;
    if (!s || s.destroyed) return Promise.reject(this.closedError());
    if (!s.writableNeedDrain) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onDrain = () => {
        cleanup();
        resolve();
      };
      const onClose = () => {
        cleanup();
        reject(this.closedError());
      };
      const cleanup = () => {
        s.off('drain', onDrain);
        s.off('close', onClose);
      };
      s.on('drain', onDrain);
      s.on('close', onClose);
    });
  }

  /**
   * Data is due on this channel: bytes queued in its socket, or a packet it took and has not
   * written yet (waiting for its throttle or for drain). A channel that owes data and does
   * not move is stalled.
   */
  get owes(): boolean {
    return this.holding || (this.socket?.writableLength ?? 0) > 0;
  }

  /** Samples throughput; returns true when flushed bytes moved since the last tick. */
  tick(now: number): boolean {
    const f = this.flushed;
    this.meter.sample(now, f);
    const moved = f !== this.lastFlushed;
    if (moved || !this.owes) this.lastProgress = now;
    this.lastFlushed = f;
    return moved;
  }

  /** The migration is over for this channel: its socket closing is no longer a failure. */
  retire(): void {
    this.retired = true;
  }

  close(): void {
    this.retired = true;
    if (this.socket && !this.socket.destroyed) this.socket.end();
  }

  private closedError(): MigrationError {
    return new ChannelClosedError(`channel ${this.id}${this.peer ? ` to ${this.peer}` : ''}: connection closed while sending`, {
      channel: this.id,
      peer: this.peer,
    });
  }

  private onLost(err: Error | null): void {
    // After an injected stream fault the close is ours; what the destination found is the error.
    if (this.retired || this.faulted) return;
    this.retired = true;
    // In TLS 1.3 the destination's verdict on our certificate can come after our side of the
    // handshake, as an alert: that, or the refusal it wrote here, is the error, not the close.
    const tls = err && this.tlsMode ? tlsFailure(err, { channel: this.id, peer: this.peer, mode: this.tlsMode, expectedHost: null, hasCert: this.presentedCert, phase: 'stream' }) : null;
    if (this.refusal || tls) {
      this.hooks.lost(this, (this.refusal ?? tls)!);
      return;
    }
    const e = this.closedError();
    const detail = err ? `${e.message} (${(err as NodeJS.ErrnoException).code ?? err.message})` : e.message;
    this.hooks.lost(this, new ChannelClosedError(detail, { channel: this.id, peer: this.peer, cause: err ?? undefined }));
  }

  /** Bytes from the destination: only a Failed frame (its refusal) means anything here. */
  private onData(chunk: Buffer): void {
    if (this.refusal || this.inboundBytes >= REFUSAL_MAX_BYTES) return;
    this.inboundBytes += chunk.length;
    try {
      for (const f of (this.inbound ??= new FrameDecoder(REFUSAL_MAX_BYTES)).push(chunk)) {
        if (f.type !== FrameType.Failed) continue;
        const r = FailedSchema.safeParse(decodeJsonPayload(f));
        if (!r.success) continue;
        const why = r.data;
        this.refusal = MigrationError.fromJSON({
          ...why,
          channel: this.id,
          message: `channel ${this.id}${this.peer ? ` to ${this.peer}` : ''}: refused by the destination: ${why.message}`,
        });
        return;
      }
    } catch {
      // Not frames: nothing the destination sends here is data; the close will speak.
      this.inboundBytes = REFUSAL_MAX_BYTES;
    }
  }

  snapshot(): ChannelSnapshot {
    return {
      id: this.id,
      state: this.state,
      slow: this.slow,
      connection: null,
      peer: this.peer,
      local: this.local,
      times: { ...this.times },
      security: this.security,
      bytes: this.bytes,
      payloadBytes: this.payloadBytes,
      pages: this.pages,
      zeroPages: this.zeroPages,
      packets: this.packets,
      syncs: this.syncs,
      throughput: this.meter.rate(),
      error: this.error,
    };
  }
}

/** net.connect with a timeout; errors become ConnectFailedError naming the channel and address. */
export function connect(host: string, port: number, timeoutMs: number, track: (s: net.Socket) => void, channel: number | null): Promise<net.Socket> {
  return new Promise<net.Socket>((resolve, reject) => {
    const socket = net.connect({ host, port });
    track(socket);
    const what = channel === null ? 'main channel' : `channel ${channel}`;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ConnectFailedError(`${what}: no connection to ${host}:${port} within ${timeoutMs} ms`, { channel, peer: `${host}:${port}` }));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', onError);
      resolve(socket);
    });
    const onError = (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      reject(
        new ConnectFailedError(`${what}: cannot connect to ${host}:${port}: ${err.code ?? err.message}`, {
          channel,
          peer: `${host}:${port}`,
          expected: 'a listening multifd destination',
          received: err.code ?? err.message,
          cause: err,
        }),
      );
    };
    socket.once('error', onError);
  });
}
