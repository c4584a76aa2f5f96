/**
 * QEMU's main migration stream (`QEVM`, file version 3), decoded as far as guest RAM goes.
 * Big-endian throughout. What it reads (QEMU 7.2 to 9.x, precopy):
 *
 * ```
 * u32 magic 0x5145564d "QEVM", u32 version 3
 * 0x07 CONFIGURATION  u32 len, machine name, then subsections (0x05, u8 len, name, u32 version, body):
 *                     configuration/target-page-bits (u32), configuration/capabilities
 *                     (u32 count, count × (u8 len, name)), configuration/uuid (16 bytes)
 * 0x01 SECTION_START  u32 section id, u8 len, idstr, u32 instance, u32 version, body, [footer]
 * 0x02 SECTION_PART   u32 section id, body, [footer]
 * 0x03 SECTION_END    u32 section id, body, [footer]
 * 0x04 SECTION_FULL   like START (device state: not decoded here)
 * 0x08 COMMAND        u16 command, u16 length, data (OPEN_RETURN_PATH and PING are skipped)
 * 0x7e FOOTER         u32 section id (absent on old machine types)
 * 0x00 EOF            then optionally 0x06 VMDESCRIPTION, u32 length, JSON
 * ```
 *
 * The body of a `ram` section is a list of records, each a u64 `offset | flags` (flags in
 * the bits below the target page size):
 *
 * | flag | name          | followed by                                                        |
 * |-----:|---------------|--------------------------------------------------------------------|
 * | 0x04 | MEM_SIZE      | (offset = total bytes) blocks until their sizes add up: u8 len, idstr, u64 used_length |
 * | 0x02 | ZERO          | [u8 len, idstr unless CONTINUE], u8 fill byte: the page is filled with it |
 * | 0x08 | PAGE          | [u8 len, idstr unless CONTINUE], one page of bytes (multifd off)   |
 * | 0x10 | EOS           | nothing: the section's records end                                 |
 * | 0x20 | CONTINUE      | (with ZERO/PAGE) same block as the record before                   |
 * | 0x200| MULTIFD_FLUSH | nothing: a multifd sync point (8.1+)                               |
 *
 * XBZRLE (0x40), COMPRESS_PAGE (0x100), the RDMA hook (0x80), device sections (FULL, or a
 * START of anything but `ram`), subsections it does not know and postcopy commands are not
 * guessed at: the decoder stops there and says by name where and why (`stopped`). Bytes
 * that break the grammar are errors with the engine's codes: MIGRATION_MAIN_BAD_FRAME,
 * MIGRATION_PACKET_UNKNOWN_RAMBLOCK, MIGRATION_PACKET_OFFSET_OUT_OF_RANGE, and
 * MIGRATION_MAIN_CLOSED when the stream ends inside an item.
 *
 * Push-based (write(chunk), end()), so it decodes a file or live relay traffic alike; it
 * keeps at most one unfinished record between chunks, and checks every length from the
 * wire before allocating.
 */
import {
  MainBadFrameError,
  MainClosedError,
  PacketOffsetOutOfRangeError,
  PacketUnknownRamblockError,
  type ErrorContext,
} from '../errors';
import { QEMU_VM_MAGIC } from './constants';
import { hex32 } from './magic';

export const QEMU_VM_FILE_VERSION = 3;

export const QEMU_VM_EOF = 0x00;
export const QEMU_VM_SECTION_START = 0x01;
export const QEMU_VM_SECTION_PART = 0x02;
export const QEMU_VM_SECTION_END = 0x03;
export const QEMU_VM_SECTION_FULL = 0x04;
export const QEMU_VM_SUBSECTION = 0x05;
export const QEMU_VM_VMDESCRIPTION = 0x06;
export const QEMU_VM_CONFIGURATION = 0x07;
export const QEMU_VM_COMMAND = 0x08;
export const QEMU_VM_SECTION_FOOTER = 0x7e;

export const RAM_SAVE_FLAG_ZERO = 0x02;
export const RAM_SAVE_FLAG_MEM_SIZE = 0x04;
export const RAM_SAVE_FLAG_PAGE = 0x08;
export const RAM_SAVE_FLAG_EOS = 0x10;
export const RAM_SAVE_FLAG_CONTINUE = 0x20;
export const RAM_SAVE_FLAG_XBZRLE = 0x40;
export const RAM_SAVE_FLAG_HOOK = 0x80;
export const RAM_SAVE_FLAG_COMPRESS_PAGE = 0x100;
export const RAM_SAVE_FLAG_MULTIFD_FLUSH = 0x200;

