/**
 * Zero-copy reads: the kernel writes incoming bytes straight into the region a consumer
 * names (guest RAM for page payloads), using net.Socket's `onread` buffer-function mode.
 *
 * Node offers `onread` only to sockets it creates for `net.connect`, not to the sockets a
 * server accepts. For those, the same internal slots that `onread` fills are set on the
 * accepted (paused) socket before it starts reading. When this Node does not have them,
 * we fall back to 'data' events and one copy into the same regions: slower, same result.
 *
 * A TLS socket has the same slots (its TLSWrap is a stream like TCP's): decrypted bytes are
 * copied once from the TLS engine into the consumer's region. But one read of the TCP
 * stream can yield several records, and a chunk in 'data' mode can run past the point where
 * the consumer paused (a SYNC): bytes that come while paused are held here, in order, and
 * handed to the consumer when it starts again, never written to its region early.
 */
import type { Socket } from 'node:net';

/** Whoever owns the bytes now: it says where the next bytes go and is told how many came. */
export interface ReadConsumer {
  /** The region the next bytes must be written to; never empty. */
  next(): Uint8Array;
  /** `n` bytes were written at the start of the region last returned by next(). */
  advance(n: number): void;
}

export interface ReaderHooks {
  /** advance() threw: the reader stops reading; the owner decides what to do. */
  onError(err: unknown): void;
}

interface OnreadSlots {
  kBuffer: symbol;
  kBufferCb: symbol;
  kBufferGen: symbol;
}

function findSlots(socket: Socket): OnreadSlots | null {
  const syms = Object.getOwnPropertySymbols(socket);
  const by = (d: string) => syms.find((s) => s.description === d);
  const kBuffer = by('kBuffer');
  const kBufferCb = by('kBufferCb');
  const kBufferGen = by('kBufferGen');
  const handle = (socket as unknown as { _handle?: { useUserBuffer?: unknown } })._handle;
  if (!kBuffer || !kBufferCb || !kBufferGen || typeof handle?.useUserBuffer !== 'function') return null;
  return { kBuffer, kBufferCb, kBufferGen };
}

/**
 * Where reads land while a reader is paused (zero-copy mode). One for all readers: each read
 * is copied out in its own callback, before any other socket's read.
 */
const STAGING = new Uint8Array(64 * 1024);

/** Where each consumer's bytes come from; one per connection, consumers change over its life. */
export class SocketReader {
  private consumer: ReadConsumer;
  private failed = false;
  /** True when the kernel reads straight into consumer regions. */
  readonly zeroCopy: boolean;
  private scratch: Uint8Array | null = null;
  private slots: OnreadSlots | null;
  /** The region the kernel will fill on its next read (zero-copy mode). */
  private armed: Uint8Array | null = null;
  /** Paused by the consumer: what still arrives is held, not given to it. */
  private paused = false;
  /** Bytes that arrived while paused, in order. */
  private readonly held: Uint8Array[] = [];
  private draining = false;
  /** Inside a zero-copy read's callback. */
  private inRead = false;

  /**
   * `socket` must be freshly accepted with `pauseOnConnect: true` (or just connected and
   * not yet read from, or a TLS socket just after its handshake, paused), so no byte has
   * been consumed yet.
   */
  constructor(
    private readonly socket: Socket,
    first: ReadConsumer,
    private readonly hooks: ReaderHooks,
  ) {
    this.consumer = first;
    const slots = findSlots(socket);
    this.slots = slots;
    this.zeroCopy = slots !== null;
    // A TLS socket made after its handshake may hold decrypted bytes already: they come first.
    for (let b: Buffer | null; socket.readableLength > 0 && (b = socket.read() as Buffer | null) !== null; ) this.held.push(b);
    if (slots) {
      const s = socket as unknown as Record<symbol, unknown>;
      // Paused, or with held bytes still to deliver first: reads go to staging and are held.
      s[slots.kBufferGen] = () => (this.armed = this.paused || this.held.length > 0 ? STAGING : this.region());
      s[slots.kBufferCb] = (n: number) => this.onRead(n);
      this.arm(this.held.length > 0 ? STAGING : this.region());
    } else {
      socket.on('data', (chunk: Buffer) => {
        if (this.paused || this.held.length > 0) this.hold(chunk);
        else this.copyIn(chunk);
      });
    }
  }

  /** Hands the stream to another consumer; takes effect for the next read. */
  use(consumer: ReadConsumer): void {
    this.consumer = consumer;
  }

