/**
 * Source side: turns one round's page set into multifd packets. A packet carries up to
 * `slots` pages of one block: normal pages (their bytes follow, as views of guest RAM, one
 * view per run of contiguous pages — no copy) and zero pages (listed, never sent).
 *
 * Each page is hashed as it is packed, so the source's RAM digest is current when the guest
 * pauses: only the final pass's pages are hashed during switchover.
 */
import type { PageHashes, RamBlock } from '../guest';
import {
  FLAG_SYNC,
  PAGE_SIZE,
  PACKET_OFFSET_FLAGS,
  PACKET_OFFSET_NEXT_PACKET_SIZE,
  PACKET_SLOTS,
  encodePacketHeader,
} from '../protocol';

export interface OutPacket {
  header: Uint8Array;
  /** Views of guest RAM, in offset[] order. */
  payload: Uint8Array[];
  normalPages: number;
  zeroPages: number;
  /** header + payload bytes */
  bytes: number;
}

/** Which pages of a block a round sends: every page, or the set bits of a taken dirty bitmap. */
export type PageSet = { kind: 'all' } | { kind: 'bitmap'; words: Uint32Array };

export class RoundPacker {
  private blockIdx = 0;
  /** Next page index to look at in the current block. */
  private page = 0;
  private readonly normal: number[] = [];
  private readonly zero: number[] = [];
  private readonly offsets: number[] = [];
  pagesPacked = 0;
  zeroPacked = 0;

  constructor(
    private readonly blocks: readonly RamBlock[],
    private readonly sets: readonly PageSet[],
    private readonly hashes: PageHashes,
    private readonly slots: number = PACKET_SLOTS,
  ) {}

  /** The next packet of the round, numbered `packetNum`, or null when the round is done. */
  next(packetNum: bigint): OutPacket | null {
    while (this.blockIdx < this.blocks.length) {
      const block = this.blocks[this.blockIdx];
      const set = this.sets[this.blockIdx];
      this.collect(block, set);
      if (this.normal.length + this.zero.length > 0) return this.build(block, packetNum);
      this.blockIdx++;
      this.page = 0;
    }
    return null;
  }

  /** Gathers up to `slots` pages of `block` from the current position. */
  private collect(block: RamBlock, set: PageSet): void {
    this.normal.length = 0;
    this.zero.length = 0;
    const pages = block.pages;
    let p = this.page;
    let n = 0;
    if (set.kind === 'all') {
      for (; p < pages && n < this.slots; p++, n++) this.take(block, p);
    } else {
      const words = set.words;
      while (p < pages && n < this.slots) {
        const w = p >>> 5;
        const bits = words[w] >>> (p & 31);
        if (bits === 0) {
          p = (w + 1) << 5;
          continue;
        }
        // skip to the next set bit within this word
        p += 31 - Math.clz32(bits & -bits);
        if (p >= pages) break;
        this.take(block, p);
        n++;
        p++;
      }
    }
    this.page = p;
  }

  private take(block: RamBlock, p: number): void {
    if (block.isZeroPage(p)) this.zero.push(p);
    else this.normal.push(p);
  }

  private build(block: RamBlock, packetNum: bigint): OutPacket {
    const { normal, zero, offsets } = this;
    this.hashes.hashPages(block, normal);
    this.hashes.hashZeroPages(block, zero);
    offsets.length = 0;
    const payload: Uint8Array[] = [];
    let runStart = -1;
    let runLen = 0;
    for (const p of normal) {
      offsets.push(p * PAGE_SIZE);
      if (runLen > 0 && p === runStart + runLen) {
        runLen++;
        continue;
      }
      if (runLen > 0) payload.push(block.bytes.subarray(runStart * PAGE_SIZE, (runStart + runLen) * PAGE_SIZE));
      runStart = p;
      runLen = 1;
    }
    if (runLen > 0) payload.push(block.bytes.subarray(runStart * PAGE_SIZE, (runStart + runLen) * PAGE_SIZE));
    for (const p of zero) offsets.push(p * PAGE_SIZE);
    const header = encodePacketHeader(
      { normalPages: normal.length, zeroPages: zero.length, packetNum, ramblock: block.name, offsets },
      this.slots,
    );
    this.pagesPacked += normal.length;
    this.zeroPacked += zero.length;
    return {
      header,
      payload,
      normalPages: normal.length,
      zeroPages: zero.length,
      bytes: header.length + normal.length * PAGE_SIZE,
    };
  }
}

/**
 * The page-less SYNC packet that ends a round on every channel (DESIGN 3.4). With
 * compression it carries the method's flag too: every packet of a compressed migration does.
 */
export function syncPacket(packetNum: bigint, slots: number = PACKET_SLOTS, compressionFlag = 0): OutPacket {
  const header = encodePacketHeader(
    { flags: FLAG_SYNC | compressionFlag, normalPages: 0, zeroPages: 0, packetNum, ramblock: '', offsets: [], nextPacketSize: 0 },
    slots,
  );
  return { header, payload: [], normalPages: 0, zeroPages: 0, bytes: header.length };
}

/**
 * The packet with its pages replaced by `frame`, their compressed form: the method's flag
 * set and next_packet_size the frame's length (the header is the packer's own, patched).
 */
export function compressedPacket(p: OutPacket, flag: number, frame: Uint8Array): OutPacket {
  const dv = new DataView(p.header.buffer, p.header.byteOffset, p.header.byteLength);
  dv.setUint32(PACKET_OFFSET_FLAGS, dv.getUint32(PACKET_OFFSET_FLAGS) | flag);
  dv.setUint32(PACKET_OFFSET_NEXT_PACKET_SIZE, frame.length);
  return { ...p, payload: frame.length > 0 ? [frame] : [], bytes: p.header.length + frame.length };
}
