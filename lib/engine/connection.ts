/**
 * A connection accepted by a destination, from its first byte until a migration owns it.
 */
import type net from 'node:net';
import { DiscardReader, SocketReader, type ReadConsumer } from './socket-reader';
import type { TlsInfo } from './tls';

export class Connection {
  /** Set while the connection is held or read by a migration. */
  owner: unknown = null;
  readonly acceptedAt: number;
  readonly reader: SocketReader;
  /** The handshake bytes received so far (for short-handshake reports). */
  partial: () => Uint8Array = () => new Uint8Array(0);
  private closed = false;
  private endHandlers: Array<() => void> = [];

  /** Kept from the start: a closed socket forgets its peer's address. */
  private readonly peerText: string | null;

  constructor(
    readonly number: number,
    /** The accepted socket, or the TLS socket over it once its handshake is done. */
    readonly socket: net.Socket,
    first: ReadConsumer,
    onReadError: (err: unknown) => void,
    /** What protects it (TLS), or null in clear. */
    readonly security: TlsInfo | null = null,
    /** When the TCP connection was accepted (a TLS connection: before its handshake). */
    acceptedAt = Date.now(),
  ) {
    this.acceptedAt = acceptedAt;
    this.peerText = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : null;
    this.reader = new SocketReader(socket, first, { onError: onReadError });
    // Socket errors surface as 'close'; an 'error' with no listener would crash the process.
    socket.on('error', () => {});
    socket.on('end', () => this.fireEnd());
    socket.on('close', () => {
      this.closed = true;
      this.fireEnd();
    });
  }

  get peer(): string {
    if (this.peerText) return this.peerText;
    const s = this.socket;
    return s.remoteAddress ? `${s.remoteAddress}:${s.remotePort}` : 'unknown';
  }

  get isClosed(): boolean {
    return this.closed || this.socket.destroyed;
  }

  /** Called once when the peer ends or the socket closes, whichever comes first. */
  onEnd(fn: () => void): void {
    this.endHandlers.push(fn);
  }

  offEnd(): void {
    this.endHandlers = [];
  }

  private fireEnd(): void {
    const hs = this.endHandlers;
    this.endHandlers = [];
    for (const fn of hs) fn();
  }

  /** Set by finish(): resolves once the socket has closed (at most its timeout later). */
  finished: Promise<void> | null = null;

  /** Writes a last message, then closes; destroys if the peer does not take it in time. */
  finish(last?: Uint8Array, timeoutMs = 2000): void {
    const s = this.socket;
    if (s.destroyed || this.finished) return;
    this.finished = new Promise((resolve) => s.once('close', () => resolve()));
    const t = setTimeout(() => s.destroy(), timeoutMs);
    t.unref();
    s.once('close', () => clearTimeout(t));
    if (last && s.writable) s.end(last);
    else s.end();
    // Nothing more is read from a finished connection: drop what still comes.
    this.reader.use(new DiscardReader());
    this.reader.start();
  }

  destroy(): void {
    this.socket.destroy();
  }
}
