/**
 * Watches one multifd channel's bytes go by without keeping them: the handshake, then each
 * packet's header (decoded and checked like PacketReader does), its payload only counted.
 * What a relay needs: it forwards the bytes itself and must not copy pages to learn what
 * they are. Payloads are framed by normal_pages when uncompressed (QEMU 7.2 leaves stale
 * next_packet_size values), by next_packet_size when a compression flag is set.
 *
 * pages_alloc is read from the first packet (QEMU: 128 for 4 KiB pages); later packets
 * must not exceed it. Faults throw typed errors, and every later write throws the same.
 */
import { PacketBadHeaderError } from '../errors';
import {
  FLAG_COMPRESSION_MASK,
  FLAG_SYNC,
  HANDSHAKE_SIZE,
  PACKET_FIXED_SIZE,
  PACKET_OFFSET_PAGES_ALLOC,
  PAGE_SIZE,
  packetHeaderSize,
} from './constants';
import { decodeHandshake, type Handshake } from './handshake';
import { readU32 } from './magic';
import { checkPacket, decodePacketHeader, type PacketContext, type PacketHeader } from './packet';

/** Bound on pages_alloc taken from the wire (QEMU uses 128; 64 KiB pages would give 8). */
export const MAX_SCANNED_SLOTS = 4096;

export interface ScannerSink {
  handshake?(h: Handshake): void;
  /** A whole header, checked; called before its payload goes by. */
  header?(h: PacketHeader): void;
}

const HANDSHAKE = 0;
const FIXED = 1;
const HEADER = 2;
const PAYLOAD = 3;

export class PacketScanner {
  readonly #sink: ScannerSink;
  readonly #ctx: PacketContext;
  #state = HANDSHAKE;
  #buf = new Uint8Array(HANDSHAKE_SIZE);
  #filled = 0;
  #need = HANDSHAKE_SIZE;
  #slots: number | null = null;
  #payloadLeft = 0;
  #h: PacketHeader | undefined;
  #error: unknown = null;
  #compression: number | null;

  packets = 0;
  syncs = 0;
  pages = 0;
  zeroPages = 0;
  bytes = 0;
  /** Page payload bytes (compressed size when compressed). */
  payloadBytes = 0;
  /** packet_num of the last packet, as a string (u64). */
  lastPacketNum: string | null = null;
  handshake: Handshake | null = null;

  /**
   * `ctx.compression` null: taken from the first packet. `withHandshake: false` when the
   * bytes start after the 64-byte handshake.
   */
  constructor(sink: ScannerSink, ctx: Omit<PacketContext, 'compression'> & { compression: number | null }, withHandshake = true) {
    this.#sink = sink;
    this.#ctx = { ...ctx, compression: ctx.compression ?? 0 };
    this.#compression = ctx.compression;
    if (!withHandshake) this.#toFixed();
  }

  /** The compression flag value learned (or given); null until a packet with pages came. */
  get compression(): number | null {
    return this.#compression;
  }

  get error(): unknown {
    return this.#error;
  }

  /** Between packets (or before any): EOF here is clean. */
  get atBoundary(): boolean {
    return this.#error === null && this.#state === FIXED && this.#filled === 0;
  }

  write(chunk: Uint8Array): void {
    if (this.#error !== null) throw this.#error;
    this.bytes += chunk.length;
    try {
      for (let at = 0; at < chunk.length; ) {
        if (this.#state === PAYLOAD) {
          const n = Math.min(this.#payloadLeft, chunk.length - at);
          this.#payloadLeft -= n;
          at += n;
          if (this.#payloadLeft === 0) this.#toFixed();
          continue;
        }
        const n = Math.min(this.#need - this.#filled, chunk.length - at);
        this.#buf.set(chunk.subarray(at, at + n), this.#filled);
        this.#filled += n;
        at += n;
        if (this.#filled === this.#need) this.#full();
      }
    } catch (err) {
      this.#error = err;
      throw err;
    }
  }

  #toFixed(): void {
    this.#state = FIXED;
    this.#filled = 0;
    this.#need = PACKET_FIXED_SIZE;
    if (this.#buf.length < PACKET_FIXED_SIZE) this.#buf = new Uint8Array(packetHeaderSize(128));
  }

  #full(): void {
    switch (this.#state) {
      case HANDSHAKE: {
        const h = decodeHandshake(this.#buf.subarray(0, HANDSHAKE_SIZE));
        this.handshake = h;
        this.#sink.handshake?.(h);
        this.#toFixed();
        return;
      }
      case FIXED: {
        if (this.#slots === null) {
          const alloc = readU32(this.#buf, PACKET_OFFSET_PAGES_ALLOC);
          if (alloc === 0 || alloc > MAX_SCANNED_SLOTS) {
            throw new PacketBadHeaderError(`channel ${this.#ctx.channel ?? '?'}: bad packet header: pages_alloc is ${alloc}, expected 1..${MAX_SCANNED_SLOTS}`, {
              channel: this.#ctx.channel ?? null, field: 'pages_alloc', expected: `1..${MAX_SCANNED_SLOTS}`, received: String(alloc),
            });
          }
          this.#slots = alloc;
          if (this.#buf.length < packetHeaderSize(alloc)) {
            const bigger = new Uint8Array(packetHeaderSize(alloc));
            bigger.set(this.#buf.subarray(0, PACKET_FIXED_SIZE));
            this.#buf = bigger;
          }
        }
        // The rest of the header (offset[]) follows: pages_alloc >= 1 makes it longer than the fixed part.
        this.#state = HEADER;
        this.#need = packetHeaderSize(this.#slots);
        return;
      }
      case HEADER: {
        const slots = this.#slots!;
        const h = decodePacketHeader(this.#buf.subarray(0, this.#need), slots, this.#h, this.#ctx);
        this.#h = h;
        const method = h.flags & FLAG_COMPRESSION_MASK;
        // Unless told, the first packet with pages names the method (a relay sees QEMU's, not
        // its own). QEMU sets the method's flag only on packets that carry pages (its SYNC and
        // first packets have none), and checks it only there: so do we.
        if (h.normalPages > 0) this.#compression ??= method;
        const expected = h.normalPages > 0 || method !== 0 ? (this.#compression ?? method) : 0;
        // Also bounds next_packet_size when compressed (the method equals the channel's, or it threw).
        checkPacket(h, { ...this.#ctx, compression: expected }, slots);
        const payload = method === 0 ? h.normalPages * PAGE_SIZE : h.nextPacketSize;
        this.payloadBytes += payload;
        this.packets++;
        if (h.flags & FLAG_SYNC) this.syncs++;
        this.pages += h.normalPages;
        this.zeroPages += h.zeroPages;
        this.lastPacketNum = String(h.packetNum);
        this.#sink.header?.(h);
        if (payload === 0) {
          this.#toFixed();
        } else {
          this.#state = PAYLOAD;
          this.#payloadLeft = payload;
        }
        return;
      }
    }
  }
}
