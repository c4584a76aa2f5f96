/**
 * Wire constants: the one place that knows each size. All integers on the wire are
 * big-endian. See docs/PROTOCOL.md.
 */

export const PAGE_SIZE = 4096;
export const PAGE_SHIFT = 12;

// --- multifd channel handshake (QEMU MultiFDInit_t) -------------------------------------
export const MULTIFD_MAGIC = 0x11223344;
export const MULTIFD_VERSION = 1;
export const HANDSHAKE_SIZE = 64;
export const UUID_SIZE = 16;
export const HANDSHAKE_OFFSET_MAGIC = 0;
export const HANDSHAKE_OFFSET_VERSION = 4;
export const HANDSHAKE_OFFSET_UUID = 8;
export const HANDSHAKE_OFFSET_ID = 24;
/** Bytes 25..63: zero on send, ignored on receive. */
export const HANDSHAKE_OFFSET_RESERVED = 25;
/** Channels per migration: ids are 0..channels-1, and an id is one byte. */
export const MAX_CHANNELS = 255;

// --- RAM packets (QEMU MultiFDPacket_t, 9.0+ form with zero_pages) ----------------------
/** Page slots per packet: 128 pages = 512 KiB, QEMU's default. */
export const PACKET_SLOTS = 128;
/** Bytes before offset[]: 36 of fields, 28 reserved, 256 of ramblock name. */
export const PACKET_FIXED_SIZE = 320;
export const RAMBLOCK_NAME_SIZE = 256;
/** QEMU uses one version number for the handshake and the packets. */
export const PACKET_VERSION = MULTIFD_VERSION;
export const PACKET_OFFSET_MAGIC = 0;
export const PACKET_OFFSET_VERSION = 4;
export const PACKET_OFFSET_FLAGS = 8;
export const PACKET_OFFSET_PAGES_ALLOC = 12;
export const PACKET_OFFSET_NORMAL_PAGES = 16;
export const PACKET_OFFSET_NEXT_PACKET_SIZE = 20;
export const PACKET_OFFSET_PACKET_NUM = 24;
/** 9.0+; QEMU 7.2 leaves 32..63 zero, which reads as zero_pages = 0. */
export const PACKET_OFFSET_ZERO_PAGES = 32;
/** Bytes 36..63: zero on send, ignored on receive. */
export const PACKET_OFFSET_RESERVED = 36;
export const PACKET_OFFSET_RAMBLOCK = 64;
export const PACKET_OFFSET_OFFSETS = PACKET_FIXED_SIZE;
export const packetHeaderSize = (slots: number): number => PACKET_FIXED_SIZE + 8 * slots;
/** 1344 bytes for 128 slots. */
export const PACKET_HEADER_SIZE = packetHeaderSize(PACKET_SLOTS);

export const FLAG_SYNC = 0x1;
/** Bits 1-5 name the compression method. */
export const FLAG_COMPRESSION_MASK = 0x3e;
export const FLAG_ZLIB = 0x2;
export const FLAG_ZSTD = 0x4;
/** Compression method names (as in the hello) and their flag values. */
export const COMPRESSION_FLAGS = { none: 0, zlib: FLAG_ZLIB, zstd: FLAG_ZSTD } as const;
export type CompressionName = keyof typeof COMPRESSION_FLAGS;
/** Upper bound on a compressed payload: what the pages would take uncompressed, plus slack. */
export const maxCompressedPayload = (slots: number): number => slots * PAGE_SIZE + 64 * 1024;

// --- main channel (ours) ----------------------------------------------------------------
/** "MFDC": differs from MULTIFD_MAGIC and from QEMU's "QEVM". */
export const MAIN_MAGIC = 0x4d464443;
export const MAIN_VERSION = 1;
export const MAIN_PREAMBLE_SIZE = 8;
/** u32 length (of type + payload) then u8 type. */
export const FRAME_LENGTH_SIZE = 4;
export const FRAME_TYPE_SIZE = 1;
export const FRAME_HEADER_SIZE = FRAME_LENGTH_SIZE + FRAME_TYPE_SIZE;
export const FRAME_MAX_LENGTH = 16 * 1024 * 1024;
/**
 * The largest Hello a destination reads (type byte and JSON): 64 blocks of 255-byte names
 * fit many times over. Until a hello is accepted nothing larger is buffered for a peer.
 */
export const HELLO_MAX_LENGTH = 64 * 1024;

/** QEMU's own main-stream magic ("QEVM"), recognised so it is reported by name. */
export const QEMU_VM_MAGIC = 0x5145564d;
