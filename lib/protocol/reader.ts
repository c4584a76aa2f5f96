/**
 * The receiving side of one multifd channel after its handshake: a streaming state
 * machine over `header, payload` units until EOF.
 *
 * | state      | region next() returns                          | done when                    |
 * |------------|------------------------------------------------|------------------------------|
 * | header     | rest of an internal 320 + 8 × slots byte buffer | header full: decode + check  |
 * | pages      | rest of the current run's region (sink memory) | every run full: packet()     |
 * | compressed | rest of a next_packet_size payload buffer      | full: decoder.decode, packet() |
 *
 * It serves both zero-copy socket reads (the caller asks next() where the kernel must
 * write, then reports advance(n)) and chunked input (write()). Uncompressed payloads are
 * framed by normal_pages, never next_packet_size (QEMU 7.2 leaves stale values there), in
 * offset[] order; runs of contiguous offsets are coalesced into one region, so one read
 * can fill many pages. Compression methods plug in as a PayloadDecoder.
 */
import { InternalError, PacketShortPayloadError, channelPrefix } from '../errors';
import { FLAG_COMPRESSION_MASK, PACKET_SLOTS, PAGE_SIZE, maxCompressedPayload, packetHeaderSize } from './constants';
import { badHeader, checkPacket, compressionName, decodePacketHeader, whereFrom, type PacketContext, type PacketErrorContext, type PacketHeader } from './packet';

export interface PacketSink {
  /**
   * A decoded, checked header (checkPacket already passed). The reader reuses one header
   * object for every packet: it is valid until packet() returns; copy what you keep.
   */
  header(h: PacketHeader): void;
  /**
   * Where `length` bytes of page data for byte offset `offset` of block h.ramblock go
   * (a run of whole contiguous pages). Must return a Uint8Array of exactly `length` bytes;
   * the reader (or the kernel) writes into it until the run is complete.
   */
  region(h: PacketHeader, offset: number, length: number): Uint8Array;
  /**
   * Header and whole payload received (zero pages are the sink's job: h.offsets.slice(h.normalPages)).
   * Returning false makes write() stop right after this packet (a SYNC barrier, DESIGN 3.4):
   * the rest of its chunk is not consumed.
   */
  packet(h: PacketHeader): void | boolean;
}

/**
 * A compression method's receive side (one per method, like QEMU's multifd-zlib.c): the
 * reader buffers next_packet_size bytes, then hands them over.
 */
export interface PayloadDecoder {
  /** The compression flag value it handles (COMPRESSION_FLAGS.zlib, ...). */
  readonly flag: number;
  /**
   * Inflates `payload` into the header's normalPages pages, in offset[] order, writing each
   * page (or run) into region(offset, length) (= the sink's region). Throws typed errors on
   * corrupt input. `payload` is the reader's buffer, reused after return.
   */
  decode(h: PacketHeader, payload: Uint8Array, region: (offset: number, length: number) => Uint8Array, where: PacketErrorContext): void;
}

const HEADER = 0;
const PAGES = 1;
const COMPRESSED = 2;
type State = typeof HEADER | typeof PAGES | typeof COMPRESSED;

/** Where bytes go after a failure (contents never read). */
const DISCARD = new Uint8Array(PAGE_SIZE);

export class PacketReader {
  readonly #sink: PacketSink;
  readonly #ctx: PacketContext;
  readonly #slots: number;
  readonly #decoder: PayloadDecoder | null;
  readonly #headerBuf: Uint8Array;
  readonly #h: PacketHeader;
  readonly #regionOf: (offset: number, length: number) => Uint8Array;
  /** Where-from fields for decoders' errors, made once (decode runs per compressed packet). */
  readonly #where: PacketErrorContext;

  #state: State = HEADER;
  /** Bytes written into the current target: header buffer, run region, or compressed payload. */
  #filled = 0;
  /** next()'s answer, kept until advance() so repeated calls agree and do not allocate. */
  #view: Uint8Array | null = null;
  #error: unknown = null;
  /** The sink's packet() returned false: write() stops after the current advance. */
  #hold = false;

