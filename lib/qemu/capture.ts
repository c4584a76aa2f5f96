/**
 * Reads captured migration traffic: one file per TCP connection, each the bytes the source
 * sent on it (what `multifd relay --record DIR` writes). Classifies each file by its first
 * bytes, decodes the QEMU main stream (lib/protocol/qemu-main) and every multifd channel
 * (handshake, then packets), checks them as the engine's destination would (same error
 * codes), and can rebuild the guest's RAM into a file.
 *
 * Rebuilding honours QEMU's sync points. A page can travel on the main channel (a ZERO
 * record; a PAGE record when multifd is off) in one round and on a multifd channel in the
 * next, so pages are applied epoch by epoch: epoch k on a multifd channel is everything up
 * to and including its k-th SYNC packet; on the main stream it is everything before its
 * k-th sync marker, which is MULTIFD_FLUSH when the stream has any (QEMU 8.1+) and EOS
 * otherwise (7.2 syncs at the end of every RAM section). Within an epoch QEMU sends a page
 * at most once (7.2's duplicates carry the same bytes), so the order inside one is free.
 *
 * With multifd channels the main stream is decoded twice: once for its block list, markers
 * and faults, then again to apply its zero records as they come, each sync marker applying
 * the channels' epochs before it. No record is kept in between.
 *
 * Files are read with positional reads, the RAM is written with positional writes into a
 * sparse file: memory stays at a few MiB whatever the guest's size (plus a byte per page,
 * the map of pages holding data, and a few numbers per multifd packet).
 */
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import {
  ChannelBadMagicError,
  ChannelIdDuplicateError,
  ChannelShortHandshakeError,
  ChannelUuidMismatchError,
  ConfigInvalidError,
  MigrationError,
  PacketShortPayloadError,
  asMigrationError,
  type SerializedError,
} from '../errors';
import {
  FLAG_COMPRESSION_MASK,
  FLAG_SYNC,
  HANDSHAKE_SIZE,
  MAIN_MAGIC,
  MULTIFD_MAGIC,
  PACKET_FIXED_SIZE,
  PACKET_OFFSET_PAGES_ALLOC,
  PAGE_SIZE,
  QEMU_VM_MAGIC,
  bytesToUuid,
  checkHandshake,
  checkPacket,
  compressionName,
  decodeHandshake,
  decodePacketHeader,
  describeMagic,
  packetHeaderSize,
  readU32,
  uuidToBytes,
  type PacketHeader,
} from '../protocol';
import { QemuMainDecoder, type QemuMainSummary, type QemuRamBlock } from '../protocol/qemu-main';

export type CaptureKind = 'qemu-main' | 'multifd' | 'multifd-main' | 'unknown';

export interface ChannelSummary {
  id: number;
  uuid: string;
  packets: number;
  /** Packets with the SYNC flag. */
  syncs: number;
  /** Normal pages (with bytes), and zero pages listed in 9.0+ packets. */
  pages: number;
  zeroPages: number;
  /** Payload bytes (pages), headers not included. */
  payloadBytes: number;
  firstPacketNum: string | null;
  lastPacketNum: string | null;
  /** Packets whose packet_num equals the one before on this channel (a QEMU 7.2 quirk). */
  repeatedPacketNums: number;
  /** pages_alloc of the first packet: the header is 320 + 8 × this bytes. */
  pagesAlloc: number | null;
}

export interface CaptureFileReport {
  path: string;
  bytes: number;
  kind: CaptureKind;
  /** The first 4 bytes, described. */
  magic: string;
  channel: ChannelSummary | null;
  main: QemuMainSummary | null;
  /** The first fault in this file; decoding of the file stops there. */
  error: SerializedError | null;
  /** Not an error: why a file was not (fully) decoded. */
  note: string | null;
}

export interface RebuiltBlock {
  name: string;
  size: number;
  /** Where the block starts in the RAM file; null when --block left it out. */
  fileOffset: number | null;
}

export interface InspectResult {
  files: CaptureFileReport[];
  blocks: RebuiltBlock[];
  /** Whether multifd sync epochs were delimited by MULTIFD_FLUSH (8.1+) or EOS (7.2). */
  syncMarker: 'eos' | 'flush' | null;
  ramOut: string | null;
  /** sha256 of the rebuilt RAM file (all blocks, in order). */
  sha256: string | null;
  /** Pages written into the RAM file: normal (with bytes) and zero-filled. */
  pagesWritten: number;
  zeroPagesApplied: number;
  /** Files with an error. */
  errors: number;
}