const MIG_CMD_OPEN_RETURN_PATH = 1;
const MIG_CMD_PING = 2;

/** The vmstate description is JSON of the devices; a few KiB in practice. */
export const MAX_VMDESCRIPTION = 16 * 1024 * 1024;
/** A machine type name; QEMU's are under 64 bytes. */
const MAX_MACHINE_NAME = 256;
/** One block list entry per RAMBlock; a real machine has tens. */
const MAX_BLOCKS = 4096;
const MAX_CAPABILITIES = 256;

export interface QemuRamBlock {
  name: string;
  /** used_length in bytes. */
  size: number;
}

export interface QemuSection {
  type: 'start' | 'part' | 'end' | 'full';
  id: number;
  name: string;
  instance: number | null;
  version: number | null;
}

/** Where and why decoding stopped short of the end of the stream (not an error). */
export interface QemuStop {
  /** The section, subsection, command or record kind, by name. */
  at: string;
  reason: string;
  /** Stream offset of the item. */
  offset: number;
}

export interface QemuMainSink {
  blocks?(blocks: readonly QemuRamBlock[]): void;
  /** A ZERO record: the page at `offset` of `block` is `fill` bytes (0 in practice). */
  zeroPage?(block: QemuRamBlock, offset: number, fill: number): void;
  /** A PAGE record (multifd off). `data` is valid only during the call. */
  page?(block: QemuRamBlock, offset: number, data: Uint8Array): void;
  /** EOS ends a RAM section; FLUSH is a multifd sync point (QEMU 8.1+). */
  marker?(kind: 'eos' | 'flush'): void;
  section?(s: QemuSection): void;
}

export interface QemuMainSummary {
  version: number | null;
  machine: string | null;
  pageSize: number;
  capabilities: string[];
  /** From the configuration/uuid subsection (x-validate-uuid), else null. */
  uuid: string | null;
  blocks: QemuRamBlock[];
  /** Sections seen, by name, with how many headers each had. */
  sections: Record<string, number>;
  zeroPages: number;
  pages: number;
  eos: number;
  flushes: number;
  commands: number;
  /** QEMU_VM_EOF reached. */
  eof: boolean;
  /** Device names of the trailing vmstate description, when present. */
  devices: string[] | null;
  stopped: QemuStop | null;
  /** Bytes written so far. */
  bytes: number;
}

/** Thrown inside a step when the buffered bytes end before the item does. */
const NEED_MORE = Symbol('need more');

class Cursor {
  pos = 0;
  constructor(readonly buf: Uint8Array, readonly dv: DataView) {}
  need(n: number): void {
    if (this.buf.length - this.pos < n) throw NEED_MORE;
  }
  u8(): number {
    this.need(1);
    return this.buf[this.pos++];
  }
  peek(): number {
    this.need(1);
    return this.buf[this.pos];
  }
  u16(): number {
    this.need(2);
    const v = this.dv.getUint16(this.pos);
    this.pos += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.dv.getUint32(this.pos);
    this.pos += 4;
    return v;
  }
  /** A u64 as [high, low] words. */
  u64(): [number, number] {
    this.need(8);
    const hi = this.dv.getUint32(this.pos);
    const lo = this.dv.getUint32(this.pos + 4);
    this.pos += 8;
    return [hi, lo];
  }
  bytes(n: number): Uint8Array {
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  /** u8 length then that many bytes, as latin1 (idstrs are ASCII). */
  shortString(): string {
    const len = this.u8();
    return latin1(this.bytes(len));
  }
}

type State = 'preamble' | 'top' | 'ram' | 'footer' | 'vmdesc' | 'done' | 'stopped' | 'failed';

const SECTION_TYPES: Record<number, QemuSection['type']> = {
  [QEMU_VM_SECTION_START]: 'start',
  [QEMU_VM_SECTION_PART]: 'part',
  [QEMU_VM_SECTION_END]: 'end',
  [QEMU_VM_SECTION_FULL]: 'full',
};

export class QemuMainDecoder {
  readonly #sink: QemuMainSink;
  readonly #ctx: ErrorContext;
  #state: State = 'preamble';
  /** Unconsumed bytes of the previous write (at most one unfinished item). */
  #carry: Uint8Array | null = null;
  /** Stream offset of the first byte of the buffer being parsed. */
  #base = 0;
  #error: unknown = null;
  /** Section ids of `ram` sections (START gives the name; PART/END only the id). */
  readonly #names = new Map<number, string>();
  #current: QemuSection | null = null;
  #block: QemuRamBlock | null = null;
  readonly #blockByName = new Map<string, QemuRamBlock>();
  #vmdesc: Uint8Array | null = null;
  #vmdescFilled = 0;