  // Runs of the current packet: start offset and byte length. Owned by the reader, reused.
  readonly #runOffset: Float64Array;
  readonly #runLength: Uint32Array;
  #runCount = 0;
  #run = 0;
  /** Payload bytes of the current packet in runs already complete. */
  #runBase = 0;
  #region: Uint8Array | null = null;
  /** Compressed payload buffer, allocated on first use at its maximum size. */
  #payload: Uint8Array | null = null;

  #packets = 0;
  #bytes = 0;
  #pages = 0;
  #zeroPages = 0;
  #payloadBytes = 0;

  constructor(sink: PacketSink, ctx: PacketContext, slots: number = PACKET_SLOTS, decoder: PayloadDecoder | null = null) {
    if (decoder && decoder.flag !== ctx.compression) {
      throw new TypeError(`payload decoder for ${compressionName(decoder.flag)} given, but the migration uses ${compressionName(ctx.compression)}`);
    }
    this.#sink = sink;
    this.#ctx = ctx;
    this.#slots = slots;
    this.#decoder = decoder;
    this.#headerBuf = new Uint8Array(packetHeaderSize(slots));
    this.#h = {
      magic: 0, version: 0, flags: 0, pagesAlloc: 0, normalPages: 0, nextPacketSize: 0,
      packetNum: 0n, zeroPages: 0, ramblock: '', offsets: [],
    };
    this.#runOffset = new Float64Array(slots);
    this.#runLength = new Uint32Array(slots);
    this.#regionOf = (offset, length) => this.#sinkRegion(offset, length);
    this.#where = whereFrom(ctx);
  }

  /** Whole packets received. */
  get packets(): number { return this.#packets; }
  /** Bytes consumed, headers included. */
  get bytes(): number { return this.#bytes; }
  /** Normal pages received in whole packets. */
  get pages(): number { return this.#pages; }
  /** Page payload bytes as they came off the wire (compressed size when compressed), whole runs and packets. */
  get payloadBytes(): number { return this.#payloadBytes; }
  /** Zero pages listed in whole packets. */
  get zeroPages(): number { return this.#zeroPages; }
  /** Between packets (EOF here is a clean end). */
  get atBoundary(): boolean { return this.#error === null && this.#state === HEADER && this.#filled === 0; }

  /**
   * The region the next incoming bytes must be written to; never empty, never throws.
   * After a failure it is a scratch buffer, so a read already under way lands nowhere.
   */
  next(): Uint8Array {
    if (this.#error !== null) return DISCARD;
    if (this.#view) return this.#view;
    switch (this.#state) {
      case HEADER: return (this.#view = this.#headerBuf.subarray(this.#filled));
      case PAGES: return (this.#view = this.#region!.subarray(this.#filled));
      case COMPRESSED: return (this.#view = this.#payload!.subarray(this.#filled, this.#h.nextPacketSize));
    }
  }

  /**
   * `n` bytes were written at the start of the region last returned by next(). May call
   * the sink; throws typed errors, and after one every call but next() throws it again.
   */
  advance(n: number): void {
    if (this.#error !== null) throw this.#error;
    const room = this.next().length;
    if (!Number.isInteger(n) || n <= 0 || n > room) throw new RangeError(`advance(${n}) with ${room} bytes of room`);
    this.#view = null;
    this.#filled += n;
    this.#bytes += n;
    if (n === room) {
      try {
        this.#targetFull();
      } catch (err) {
        this.#error = err;
        throw err;
      }
    }
  }

  /**
   * Chunked input, any chunking: copies through next()/advance(). Returns the bytes
   * consumed: all of them, unless the sink's packet() returned false, in which case it
   * stops right after that packet and the caller keeps the rest for later.
   */
  write(chunk: Uint8Array): number {
    this.#hold = false;
    for (let at = 0; at < chunk.length; ) {
      const dst = this.next();
      const n = Math.min(dst.length, chunk.length - at);
      dst.set(chunk.subarray(at, at + n));
      at += n;
      this.advance(n);
      if (this.#hold) return at;
    }
    return chunk.length;
  }

  /** End of stream: fine at a packet boundary, else PacketShortPayloadError. */
  end(): void {
    if (this.#error !== null) throw this.#error;
    if (this.atBoundary) return;
    const h = this.#h;
    let err: PacketShortPayloadError;
    if (this.#state === HEADER) {
      const size = this.#headerBuf.length;
      const c = { ...whereFrom(this.#ctx), field: 'header', expected: `${size} bytes`, received: `${this.#filled} bytes` };
      err = new PacketShortPayloadError(`${channelPrefix(c)}stream ended ${this.#filled} bytes into a ${size}-byte packet header`, c);
    } else {
      const expected = this.#state === PAGES ? h.normalPages * PAGE_SIZE : h.nextPacketSize;
      const received = this.#state === PAGES ? this.#runBase + this.#filled : this.#filled;
      const c = { ...whereFrom(this.#ctx), field: 'payload', expected: `${expected} bytes`, received: `${received} bytes` };
      err = new PacketShortPayloadError(
        `${channelPrefix(c)}stream ended after ${received} of the ${expected} payload bytes of packet ${h.packetNum}`,
        c,
      );
    }
    this.#error = err;
    throw err;
  }

  #targetFull(): void {
    this.#filled = 0;
    if (this.#state === PAGES) {
      this.#runBase += this.#runLength[this.#run];
      this.#payloadBytes += this.#runLength[this.#run];
      if (++this.#run < this.#runCount) this.#openRun();
      else this.#packetDone();
    } else if (this.#state === COMPRESSED) {
      this.#payloadBytes += this.#h.nextPacketSize;
      this.#decoder!.decode(this.#h, this.#payload!.subarray(0, this.#h.nextPacketSize), this.#regionOf, this.#where);
      this.#packetDone();
    } else {
      this.#headerDone();
    }
  }

  #headerDone(): void {
    const h = decodePacketHeader(this.#headerBuf, this.#slots, this.#h, this.#ctx);
    checkPacket(h, this.#ctx, this.#slots);
    this.#sink.header(h);
    if ((h.flags & FLAG_COMPRESSION_MASK) !== 0) {
      // checkPacket made sure the method is the negotiated one.
      if (!this.#decoder) {
        throw badHeader(this.#ctx, 'flags', 'a compression method this build can decode', `compression ${compressionName(h.flags & FLAG_COMPRESSION_MASK)}`);
      }
      if (h.nextPacketSize === 0) {
        this.#decoder.decode(h, new Uint8Array(0), this.#regionOf, this.#where);
        this.#packetDone();
        return;
      }
      this.#payload ??= new Uint8Array(maxCompressedPayload(this.#slots));
      this.#state = COMPRESSED;
      return;
    }
    if (h.normalPages === 0) {
      this.#packetDone();
      return;
    }
    this.#coalesce(h);
    this.#state = PAGES;
    this.#openRun();
  }

  /** Runs of contiguous offsets among the first normalPages, in offset[] order. */
  #coalesce(h: PacketHeader): void {
    const offsets = h.offsets;
    let count = 0;
    let start = offsets[0];
    let length = PAGE_SIZE;
    for (let i = 1; i < h.normalPages; i++) {
      const off = offsets[i];
      if (off === start + length) {
        length += PAGE_SIZE;
      } else {
        this.#runOffset[count] = start;
        this.#runLength[count++] = length;
        start = off;
        length = PAGE_SIZE;
      }
    }
    this.#runOffset[count] = start;
    this.#runLength[count++] = length;
    this.#runCount = count;
    this.#run = 0;
    this.#runBase = 0;
  }

  #openRun(): void {
    this.#region = this.#sinkRegion(this.#runOffset[this.#run], this.#runLength[this.#run]);
  }

  #sinkRegion(offset: number, length: number): Uint8Array {
    const region = this.#sink.region(this.#h, offset, length);
    if (region.length !== length) {
      const c = { ...whereFrom(this.#ctx), expected: `${length} bytes`, received: `${region.length} bytes`, field: 'region' };
      throw new InternalError(`${channelPrefix(c)}packet sink gave a ${region.length}-byte region for ${length} bytes at offset ${offset}`, c);
    }
    return region;
  }

  #packetDone(): void {
    const h = this.#h;
    this.#packets++;
    this.#pages += h.normalPages;
    this.#zeroPages += h.zeroPages;
    this.#state = HEADER;
    this.#region = null;
    this.#hold = this.#sink.packet(h) === false;
  }
}
