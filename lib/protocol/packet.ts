/**
 * RAM packet header, QEMU's `MultiFDPacket_t` in its 9.0+ form (DESIGN 3.2). Big-endian;
 * always sent at full length, 320 + 8 × slots bytes (1344 for 128 slots):
 *
 * | offset | size      | field            | notes                                                   |
 * |-------:|----------:|------------------|---------------------------------------------------------|
 * | 0      | 4         | magic            | `0x11223344`                                            |
 * | 4      | 4         | version          | `1`                                                     |
 * | 8      | 4         | flags            | bit 0 SYNC; bits 1-5 compression (0 none, 0x02 zlib, 0x04 zstd) |
 * | 12     | 4         | pages_alloc      | slots                                                   |
 * | 16     | 4         | normal_pages     | pages whose bytes follow                                |
 * | 20     | 4         | next_packet_size | payload bytes (stale in QEMU 7.2 packets without pages) |
 * | 24     | 8         | packet_num       | one counter across all channels                         |
 * | 32     | 4         | zero_pages       | 9.0+; QEMU 7.2 has zeros here, i.e. 0                   |
 * | 36     | 28        | reserved         | zero on send, ignored on receive                        |
 * | 64     | 256       | ramblock         | block name, NUL-padded (at most 255 bytes + NUL)        |
 * | 320    | 8 × slots | offset[]         | byte offsets in the block: normal, then zero; rest zero on send, ignored on receive |
 *
 * decodePacketHeader checks structure (what makes the header unreadable); checkPacket
 * checks it against the migration before any page is touched. Encoder misuse is a
 * caller bug (RangeError); faults in received bytes are typed MigrationErrors.
 */
import {
  PacketBadHeaderError,
  PacketOffsetOutOfRangeError,
  PacketShortPayloadError,
  PacketUnknownRamblockError,
  channelPrefix,
  type ErrorContext,
} from '../errors';
import {
  COMPRESSION_FLAGS,
  FLAG_COMPRESSION_MASK,
  MULTIFD_MAGIC,
  PACKET_OFFSET_FLAGS,
  PACKET_OFFSET_MAGIC,
  PACKET_OFFSET_NEXT_PACKET_SIZE,
  PACKET_OFFSET_NORMAL_PAGES,
  PACKET_OFFSET_OFFSETS,
  PACKET_OFFSET_PACKET_NUM,
  PACKET_OFFSET_PAGES_ALLOC,
  PACKET_OFFSET_RAMBLOCK,
  PACKET_OFFSET_VERSION,
  PACKET_OFFSET_ZERO_PAGES,
  PACKET_SLOTS,
  PACKET_VERSION,
  PAGE_SIZE,
  RAMBLOCK_NAME_SIZE,
  maxCompressedPayload,
  packetHeaderSize,
} from './constants';
import { hex32 } from './magic';

export interface PacketHeader {
  magic: number;
  version: number;
  flags: number;
  pagesAlloc: number;
  normalPages: number;
  nextPacketSize: number;
  packetNum: bigint;
  zeroPages: number;
  ramblock: string;
  /** Only the first normalPages + zeroPages entries (normal, then zero), as JS numbers. */
  offsets: number[];
}

export interface PacketToEncode {
  flags?: number;
  normalPages: number;
  zeroPages?: number;
  packetNum: bigint | number;
  ramblock: string;
  /** normalPages entries, then zeroPages entries. */
  offsets: ArrayLike<number>;
  /** Default normalPages × PAGE_SIZE. */
  nextPacketSize?: number;
  /** Default slots. */
  pagesAlloc?: number;
}

/** Where the bytes came from: every error names it. */
export type PacketErrorContext = Pick<ErrorContext, 'channel' | 'peer' | 'connection'>;

export interface PacketContext extends PacketErrorContext {
  /** Size in bytes of the named ramblock, undefined when this migration has no such block. */
  blockSize(name: string): number | undefined;
  /** The negotiated compression flag value (COMPRESSION_FLAGS), 0 for none. */
  compression: number;
}

const TWO_32 = 2 ** 32;
/** Offsets are JS numbers: the high word must keep them below 2^53. */
const MAX_OFFSET_HIGH_WORD = 2 ** 21 - 1;
const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

/**
 * Writes a whole header: into `out` when given (reused; every byte of the header is
 * rewritten, unused slots zeroed) else into a new Buffer. Semantic nonsense (normal_pages
 * above pages_alloc, an offset outside the block) is allowed so that faults can be
 * injected; only what cannot be represented throws.
 */