  readonly summary: QemuMainSummary = {
    version: null,
    machine: null,
    pageSize: 4096,
    capabilities: [],
    uuid: null,
    blocks: [],
    sections: {},
    zeroPages: 0,
    pages: 0,
    eos: 0,
    flushes: 0,
    commands: 0,
    eof: false,
    devices: null,
    stopped: null,
    bytes: 0,
  };

  constructor(sink: QemuMainSink = {}, ctx: ErrorContext = {}) {
    this.#sink = sink;
    this.#ctx = { channel: null, peer: ctx.peer ?? null, connection: ctx.connection ?? null };
  }

  /** True once EOF (and the description after it) is decoded, or decoding stopped. */
  get finished(): boolean {
    return this.#state === 'done' || this.#state === 'stopped';
  }

  get error(): unknown {
    return this.#error;
  }

  /** Decodes what it can of `chunk`. Throws the first grammar error (and again on later writes). */
  write(chunk: Uint8Array): void {
    if (this.#error) throw this.#error;
    // An empty write is nothing, in any state (after the description too).
    if (chunk.length === 0) return;
    this.summary.bytes += chunk.length;
    if (this.#state === 'stopped') return;
    if (this.#state === 'done') return this.#afterVmdesc(chunk.length);
    if (this.#state === 'vmdesc') {
      const extra = this.#fillVmdesc(chunk).length;
      if (extra > 0) this.#afterVmdesc(extra);
      return;
    }
    let buf: Uint8Array;
    if (this.#carry) {
      buf = new Uint8Array(this.#carry.length + chunk.length);
      buf.set(this.#carry);
      buf.set(chunk, this.#carry.length);
      this.#carry = null;
    } else {
      buf = chunk;
    }
    const cur = new Cursor(buf, new DataView(buf.buffer, buf.byteOffset, buf.byteLength));
    try {
      for (;;) {
        const start = cur.pos;
        try {
          if (!this.#step(cur)) break;
        } catch (e) {
          if (e !== NEED_MORE) throw e;
          cur.pos = start;
          break;
        }
      }
    } catch (e) {
      this.#state = 'failed';
      this.#error = e;
      throw e;
    }
    const rest = buf.subarray(cur.pos);
    this.#base += cur.pos;
    // The steps above move the state on; read it afresh.
    const state = this.#state as State;
    if (state === 'vmdesc' || state === 'done') {
      const extra = this.#fillVmdesc(rest).length;
      if (extra > 0) this.#afterVmdesc(extra);
      return;
    }
    // A copy: on a Buffer, slice() would be a view of memory the caller reuses.
    if (rest.length > 0 && state !== 'stopped') this.#carry = new Uint8Array(rest);
  }

  /** The stream ended: an error if it ended inside an item. */
  end(): void {
    if (this.#error) throw this.#error;
    if (this.#state === 'done' || this.#state === 'stopped') return;
    // A stream may end right after EOF without a description, or before anything at all.
    if (this.#state === 'top' && !this.#carry && this.summary.eof) {
      this.#state = 'done';
      return;
    }
    const where = this.#state === 'preamble' ? 'the QEVM header' : this.#state === 'vmdesc' ? 'the vmstate description' : this.#current ? `section ${JSON.stringify(this.#current.name)}` : 'the stream';
    const err = new MainClosedError(`QEMU main stream ended inside ${where} after ${this.summary.bytes} bytes`, {
      ...this.#ctx,
      expected: this.summary.eof ? 'the vmstate description' : 'QEMU_VM_EOF',
      received: `end of stream at byte ${this.summary.bytes}`,
    });
    this.#state = 'failed';
    this.#error = err;
    throw err;
  }

  /** Parses one item; false when there is nothing more to do with this buffer. */
  #step(c: Cursor): boolean {
    switch (this.#state) {
      case 'preamble':
        return this.#preamble(c);
      case 'top':
        return this.#top(c);
      case 'ram':
        return this.#ramRecord(c);
      case 'footer':
        return this.#footer(c);
      default:
        return false;
    }
  }

  #preamble(c: Cursor): boolean {
    const magic = c.u32();
    const version = c.u32();
    if (magic !== QEMU_VM_MAGIC) throw this.#bad('magic', `${hex32(QEMU_VM_MAGIC)} ("QEVM")`, hex32(magic), 0);
    if (version !== QEMU_VM_FILE_VERSION) throw this.#bad('version', String(QEMU_VM_FILE_VERSION), String(version), 4);
    this.summary.version = version;
    this.#state = 'top';
    return true;
  }

  #top(c: Cursor): boolean {
    const at = this.#base + c.pos;
    const type = c.u8();
    if (this.summary.eof && type !== QEMU_VM_VMDESCRIPTION) {
      throw this.#bad('after QEMU_VM_EOF', 'QEMU_VM_VMDESCRIPTION or the end of the stream', `0x${type.toString(16)}`, at);
    }
    switch (type) {
      case QEMU_VM_CONFIGURATION:
        return this.#configuration(c, at);
      case QEMU_VM_SECTION_START:
      case QEMU_VM_SECTION_FULL: {
        const id = c.u32();
        const name = c.shortString();
        const instance = c.u32();
        const version = c.u32();
        return this.#enter(c, { type: SECTION_TYPES[type], id, name, instance, version }, at);
      }
      case QEMU_VM_SECTION_PART:
      case QEMU_VM_SECTION_END: {
        const id = c.u32();
        const name = this.#names.get(id);
        if (name === undefined) throw this.#bad('section id', 'the id of a section started earlier', String(id), at + 1);
        return this.#enter(c, { type: SECTION_TYPES[type], id, name, instance: null, version: null }, at);
      }
      case QEMU_VM_COMMAND: {
        const cmd = c.u16();
        const len = c.u16();
        if (cmd !== MIG_CMD_OPEN_RETURN_PATH && cmd !== MIG_CMD_PING) {
          return this.#stop(`command ${cmd}`, 'postcopy and other commands are not decoded', at);
        }
        c.bytes(len);
        this.summary.commands++;
        return true;
      }
      case QEMU_VM_EOF:
        this.summary.eof = true;
        this.#current = null;
        return true;
      case QEMU_VM_VMDESCRIPTION:
        if (!this.summary.eof) throw this.#bad('section type', 'a section before QEMU_VM_EOF', 'QEMU_VM_VMDESCRIPTION', at);
        return this.#vmdescHeader(c);
      default:
        throw this.#bad('section type', 'a QEMU_VM_* section type', `0x${type.toString(16)}`, at);
    }
  }

  #vmdescHeader(c: Cursor): boolean {
    const len = c.u32();
    if (len > MAX_VMDESCRIPTION) throw this.#bad('vmdescription length', `<= ${MAX_VMDESCRIPTION}`, String(len), this.#base + c.pos - 4);
    this.#vmdesc = new Uint8Array(len);
    this.#vmdescFilled = 0;
    this.#state = 'vmdesc';
    if (len === 0) this.#finishVmdesc();
    return false;
  }

  /** Copies into the description; returns what is left of `chunk` after it. */
  #fillVmdesc(chunk: Uint8Array): Uint8Array {
    const desc = this.#vmdesc;
    if (!desc) return chunk;
    const n = Math.min(desc.length - this.#vmdescFilled, chunk.length);
    desc.set(chunk.subarray(0, n), this.#vmdescFilled);
    this.#vmdescFilled += n;
    if (this.#vmdescFilled === desc.length) this.#finishVmdesc();
    return chunk.subarray(n);
  }

  #finishVmdesc(): void {
    const desc = this.#vmdesc;
    this.#vmdesc = null;
    this.#state = 'done';
    if (!desc) return;
    try {
      const json = JSON.parse(new TextDecoder().decode(desc)) as { devices?: Array<{ name?: unknown }> };
      this.summary.devices = Array.isArray(json.devices) ? json.devices.map((d) => String(d?.name)) : [];
    } catch {
      this.summary.devices = null;
      this.summary.stopped = { at: 'vmdescription', reason: 'its JSON does not parse', offset: this.#base };
    }
  }

  #afterVmdesc(extra: number): never {
    const err = this.#bad('after the vmstate description', 'the end of the stream', `${extra} more bytes`, this.summary.bytes - extra);
    this.#state = 'failed';
    this.#error = err;
    throw err;
  }

  #configuration(c: Cursor, at: number): boolean {
    const len = c.u32();
    if (len > MAX_MACHINE_NAME) throw this.#bad('configuration name length', `<= ${MAX_MACHINE_NAME}`, String(len), at + 1);
    const machine = latin1(c.bytes(len));
    const caps: string[] = [];
    let pageBits: number | null = null;
    let uuid: string | null = null;
    // QEMU writes each subsection once. A repeat is refused: the configuration is one item,
    // buffered whole until it ends, so repeats without end would be memory without end.
    const seen = new Set<string>();
    for (;;) {
      if (c.peek() !== QEMU_VM_SUBSECTION) break;
      const subAt = this.#base + c.pos;
      c.u8();
      const name = c.shortString();
      c.u32(); // version
      if (seen.has(name)) throw this.#bad('configuration subsection', 'each subsection once', `${JSON.stringify(name)} twice`, subAt);
      seen.add(name);
      if (name === 'configuration/target-page-bits') {
        pageBits = c.u32();
        if (pageBits < 10 || pageBits > 16) throw this.#bad('target-page-bits', '10..16', String(pageBits), subAt);
      } else if (name === 'configuration/capabilities') {
        const count = c.u32();
        if (count > MAX_CAPABILITIES) throw this.#bad('capability count', `<= ${MAX_CAPABILITIES}`, String(count), subAt);
        for (let i = 0; i < count; i++) caps.push(c.shortString());
      } else if (name === 'configuration/uuid') {
        uuid = formatUuid(c.bytes(16));
      } else {
        // Everything before it has been read whole: keep it, then stop here.
        this.#commitConfiguration(machine, caps, pageBits, uuid);
        return this.#stop(`subsection ${JSON.stringify(name)}`, 'this configuration subsection is not decoded', subAt);
      }
    }
    this.#commitConfiguration(machine, caps, pageBits, uuid);
    return true;
  }

  #commitConfiguration(machine: string, caps: string[], pageBits: number | null, uuid: string | null): void {
    this.summary.machine = machine;
    this.summary.capabilities = caps;
    if (pageBits !== null) this.summary.pageSize = 2 ** pageBits;
    this.summary.uuid = uuid;
  }

  #enter(c: Cursor, s: QemuSection, at: number): boolean {
    if (s.type === 'start' || s.type === 'full') this.#names.set(s.id, s.name);
    this.summary.sections[s.name] = (this.summary.sections[s.name] ?? 0) + 1;
    this.#current = s;
    this.#sink.section?.(s);
    if (s.name !== 'ram' || s.type === 'full') {
      const what = s.type === 'full' ? 'device state' : 'an iterable section other than ram';
      return this.#stop(
        `section ${JSON.stringify(s.name)}`,
        `${what} (${s.type}, section id ${s.id}${s.instance !== null ? `, instance ${s.instance}, version ${s.version}` : ''}) is not decoded`,
        at,
      );
    }
    // The CONTINUE block carries over from the previous ram section: QEMU's source keeps
    // last_sent_block across sections, its destination last_recv_block likewise.
    this.#state = 'ram';
    return true;
  }

  #ramRecord(c: Cursor): boolean {
    const at = this.#base + c.pos;
    const [hi, lo] = c.u64();
    const mask = this.summary.pageSize - 1;
    const flags = lo & mask;
    if (hi >= 2 ** 21) throw this.#bad('ram record', 'an offset below 2^53', `0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')}`, at);
    const addr = hi * 2 ** 32 + (lo - flags);
    switch (flags & ~RAM_SAVE_FLAG_CONTINUE) {
      case RAM_SAVE_FLAG_MEM_SIZE:
        return this.#blockList(c, addr, at);
      case RAM_SAVE_FLAG_ZERO: {
        const block = this.#recordBlock(c, flags, at);
        const fill = c.u8();
        this.#checkOffset(block, addr, at);
        this.summary.zeroPages++;
        this.#sink.zeroPage?.(block, addr, fill);
        return true;
      }
      case RAM_SAVE_FLAG_PAGE: {
        const block = this.#recordBlock(c, flags, at);
        const data = c.bytes(this.summary.pageSize);
        this.#checkOffset(block, addr, at);
        this.summary.pages++;
        this.#sink.page?.(block, addr, data);
        return true;
      }
      case RAM_SAVE_FLAG_EOS:
        this.summary.eos++;
        this.#sink.marker?.('eos');
        this.#state = 'footer';
        return true;
      case RAM_SAVE_FLAG_MULTIFD_FLUSH:
        this.summary.flushes++;
        this.#sink.marker?.('flush');
        return true;
      case RAM_SAVE_FLAG_XBZRLE:
        return this.#stop('ram record XBZRLE (0x40)', 'XBZRLE-encoded pages are not decoded', at);
      case RAM_SAVE_FLAG_COMPRESS_PAGE:
        return this.#stop('ram record COMPRESS_PAGE (0x100)', 'compressed pages (the old compress capability) are not decoded', at);
      case RAM_SAVE_FLAG_HOOK:
        return this.#stop('ram record HOOK (0x80)', 'RDMA hooks are not decoded', at);
      default:
        throw this.#bad('ram record flags', 'one of ZERO, PAGE, MEM_SIZE, EOS, MULTIFD_FLUSH (with CONTINUE)', `0x${flags.toString(16)}`, at);
    }
  }

  #blockList(c: Cursor, total: number, at: number): boolean {
    const blocks: QemuRamBlock[] = [];
    let sum = 0;
    const ignoreShared = this.summary.capabilities.includes('x-ignore-shared');
    while (sum < total) {
      if (blocks.length >= MAX_BLOCKS) throw this.#bad('block list', `<= ${MAX_BLOCKS} blocks`, 'more', at);
      const name = c.shortString();
      const [hi, lo] = c.u64();
      if (hi >= 2 ** 21) throw this.#bad('block size', 'below 2^53', `0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')}`, at);
      const size = hi * 2 ** 32 + lo;
      if (ignoreShared) c.u64(); // the block's guest address
      blocks.push({ name, size });
      sum += size;
    }
    if (sum !== total) throw this.#bad('block list', `block sizes adding up to ${total}`, String(sum), at);
    for (const b of blocks) {
      if (this.#blockByName.has(b.name)) throw this.#bad('block list', 'distinct block names', `${JSON.stringify(b.name)} twice`, at);
      this.#blockByName.set(b.name, b);
    }
    this.summary.blocks.push(...blocks);
    this.#sink.blocks?.(blocks);
    return true;
  }

  #recordBlock(c: Cursor, flags: number, at: number): QemuRamBlock {
    if (flags & RAM_SAVE_FLAG_CONTINUE) {
      if (!this.#block) throw this.#bad('ram record', 'a block name (CONTINUE before any record named a block)', 'CONTINUE', at);
      return this.#block;
    }
    const name = c.shortString();
    const block = this.#blockByName.get(name);
    if (!block) {
      const ctx = { ...this.#ctx, field: 'ramblock', expected: 'a block of the MEM_SIZE list', received: name };
      throw new PacketUnknownRamblockError(`QEMU main stream: record at byte ${at} names block ${JSON.stringify(name)}, which the block list does not have`, ctx);
    }
    this.#block = block;
    return block;
  }

  #checkOffset(block: QemuRamBlock, offset: number, at: number): void {
    if (offset + this.summary.pageSize <= block.size) return;
    const ctx = {
      ...this.#ctx,
      field: 'offset',
      expected: `0x0..0x${Math.max(block.size - this.summary.pageSize, 0).toString(16)} (ramblock ${JSON.stringify(block.name)} is ${block.size} bytes)`,
      received: `0x${offset.toString(16)}`,
    };
    throw new PacketOffsetOutOfRangeError(
      `QEMU main stream: record at byte ${at} has offset 0x${offset.toString(16)}, outside ramblock ${JSON.stringify(block.name)} (${block.size} bytes)`,
      ctx,
    );
  }

  #footer(c: Cursor): boolean {
    const at = this.#base + c.pos;
    if (c.peek() === QEMU_VM_SECTION_FOOTER) {
      c.u8();
      const id = c.u32();
      const want = this.#current?.id;
      if (id !== want) throw this.#bad('section footer', `section id ${want}`, String(id), at);
    }
    this.#current = null;
    this.#state = 'top';
    return true;
  }

  #stop(what: string, reason: string, offset: number): boolean {
    this.summary.stopped = { at: what, reason, offset };
    this.#state = 'stopped';
    return false;
  }

  #bad(field: string, expected: string, received: string, offset: number): MainBadFrameError {
    const ctx = { ...this.#ctx, field, expected, received };
    return new MainBadFrameError(`QEMU main stream, byte ${offset}: ${field} is ${received}, expected ${expected}`, ctx);
  }
}

function latin1(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
  return s;
}

function formatUuid(b: Uint8Array): string {
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