export interface InspectOptions {
  /** Write the rebuilt RAM here (all blocks back to back, in the stream's block order). */
  ramOut?: string | null;
  /** Only this RAM block goes into ramOut (e.g. the memory backend's id); all are still checked. */
  block?: string | null;
  /** Expected guest UUID; default: the main stream's (x-validate-uuid), else the channels' common one. */
  uuid?: string | null;
  /** Expected multifd channel count; default: the number of multifd files. */
  channels?: number | null;
}

const CHUNK = 1024 * 1024;
/** QEMU allocates 128 slots (512 KiB of 4 KiB pages); larger pages mean fewer. Bound what we trust. */
const MAX_PAGES_ALLOC = 4096;

interface ChannelWork {
  report: CaptureFileReport;
  path: string;
  summary: ChannelSummary;
  /** Per packet: file position of its header and the epoch it belongs to. */
  packetPos: number[];
  packetEpoch: number[];
  epochs: number;
}

/** The RAM being rebuilt: a sparse file, plus which pages hold written bytes. */
class RamFile {
  readonly blocks: RebuiltBlock[] = [];
  readonly #index = new Map<string, number>();
  /** Each block's start in the space of all blocks back to back (for the written map). */
  readonly #base: number[] = [];
  #fd: number | null = null;
  #written: Uint8Array = new Uint8Array(0);
  pagesWritten = 0;
  zeroPagesApplied = 0;
  readonly #zero = new Uint8Array(PAGE_SIZE);

  /** Opens `path` at once: a RAM file that cannot be written is the caller's error, not a capture's. */
  constructor(
    readonly path: string | null,
    /** Only this block goes into the file. */
    readonly only: string | null = null,
  ) {
    if (path === null) return;
    try {
      this.#fd = openSync(path, 'w+');
    } catch (err) {
      throw new ConfigInvalidError(`--ram-out ${path}: ${(err as Error).message}`, { field: 'ramOut', received: path });
    }
  }