export function encodePacketHeader(p: PacketToEncode, slots: number = PACKET_SLOTS, out?: Uint8Array): Uint8Array {
  const size = packetHeaderSize(slots);
  const normal = p.normalPages;
  const zero = p.zeroPages ?? 0;
  const used = normal + zero;
  if (!isU32(normal) || !isU32(zero) || used > slots) {
    throw new RangeError(`packet of ${normal} normal + ${zero} zero pages does not fit ${slots} slots`);
  }
  if (p.offsets.length < used) throw new RangeError(`packet needs ${used} offsets, got ${p.offsets.length}`);
  let buf: Uint8Array;
  if (out) {
    if (out.length < size) throw new RangeError(`output buffer of ${out.length} bytes is smaller than the ${size}-byte header`);
    buf = out.length === size ? out : out.subarray(0, size);
    buf.fill(0);
  } else {
    buf = Buffer.alloc(size);
  }
  const dv = new DataView(buf.buffer, buf.byteOffset, size);
  dv.setUint32(PACKET_OFFSET_MAGIC, MULTIFD_MAGIC);
  dv.setUint32(PACKET_OFFSET_VERSION, PACKET_VERSION);
  dv.setUint32(PACKET_OFFSET_FLAGS, p.flags ?? 0);
  dv.setUint32(PACKET_OFFSET_PAGES_ALLOC, p.pagesAlloc ?? slots);
  dv.setUint32(PACKET_OFFSET_NORMAL_PAGES, normal);
  dv.setUint32(PACKET_OFFSET_NEXT_PACKET_SIZE, p.nextPacketSize ?? normal * PAGE_SIZE);
  dv.setBigUint64(PACKET_OFFSET_PACKET_NUM, BigInt(p.packetNum));
  dv.setUint32(PACKET_OFFSET_ZERO_PAGES, zero);

  // Leave room for the terminating NUL: at most 255 name bytes.
  const nameArea = buf.subarray(PACKET_OFFSET_RAMBLOCK, PACKET_OFFSET_RAMBLOCK + RAMBLOCK_NAME_SIZE - 1);
  const { read } = utf8Encoder.encodeInto(p.ramblock, nameArea);
  if (read !== p.ramblock.length || p.ramblock.includes('\0')) {
    throw new RangeError(`ramblock name ${JSON.stringify(p.ramblock)} is not a NUL-free name of at most ${RAMBLOCK_NAME_SIZE - 1} UTF-8 bytes`);
  }

  for (let i = 0; i < used; i++) {
    const off = p.offsets[i];
    if (!Number.isSafeInteger(off) || off < 0) throw new RangeError(`offset[${i}] = ${off} is not a non-negative safe integer`);
    const at = PACKET_OFFSET_OFFSETS + 8 * i;
    dv.setUint32(at, Math.floor(off / TWO_32));
    dv.setUint32(at + 4, off >>> 0);
  }
  return buf;
}

/**
 * Structure only: magic, version, pages_alloc <= slots, normal_pages + zero_pages <=
 * pages_alloc, a NUL-terminated ramblock, offsets below 2^53. Reads the first
 * normal_pages + zero_pages offsets and nothing else of offset[] (QEMU 7.2 leaves stale
 * values there). With `into`, fills and returns that object (its offsets array reused).
 */
export function decodePacketHeader(
  buf: Uint8Array,
  slots: number = PACKET_SLOTS,
  into?: PacketHeader,
  ctx: PacketErrorContext = {},
): PacketHeader {
  const size = packetHeaderSize(slots);
  if (buf.length < size) {
    const c = { ...whereFrom(ctx), field: 'header', expected: `${size} bytes`, received: `${buf.length} bytes` };
    throw new PacketShortPayloadError(`${channelPrefix(c)}packet header is ${buf.length} bytes, expected ${size}`, c);
  }
  const dv = new DataView(buf.buffer, buf.byteOffset, size);
  const magic = dv.getUint32(PACKET_OFFSET_MAGIC);
  if (magic !== MULTIFD_MAGIC) throw badHeader(ctx, 'magic', hex32(MULTIFD_MAGIC), hex32(magic));
  const version = dv.getUint32(PACKET_OFFSET_VERSION);
  if (version !== PACKET_VERSION) throw badHeader(ctx, 'version', String(PACKET_VERSION), String(version));
  const pagesAlloc = dv.getUint32(PACKET_OFFSET_PAGES_ALLOC);
  if (pagesAlloc > slots) throw badHeader(ctx, 'pages_alloc', `<= ${slots}`, String(pagesAlloc));
  const normalPages = dv.getUint32(PACKET_OFFSET_NORMAL_PAGES);
  if (normalPages > pagesAlloc) throw badHeader(ctx, 'normal_pages', `<= ${pagesAlloc} (pages_alloc)`, String(normalPages));
  const zeroPages = dv.getUint32(PACKET_OFFSET_ZERO_PAGES);
  if (zeroPages > pagesAlloc - normalPages) {
    throw badHeader(ctx, 'zero_pages', `<= ${pagesAlloc - normalPages} (pages_alloc - normal_pages)`, String(zeroPages));
  }
  const nameArea = buf.subarray(PACKET_OFFSET_RAMBLOCK, PACKET_OFFSET_RAMBLOCK + RAMBLOCK_NAME_SIZE);
  const nameLength = nameArea.indexOf(0);
  if (nameLength < 0) {
    throw badHeader(ctx, 'ramblock', `a NUL within ${RAMBLOCK_NAME_SIZE} bytes`, `${RAMBLOCK_NAME_SIZE} bytes without a NUL`);
  }

  const used = normalPages + zeroPages;
  const offsets = into?.offsets ?? new Array<number>(used);
  offsets.length = used;
  for (let i = 0; i < used; i++) {
    const at = PACKET_OFFSET_OFFSETS + 8 * i;
    const high = dv.getUint32(at);
    if (high > MAX_OFFSET_HIGH_WORD) {
      throw badHeader(ctx, 'offset', 'below 2^53', `0x${dv.getBigUint64(at).toString(16)} (offset[${i}])`);
    }
    offsets[i] = high * TWO_32 + dv.getUint32(at + 4);
  }

  const h = into ?? ({} as PacketHeader);
  h.magic = magic;
  h.version = version;
  h.flags = dv.getUint32(PACKET_OFFSET_FLAGS);
  h.pagesAlloc = pagesAlloc;
  h.normalPages = normalPages;
  h.nextPacketSize = dv.getUint32(PACKET_OFFSET_NEXT_PACKET_SIZE);
  h.packetNum = dv.getBigUint64(PACKET_OFFSET_PACKET_NUM);
  h.zeroPages = zeroPages;
  h.ramblock = nameLength === 0 ? '' : utf8Decoder.decode(nameArea.subarray(0, nameLength));
  h.offsets = offsets;
  return h;
}

