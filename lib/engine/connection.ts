/**
 * A connection accepted by a destination, from its first byte until a migration owns it.
 */
import type net from 'node:net';
import { DiscardReader, SocketReader, type ReadConsumer } from './socket-reader';

export class Connection {
  /** Set while the connection is held or read by a migration. */
  owner: unknown = null;
  readonly acceptedAt = Date.now();
  readonly reader: SocketReader;
  /** The handshake bytes received so far (for short-handshake reports). */
  partial: () => Uint8Array = () => new Uint8Array(0);
  private closed = false;
  private endHandlers: Array<() => void> = [];

  constructor(
    readonly number: number,
    readonly socket: net.Socket,
    first: ReadConsumer,
    onReadError: (err: unknown) => void,
  ) {
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

  /** Writes a last message, then closes; destroys if the peer does not take it in time. */
  finish(last?: Uint8Array, timeoutMs = 2000): void {
    const s = this.socket;
    if (s.destroyed) return;
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