  setBlocks(list: readonly QemuRamBlock[]): void {
    let at = this.blocks.reduce((n, b) => n + b.size, 0);
    let fileSize = this.blocks.reduce((n, b) => n + (b.fileOffset === null ? 0 : b.size), 0);
    for (const b of list) {
      this.#index.set(b.name, this.blocks.length);
      const inFile = this.only === null || this.only === b.name;
      this.blocks.push({ name: b.name, size: b.size, fileOffset: inFile ? fileSize : null });
      this.#base.push(at);
      at += b.size;
      if (inFile) fileSize += b.size;
    }
    const pages = Math.ceil(at / PAGE_SIZE);
    const written = new Uint8Array(pages);
    written.set(this.#written.subarray(0, Math.min(pages, this.#written.length)));
    this.#written = written;
    if (this.#fd !== null) ftruncateSync(this.#fd, fileSize);
  }

  blockIndex(name: string): number | undefined {
    return this.#index.get(name);
  }

  blockSize(name: string): number | undefined {
    const i = this.#index.get(name);
    return i === undefined ? undefined : this.blocks[i].size;
  }

  writePages(block: number, offset: number, data: Uint8Array): void {
    const b = this.blocks[block];
    if (this.#fd !== null && b.fileOffset !== null) writeAll(this.#fd, data, b.fileOffset + offset);
    const at = this.#base[block] + offset;
    this.#written.fill(1, at / PAGE_SIZE, (at + data.length) / PAGE_SIZE);
    this.pagesWritten += data.length / PAGE_SIZE;
  }

  zeroPage(block: number, offset: number, fill: number): void {
    const b = this.blocks[block];
    const page = (this.#base[block] + offset) / PAGE_SIZE;
    this.zeroPagesApplied++;
    // A fresh page of the sparse file is already zero.
    if (fill === 0 && this.#written[page] === 0) return;
    if (this.#fd !== null && b.fileOffset !== null) writeAll(this.#fd, fill === 0 ? this.#zero : new Uint8Array(PAGE_SIZE).fill(fill), b.fileOffset + offset);
    this.#written[page] = fill === 0 ? 0 : 1;
  }

  /** Closes the file and returns its sha256, or null without a file (or without any block in it). */
  finish(): string | null {
    if (this.#fd === null) return null;
    const fd = this.#fd;
    this.#fd = null;
    if (this.blocks.length === 0) {
      closeSync(fd);
      return null;
    }
    try {
      const hash = createHash('sha256');
      const buf = Buffer.allocUnsafe(CHUNK);
      for (let pos = 0; ; ) {
        const n = readSync(fd, buf, 0, CHUNK, pos);
        if (n === 0) break;
        hash.update(buf.subarray(0, n));
        pos += n;
      }
      return hash.digest('hex');
    } finally {
      closeSync(fd);
    }
  }

  close(): void {
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
  }
}

/** Decodes, checks and (with ramOut) rebuilds a capture. Never throws for bad input: faults go into the report. */
export function inspectCapture(paths: readonly string[], opts: InspectOptions = {}): InspectResult {
  const reports = paths.map(classifyFile);
  const ram = new RamFile(opts.ramOut ?? null, opts.block ?? null);
  try {
    // 1. The QEMU main stream: block list, zero pages, pages when multifd is off.
    const mains = reports.filter((r) => r.kind === 'qemu-main');
    for (const extra of mains.slice(1)) extra.note = `a second QEMU main stream (${mains[0].path} is the first): not decoded`;
    const multifdFiles = reports.filter((r) => r.kind === 'multifd');
    let main: QemuMainSummary | null = null;
    if (mains[0]) main = decodeMain(mains[0], ram, multifdFiles.length > 0);
    const syncMarker = main === null ? null : main.flushes > 0 ? 'flush' : 'eos';

    // 2. Multifd handshakes: uuid, id range, duplicates, in file order.
    const channels = checkHandshakes(multifdFiles, opts, main);

    // 3. Without a main stream, the blocks are what the packets name, as large as they reach.
    if (!main && channels.length > 0) inferBlocks(channels, ram);

    // 4. Scan every channel's packets; then apply, epoch by epoch: the main stream's zero
    //    records of epoch k (before its k+1-th sync marker), then the channels' epoch k.
    const work = channels.map((c) => scanChannel(c.report, c.summary, ram));
    const byId = [...work].sort((a, b) => a.summary.id - b.summary.id);
    const scratch = Buffer.allocUnsafe(MAX_PAGES_ALLOC * PAGE_SIZE);
    const header = Buffer.allocUnsafe(packetHeaderSize(MAX_PAGES_ALLOC));
    let applied = 0;
    const applyChannelsBefore = (epoch: number) => {
      for (; applied < epoch; applied++) for (const w of byId) applyEpoch(w, applied, ram, scratch, header);
    };
    if (main && syncMarker && multifdFiles.length > 0) replayZeros(mains[0], ram, syncMarker, applyChannelsBefore);
    applyChannelsBefore(Math.max(0, ...work.map((w) => w.epochs + 1)));
    if (opts.block && !ram.blocks.some((b) => b.name === opts.block)) {
      throw new ConfigInvalidError(`--block ${opts.block}: the capture has no such RAM block (it has ${ram.blocks.map((b) => JSON.stringify(b.name)).join(', ') || 'none'})`, {
        field: 'block', received: opts.block, expected: ram.blocks.map((b) => b.name).join(', '),
      });
    }
    const sha256 = ram.finish();
    return {
      files: reports,
      blocks: ram.blocks,
      syncMarker,
      ramOut: opts.ramOut ?? null,
      sha256,
      pagesWritten: ram.pagesWritten,
      zeroPagesApplied: ram.zeroPagesApplied,
      errors: reports.filter((r) => r.error !== null).length,
    };
  } finally {
    ram.close();
  }
}

function classifyFile(path: string): CaptureFileReport {
  const report: CaptureFileReport = { path, bytes: 0, kind: 'unknown', magic: '', channel: null, main: null, error: null, note: null };
  let fd: number | null = null;
  try {
    fd = openSync(path, 'r');
    report.bytes = fstatSync(fd).size;
    const head = Buffer.alloc(4);
    const n = readSync(fd, head, 0, 4, 0);
    if (n < 4) {
      report.magic = `${n} bytes`;
      report.error = new ChannelShortHandshakeError(`${path}: ${n} bytes, too short to tell what connection it is`, {
        expected: 'at least 4 bytes', received: `${n} bytes`, field: 'magic',
      }).toJSON();
      return report;
    }
    const magic = readU32(head, 0);
    report.magic = describeMagic(magic);
    if (magic === QEMU_VM_MAGIC) report.kind = 'qemu-main';
    else if (magic === MULTIFD_MAGIC) report.kind = 'multifd';
    else if (magic === MAIN_MAGIC) {
      report.kind = 'multifd-main';
      report.note = "this product's own main channel: not decoded by inspect";
    } else {
      report.error = new ChannelBadMagicError(
        `${path}: starts with ${describeMagic(magic)}, which is neither QEMU's main stream ("QEVM") nor a multifd channel (0x11223344)`,
        { expected: '0x5145564d or 0x11223344', received: `0x${magic.toString(16).padStart(8, '0')}`, field: 'magic' },
      ).toJSON();
    }
    return report;
  } catch (err) {
    // Missing, unreadable, a directory: that file's error, not the end of the inspection.
    report.kind = 'unknown';
    report.note = `cannot read: ${(err as Error).message}`;
    report.error = new MigrationError('MIGRATION_CONFIG_INVALID', `${path}: ${(err as Error).message}`).toJSON();
    return report;
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

/** The first pass: blocks, markers, faults; zero records applied now only without multifd. */
function decodeMain(report: CaptureFileReport, ram: RamFile, multifd: boolean): QemuMainSummary {
  const decoder = new QemuMainDecoder({
    blocks: (list) => ram.setBlocks(list),
    // With multifd they wait for their sync epoch: replayZeros applies them.
    zeroPage: multifd ? undefined : (block, offset, fill) => ram.zeroPage(ram.blockIndex(block.name)!, offset, fill),
    page: (block, offset, data) => ram.writePages(ram.blockIndex(block.name)!, offset, data),
  });
  const err = feedFile(report.path, decoder);
  if (err) report.error = asMigrationError(err).toJSON();
  const s = decoder.summary;
  // The decoder counts what it was given; the file may hold more after where it stopped.
  s.bytes = report.bytes;
  if (s.stopped) report.note = `decoded up to ${s.stopped.at} at byte ${s.stopped.offset}: ${s.stopped.reason}`;
  report.main = s;
  return s;
}

/**
 * The second pass, with multifd: the zero records in stream order, and at the k-th sync
 * marker `syncPoint(k)`, which applies the channels' epochs before k. It stops where the
 * first pass did; a fault only this pass meets (writing the RAM) goes on the same file.
 */
function replayZeros(report: CaptureFileReport, ram: RamFile, marker: 'eos' | 'flush', syncPoint: (k: number) => void): void {
  let syncs = 0;
  const decoder = new QemuMainDecoder({
    zeroPage: (block, offset, fill) => ram.zeroPage(ram.blockIndex(block.name)!, offset, fill),
    marker: (kind) => {
      if (kind === marker) syncPoint(++syncs);
    },
  });
  const err = feedFile(report.path, decoder);
  if (err && !report.error) report.error = asMigrationError(err).toJSON();
}

/** Feeds a file to a decoder until it is finished or the file ends; returns the first error. */
function feedFile(path: string, decoder: QemuMainDecoder): unknown {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    for (let pos = 0; !decoder.finished; ) {
      const n = readSync(fd, buf, 0, CHUNK, pos);
      if (n === 0) {
        decoder.end();
        break;
      }
      decoder.write(buf.subarray(0, n));
      pos += n;
    }
    return null;
  } catch (err) {
    return err;
  } finally {
    closeSync(fd);
  }
}

function checkHandshakes(
  files: CaptureFileReport[],
  opts: InspectOptions,
  main: QemuMainSummary | null,
): Array<{ report: CaptureFileReport; summary: ChannelSummary }> {
  const heads = files.map((report) => {
    const buf = Buffer.alloc(HANDSHAKE_SIZE);
    const fd = openSync(report.path, 'r');
    try {
      return { report, buf, n: readSync(fd, buf, 0, HANDSHAKE_SIZE, 0) };
    } finally {
      closeSync(fd);
    }
  });
  // The expected uuid: given, or the main stream's, or the one most channels carry.
  let expected = opts.uuid ?? main?.uuid ?? null;
  if (expected === null) {
    const votes = new Map<string, number>();
    for (const h of heads) {
      if (h.n < HANDSHAKE_SIZE) continue;
      const u = bytesToUuid(h.buf.subarray(8, 24));
      votes.set(u, (votes.get(u) ?? 0) + 1);
    }
    let best = 0;
    for (const [u, v] of votes) if (v > best) [expected, best] = [u, v];
  }
  const channels = opts.channels ?? files.length;
  const taken = new Map<number, string>();
  const out: Array<{ report: CaptureFileReport; summary: ChannelSummary }> = [];
  for (const { report, buf, n } of heads) {
    if (n < HANDSHAKE_SIZE) {
      report.error = new ChannelShortHandshakeError(`${report.path}: ${n} bytes, a multifd handshake is ${HANDSHAKE_SIZE}`, {
        expected: `${HANDSHAKE_SIZE} bytes`, received: `${n} bytes`, field: 'handshake',
      }).toJSON();
      continue;
    }
    const h = decodeHandshake(buf);
    const err = checkHandshake(h, { uuid: expected ? uuidToBytes(expected) : null, channels, isTaken: (id) => taken.has(id) }, {});
    if (err) {
      const detail = err instanceof ChannelIdDuplicateError ? ` (also in ${taken.get(h.id)})` : err instanceof ChannelUuidMismatchError && !opts.uuid && !main?.uuid ? ' (the uuid most channels carry)' : '';
      report.error = { ...err.toJSON(), message: `${report.path}: ${err.message}${detail}` };
      continue;
    }
    taken.set(h.id, report.path);
    const summary: ChannelSummary = {
      id: h.id, uuid: bytesToUuid(h.uuid), packets: 0, syncs: 0, pages: 0, zeroPages: 0, payloadBytes: 0,
      firstPacketNum: null, lastPacketNum: null, repeatedPacketNums: 0, pagesAlloc: null,
    };
    report.channel = summary;
    out.push({ report, summary });
  }
  return out;
}

/** Reads the fixed part of the header at `pos` to learn pages_alloc, then the whole header. */
function readHeader(fd: number, pos: number, fileSize: number, buf: Buffer, slots: number | null): { size: number; slots: number } | null {
  if (pos + PACKET_FIXED_SIZE > fileSize) return null;
  readSync(fd, buf, 0, PACKET_FIXED_SIZE, pos);
  const alloc = slots ?? Math.min(readU32(buf, PACKET_OFFSET_PAGES_ALLOC), MAX_PAGES_ALLOC);
  const size = packetHeaderSize(alloc);
  if (pos + size > fileSize) return null;
  readSync(fd, buf, 0, size, pos);
  return { size, slots: alloc };
}

function scanChannel(report: CaptureFileReport, summary: ChannelSummary, ram: RamFile): ChannelWork {
  const work: ChannelWork = { report, path: report.path, summary, packetPos: [], packetEpoch: [], epochs: 0 };
  const fd = openSync(report.path, 'r');
  const buf = Buffer.allocUnsafe(packetHeaderSize(MAX_PAGES_ALLOC));
  const ctx = { channel: summary.id, blockSize: (name: string) => ram.blockSize(name), compression: 0 };
  let h: PacketHeader | undefined;
  let pos = HANDSHAKE_SIZE;
  let last: bigint | null = null;
  try {
    while (pos < report.bytes) {
      const got = readHeader(fd, pos, report.bytes, buf, summary.pagesAlloc);
      if (!got) {
        const need = summary.pagesAlloc === null ? PACKET_FIXED_SIZE : packetHeaderSize(summary.pagesAlloc);
        throw new PacketShortPayloadError(`channel ${summary.id}: file ends ${report.bytes - pos} bytes into a packet header`, {
          channel: summary.id, field: 'header', expected: `${need} bytes`, received: `${report.bytes - pos} bytes`,
        });
      }
      h = decodePacketHeader(buf.subarray(0, got.size), got.slots, h, { channel: summary.id });
      summary.pagesAlloc ??= got.slots;
      const method = h.flags & FLAG_COMPRESSION_MASK;
      if (method !== 0) {
        report.note = `packet ${h.packetNum} uses ${compressionName(method)} compression: compressed multifd payloads are not decoded, the channel stops there`;
        break;
      }
      checkPacket(h, ctx, got.slots);
      const payload = h.normalPages * PAGE_SIZE;
      if (pos + got.size + payload > report.bytes) {
        throw new PacketShortPayloadError(`channel ${summary.id}: file ends inside the payload of packet ${h.packetNum}`, {
          channel: summary.id, field: 'payload', expected: `${payload} bytes`, received: `${report.bytes - pos - got.size} bytes`,
        });
      }
      work.packetPos.push(pos);
      work.packetEpoch.push(work.epochs);
      if (h.flags & FLAG_SYNC) {
        summary.syncs++;
        work.epochs++;
      }
      summary.packets++;
      summary.pages += h.normalPages;
      summary.zeroPages += h.zeroPages;
      summary.payloadBytes += payload;
      if (last !== null && h.packetNum === last) summary.repeatedPacketNums++;
      last = h.packetNum;
      summary.firstPacketNum ??= String(h.packetNum);
      summary.lastPacketNum = String(h.packetNum);
      pos += got.size + payload;
    }
  } catch (err) {
    report.error = asMigrationError(err, { channel: summary.id }).toJSON();
  } finally {
    closeSync(fd);
  }
  return work;
}

/** Blocks as the packets name them, each as large as its highest page. */
function inferBlocks(channels: Array<{ report: CaptureFileReport; summary: ChannelSummary }>, ram: RamFile): void {
  const size = new Map<string, number>();
  const buf = Buffer.allocUnsafe(packetHeaderSize(MAX_PAGES_ALLOC));
  for (const { report, summary } of channels) {
    const fd = openSync(report.path, 'r');
    try {
      let slots: number | null = null;
      let h: PacketHeader | undefined;
      for (let pos = HANDSHAKE_SIZE; pos < report.bytes; ) {
        const got = readHeader(fd, pos, report.bytes, buf, slots);
        if (!got) break;
        slots ??= got.slots;
        try {
          h = decodePacketHeader(buf.subarray(0, got.size), got.slots, h, { channel: summary.id });
        } catch {
          break; // scanChannel reports it
        }
        if (h.flags & FLAG_COMPRESSION_MASK) break;
        for (const off of h.offsets) size.set(h.ramblock, Math.max(size.get(h.ramblock) ?? 0, off + PAGE_SIZE));
        pos += got.size + h.normalPages * PAGE_SIZE;
      }
    } finally {
      closeSync(fd);
    }
  }
  ram.setBlocks([...size].map(([name, s]) => ({ name, size: s })));
}

function applyEpoch(w: ChannelWork, epoch: number, ram: RamFile, scratch: Buffer, header: Buffer): void {
  if (w.packetPos.length === 0) return;
  const fd = openSync(w.path, 'r');
  const slots = w.summary.pagesAlloc!;
  let h: PacketHeader | undefined;
  try {
    for (let i = 0; i < w.packetPos.length; i++) {
      if (w.packetEpoch[i] !== epoch) continue;
      const pos = w.packetPos[i];
      const size = packetHeaderSize(slots);
      readSync(fd, header, 0, size, pos);
      h = decodePacketHeader(header.subarray(0, size), slots, h, { channel: w.summary.id });
      const block = ram.blockIndex(h.ramblock);
      const used = h.normalPages + h.zeroPages;
      if (used === 0 || block === undefined) continue;
      // Payload: normal pages in offset[] order; write runs of contiguous offsets at once.
      const payload = h.normalPages * PAGE_SIZE;
      readSync(fd, scratch, 0, payload, pos + size);
      for (let p = 0; p < h.normalPages; ) {
        let q = p + 1;
        while (q < h.normalPages && h.offsets[q] === h.offsets[q - 1] + PAGE_SIZE) q++;
        ram.writePages(block, h.offsets[p], scratch.subarray(p * PAGE_SIZE, q * PAGE_SIZE));
        p = q;
      }
      for (let p = h.normalPages; p < used; p++) ram.zeroPage(block, h.offsets[p], 0);
    }
  } finally {
    closeSync(fd);
  }
}

function writeAll(fd: number, data: Uint8Array, position: number): void {
  for (let done = 0; done < data.length; ) {
    done += writeSync(fd, data, done, data.length - done, position + done);
  }
}