/**
 * Semantic checks before touching memory (DESIGN 3.2), in this order: the compression
 * bits equal the negotiated method; a packet with pages names a known ramblock (one
 * without pages may name none, as QEMU's SYNC packets do); every offset in use is
 * page-aligned with offset + 4096 <= block size; with compression, next_packet_size <=
 * maxCompressedPayload(slots).
 */
export function checkPacket(h: PacketHeader, ctx: PacketContext, slots: number = PACKET_SLOTS): void {
  const method = h.flags & FLAG_COMPRESSION_MASK;
  if (method !== ctx.compression) {
    throw badHeader(ctx, 'flags', `compression ${compressionName(ctx.compression)}`, `compression ${compressionName(method)} (flags ${hex32(h.flags)})`);
  }
  const used = h.normalPages + h.zeroPages;
  if (used > 0) {
    const blockSize = ctx.blockSize(h.ramblock);
    if (blockSize === undefined) {
      const c = { ...whereFrom(ctx), field: 'ramblock', expected: 'a ramblock named in the hello', received: h.ramblock };
      throw new PacketUnknownRamblockError(
        `${channelPrefix(c)}received packet ${h.packetNum} for ramblock ${JSON.stringify(h.ramblock)} but this migration has no such block`,
        c,
      );
    }
    const last = blockSize - PAGE_SIZE;
    for (let i = 0; i < used; i++) {
      const off = h.offsets[i];
      if (off % PAGE_SIZE !== 0 || off > last) {
        const why = off % PAGE_SIZE !== 0 ? `is not ${PAGE_SIZE}-aligned` : 'is outside the block';
        const c = {
          ...whereFrom(ctx),
          field: 'offset',
          expected: `page-aligned, 0x0..${hexNumber(Math.max(last, 0))} (ramblock ${JSON.stringify(h.ramblock)} is ${blockSize} bytes)`,
          received: hexNumber(off),
        };
        throw new PacketOffsetOutOfRangeError(
          `${channelPrefix(c)}received offset ${hexNumber(off)} in packet ${h.packetNum}, which ${why}: ramblock ${JSON.stringify(h.ramblock)} is ${blockSize} bytes`,
          c,
        );
      }
    }
  }
  if (ctx.compression !== 0) {
    const max = maxCompressedPayload(slots);
    if (h.nextPacketSize > max) throw badHeader(ctx, 'next_packet_size', `<= ${max}`, String(h.nextPacketSize));
  }
}

/** 'none', 'zlib', 'zstd', or the hex flag value of a method we do not know. */
export function compressionName(flag: number): string {
  for (const [name, value] of Object.entries(COMPRESSION_FLAGS)) if (value === flag) return name;
  return `0x${flag.toString(16)}`;
}

/** One shape for every header fault: "bad packet header: FIELD is RECEIVED, expected EXPECTED". */
export function badHeader(ctx: PacketErrorContext, field: string, expected: string, received: string): PacketBadHeaderError {
  const c = { ...whereFrom(ctx), field, expected, received };
  return new PacketBadHeaderError(`${channelPrefix(c)}bad packet header: ${field} is ${received}, expected ${expected}`, c);
}

/** Just the where-from fields of a context (a PacketContext also carries functions). */
export function whereFrom(ctx: PacketErrorContext): PacketErrorContext {
  return { channel: ctx.channel ?? null, peer: ctx.peer ?? null, connection: ctx.connection ?? null };
}

function hexNumber(n: number): string {
  return `0x${n.toString(16)}`;
}

function isU32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}