  /**
   * Starts (or resumes) reading. After a pause during which the consumer changed, the
   * region the kernel holds is stale, so it is armed again with the consumer's.
   */
  start(): void {
    this.paused = false;
    if (this.held.length > 0) {
      // Held bytes go first, and not from inside whoever called start() (often another
      // reader's consumer): the socket stays paused until they are delivered.
      if (!this.draining) {
        this.draining = true;
        queueMicrotask(() => this.drain());
      }
      return;
    }
    if (this.slots && !this.failed) {
      const want = this.region();
      const had = this.armed;
      if (!had || had.buffer !== want.buffer || had.byteOffset !== want.byteOffset || had.length !== want.length) {
        this.arm(want);
      }
    }
    this.socket.resume();
  }

  private drain(): void {
    this.draining = false;
    // Held bytes were received: they are the consumer's even when the peer has closed since
    // (a FIN right after the last bytes is the usual end of a stream).
    while (this.held.length > 0 && !this.paused && !this.failed) this.copyIn(this.held.shift()!);
    if (this.failed) this.held.length = 0;
    if (!this.paused && !this.socket.destroyed) this.start();
  }

  private hold(bytes: Uint8Array): void {
    this.held.push(bytes);
  }

  /** A read landed in the armed region (zero-copy mode). */
  private onRead(n: number): boolean {
    const region = this.armed!;
    // Bytes that must wait (paused, or behind held ones): copied out and held, in order. The
    // region may be the consumer's own; draining the held bytes first rewrites it in order.
    if (region === STAGING || this.paused || this.held.length > 0) {
      this.hold(region.slice(0, n));
      return true;
    }
    this.inRead = true;
    try {
      return this.onBytes(n);
    } finally {
      this.inRead = false;
    }
  }

  /** Bytes received but not handed over yet (the connection changes hands: TLS takes it over). */
  takeHeld(): Uint8Array[] {
    return this.held.splice(0);
  }

  private arm(region: Uint8Array = this.region()): void {
    const slots = this.slots;
    const s = this.socket as unknown as Record<symbol, unknown> & { _handle: { useUserBuffer(b: Uint8Array): void } | null };
    if (!slots || !s._handle) return;
    this.armed = region;
    s[slots.kBuffer] = region;
    s._handle.useUserBuffer(region);
  }

  pause(): void {
    this.paused = true;
    // A read already under way (TLS: the rest of a record batch) lands in staging, not in the
    // consumer's region. Inside a read's callback the next region is asked for afresh (and
    // is staging now); re-arming there would only stack one more native buffer listener.
    if (this.slots && !this.failed && !this.inRead && this.armed !== STAGING) this.arm(STAGING);
    this.socket.pause();
  }

  private region(): Uint8Array {
    if (this.failed) return (this.scratch ??= new Uint8Array(4096));
    try {
      const r = this.consumer.next();
      // A zero-length region would make the kernel read fail with ENOBUFS: a consumer
      // that is done must have handed over (use()) or paused the socket first.
      if (r.length === 0) throw new Error('read consumer offered an empty region');
      return r;
    } catch (err) {
      this.fail(err);
      return (this.scratch ??= new Uint8Array(4096));
    }
  }

  private onBytes(n: number): boolean {
    if (this.failed) return false;
    try {
      this.consumer.advance(n);
    } catch (err) {
      this.fail(err);
      return false;
    }
    return true;
  }

  private copyIn(chunk: Uint8Array): void {
    let off = 0;
    while (off < chunk.length && !this.failed) {
      if (this.paused) {
        // Paused mid-chunk: the rest waits, ahead of anything held after it.
        this.held.unshift(chunk.subarray(off));
        return;
      }
      let region: Uint8Array;
      try {
        region = this.consumer.next();
      } catch (err) {
        this.fail(err);
        return;
      }
      const n = Math.min(region.length, chunk.length - off);
      region.set(chunk.subarray(off, off + n));
      off += n;
      if (!this.onBytes(n)) return;
    }
  }

  private fail(err: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.socket.pause();
    this.hooks.onError(err);
  }
}

/** A consumer that fills one fixed-size buffer, then calls `done` with it. */
export class FixedReader implements ReadConsumer {
  private filled = 0;
  constructor(
    readonly buf: Uint8Array,
    private readonly done: (buf: Uint8Array) => void,
  ) {}
  get received(): number {
    return this.filled;
  }
  next(): Uint8Array {
    return this.buf.subarray(this.filled);
  }
  advance(n: number): void {
    this.filled += n;
    if (this.filled === this.buf.length) this.done(this.buf);
  }
}

/** Reads and drops whatever still arrives on a connection nobody needs any more. */
export class DiscardReader implements ReadConsumer {
  private readonly sink = new Uint8Array(64 * 1024);
  next(): Uint8Array {
    return this.sink;
  }
  advance(): void {}
}

/** Stands in while a connection is held paused: bytes arriving then are a bug, not data. */
export class HoldReader implements ReadConsumer {
  private readonly one = new Uint8Array(1);
  next(): Uint8Array {
    return this.one;
  }
  advance(): void {
    throw new Error('bytes read from a held connection');
  }
}
