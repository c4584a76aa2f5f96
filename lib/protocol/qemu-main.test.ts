/**
 * QemuMainDecoder (QEVM main stream, RAM part): the real QEMU 7.2 capture fed whole and in
 * many chunkings, hand-built streams (a small big-endian writer below, one method per wire
 * item) for what reaches the sink, the faults with their stable codes, and the places where
 * decoding stops on purpose without an error.
 */
import { strict as assert } from 'node:assert';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { MigrationError } from '../errors';
import {
  MAX_VMDESCRIPTION,
  QemuMainDecoder,
  type QemuMainSummary,
  type QemuRamBlock,
  type QemuSection,
} from './qemu-main';
import { pageBytes, splits, throwsCode } from './test-support';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const VECTORS = path.resolve(repoRoot, '..', 'shared', 'vectors', 'qemu-7.2-multifd-4ch');
const present = existsSync(VECTORS);

const PAGE = 4096;

// --- a test-only writer of QEMU main streams -----------------------------------------------

const FLAG = { ZERO: 0x02, MEM_SIZE: 0x04, PAGE: 0x08, EOS: 0x10, CONTINUE: 0x20, XBZRLE: 0x40, FLUSH: 0x200 };

/** Appends wire items, big-endian. A null block name on a record means CONTINUE. */
class Qevm {
  readonly #parts: Buffer[] = [];

  raw(bytes: Uint8Array | number[]): this {
    this.#parts.push(Buffer.from(bytes as Uint8Array));
    return this;
  }
  u8(v: number): this {
    return this.raw([v]);
  }
  u16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(v);
    return this.raw(b);
  }
  u32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v);
    return this.raw(b);
  }
  u64(v: number | bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(v));
    return this.raw(b);
  }
  /** u8 length, then the bytes (idstrs, subsection and capability names). */
  str8(s: string): this {
    return this.u8(s.length).raw(Buffer.from(s, 'latin1'));
  }

  header(magic = 0x5145564d, version = 3): this {
    return this.u32(magic).u32(version);
  }
  /** QEMU_VM_CONFIGURATION: u32 length, machine name, then the subsections asked for. */
  configuration(machine: string, sub: { pageBits?: number; capabilities?: string[]; uuid?: string; unknown?: string } = {}): this {
    this.u8(0x07).u32(machine.length).raw(Buffer.from(machine, 'latin1'));
    if (sub.pageBits !== undefined) this.subsection('configuration/target-page-bits').u32(sub.pageBits);
    if (sub.capabilities) {
      this.subsection('configuration/capabilities').u32(sub.capabilities.length);
      for (const c of sub.capabilities) this.str8(c);
    }
    if (sub.uuid) this.subsection('configuration/uuid').raw(Buffer.from(sub.uuid.replace(/-/g, ''), 'hex'));
    if (sub.unknown) this.subsection(sub.unknown).u32(0);
    return this;
  }
  subsection(name: string, version = 1): this {
    return this.u8(0x05).str8(name).u32(version);
  }
  start(id: number, name = 'ram', instance = 0, version = 4): this {
    return this.u8(0x01).u32(id).str8(name).u32(instance).u32(version);
  }
  full(id: number, name: string, instance = 0, version = 1): this {
    return this.u8(0x04).u32(id).str8(name).u32(instance).u32(version);
  }
  part(id: number): this {
    return this.u8(0x02).u32(id);
  }
  end(id: number): this {
    return this.u8(0x03).u32(id);
  }
  footer(id: number): this {
    return this.u8(0x7e).u32(id);
  }
  /** MEM_SIZE with the total, then each block (with its address under x-ignore-shared). */
  memSize(blocks: Array<{ name: string; size: number; addr?: number }>): this {
    this.u64(blocks.reduce((n, b) => n + b.size, 0) + FLAG.MEM_SIZE);
    for (const b of blocks) {
      this.str8(b.name).u64(b.size);
      if (b.addr !== undefined) this.u64(b.addr);
    }
    return this;
  }
  record(offset: number, flags: number, block: string | null): this {
    this.u64(offset + flags + (block === null ? FLAG.CONTINUE : 0));
    return block === null ? this : this.str8(block);
  }
  zero(offset: number, block: string | null, fill = 0): this {
    return this.record(offset, FLAG.ZERO, block).u8(fill);
  }
  page(offset: number, block: string | null, data: Uint8Array): this {
    return this.record(offset, FLAG.PAGE, block).raw(data);
  }
  eos(): this {
    return this.u64(FLAG.EOS);
  }
  flush(): this {
    return this.u64(FLAG.FLUSH);
  }
  command(cmd: number, data: number[] = []): this {
    return this.u8(0x08).u16(cmd).u16(data.length).raw(data);
  }
  eof(): this {
    return this.u8(0x00);
  }
  /** QEMU_VM_VMDESCRIPTION: u32 length (the JSON's unless given), then the JSON. */
  vmdesc(json: unknown, declared?: number): this {
    const body = Buffer.from(typeof json === 'string' ? json : JSON.stringify(json));
    return this.u8(0x06).u32(declared ?? body.length).raw(body);
  }
  get length(): number {
    return this.#parts.reduce((n, p) => n + p.length, 0);
  }
  bytes(): Buffer {
    return Buffer.concat(this.#parts);
  }
}

// --- running the decoder -------------------------------------------------------------------

interface Run {
  summary: QemuMainSummary;
  finished: boolean;
  /** Every sink call, in order, as comparable values. */
  events: unknown[];
  error: unknown;
}

/** Feeds `chunks` then end(); records the sink calls and the first error. */
function run(chunks: Iterable<Uint8Array>, callEnd = true): Run {
  const events: unknown[] = [];
  const d = new QemuMainDecoder({
    blocks: (list: readonly QemuRamBlock[]) => events.push(['blocks', list.map((b) => ({ ...b }))]),
    zeroPage: (b, offset, fill) => events.push(['zero', b.name, offset, fill]),
    page: (b, offset, data) => events.push(['page', b.name, offset, Buffer.from(data).toString('hex')]),
    marker: (kind) => events.push(['marker', kind]),
    section: (s: QemuSection) => events.push(['section', { ...s }]),
  });
  let error: unknown = null;
  try {
    for (const c of chunks) d.write(c);
    if (callEnd) d.end();
  } catch (e) {
    error = e;
  }
  return { summary: structuredClone(d.summary), finished: d.finished, events, error };
}

/** `bytes` cut into pieces of `size` (the last one shorter). */
function chunked(bytes: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out;
}

/** Pieces of pseudo-random sizes 1..max (a fixed seed: failures reproduce). */
function randomChunks(bytes: Uint8Array, seed: number, max: number): Uint8Array[] {
  let x = seed >>> 0 || 1;
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; ) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const n = 1 + ((x >>> 0) % max);
    out.push(bytes.subarray(i, i + n));
    i += n;
  }
  return out;
}

const CHUNKINGS = [1, 2, 3, 7, 8, 9, 13, 64, 4095, 4096, 4097, 4099, 65536];

function hexOf(data: Uint8Array): string {
  return Buffer.from(data).toString('hex');
}

// --- 1. the real capture ------------------------------------------------------------------------

describe('QemuMainDecoder on the QEMU 7.2 capture (main.bin)', { skip: present ? false : `test vectors not found at ${VECTORS}` }, () => {
  const main = present ? readFileSync(path.join(VECTORS, 'main.bin')) : Buffer.alloc(0);

  it('fed whole: block "mem" 64 MiB, 14080 zero pages (exactly the zero pages of the image), 3 EOS, stops at section "timer" by name', () => {
    const r = run([main]);
    assert.equal(r.error, null);
    assert.equal(r.finished, true);
    const s = r.summary;
    assert.equal(s.version, 3);
    assert.equal(s.machine, 'none');
    assert.equal(s.pageSize, PAGE);
    assert.deepEqual(s.capabilities, []);
    assert.equal(s.uuid, null, 'x-validate-uuid was off');
    assert.deepEqual(s.blocks, [{ name: 'mem', size: 64 * 1024 * 1024 }]);
    assert.deepEqual(s.sections, { ram: 3, timer: 1 });
    assert.equal(s.zeroPages, 14080);
    assert.equal(s.pages, 0, 'no page data on the main channel with multifd');
    assert.equal(s.eos, 3);
    assert.equal(s.flushes, 0, '7.2 has no MULTIFD_FLUSH');
    assert.equal(s.eof, false);
    assert.equal(s.bytes, main.length);
    assert.equal(s.stopped?.at, 'section "timer"');
    assert.match(s.stopped!.reason, /device state \(full, section id 0, instance 0, version 2\)/);
    // The offset names the FULL section header: type 0x04, id 0, then idstr "timer".
    const at = s.stopped!.offset;
    assert.equal(main[at], 0x04);
    assert.equal(main.readUInt32BE(at + 1), 0);
    assert.equal(main.subarray(at + 5, at + 11).toString('latin1'), '\x05timer');

    // The order of what reached the sink: START (block list, EOS), PART (every zero page, EOS), END (EOS), FULL.
    const kinds = r.events.map((e) => (e as unknown[])[0] === 'section' ? `section ${(e as [string, QemuSection])[1].type}` : String((e as unknown[])[0]));
    const firstZero = kinds.indexOf('zero');
    assert.deepEqual(kinds.slice(0, firstZero), ['section start', 'blocks', 'marker', 'section part']);
    assert.deepEqual(kinds.slice(firstZero + 14080), ['marker', 'section end', 'marker', 'section full']);
    assert.ok(kinds.slice(firstZero, firstZero + 14080).every((k) => k === 'zero'));

    // The zero pages named are exactly the all-zero pages of the source image.
    const image = gunzipSync(readFileSync(path.join(VECTORS, 'ram.img.gz')));
    const zero = Buffer.alloc(PAGE);
    const expected: number[] = [];
    for (let off = 0; off < image.length; off += PAGE) if (image.compare(zero, 0, PAGE, off, off + PAGE) === 0) expected.push(off);
    const named = r.events.filter((e) => (e as unknown[])[0] === 'zero') as Array<[string, string, number, number]>;
    assert.ok(named.every(([, block, , fill]) => block === 'mem' && fill === 0));
    assert.deepEqual(named.map(([, , off]) => off), expected);
  });

  it('gives identical results in every chunking (1, 2, 3, 7 ... 4099, 65536 bytes, random sizes)', () => {
    const whole = run([main]);
    const chunkings: Array<[string, Uint8Array[]]> = CHUNKINGS.map((n) => [`${n}-byte chunks`, chunked(main, n)]);
    chunkings.push(['random sizes up to 17', randomChunks(main, 7, 17)], ['random sizes up to 9000', randomChunks(main, 42, 9000)]);
    for (const [label, chunks] of chunkings) {
      const r = run(chunks);
      assert.equal(r.error, null, label);
      assert.equal(r.finished, true, label);
      assert.deepEqual(r.summary, whole.summary, label);
      assert.deepEqual(r.events, whole.events, label);
    }
  });

  it('stops there for good: later bytes are ignored and end() is not an error', () => {
    const d = new QemuMainDecoder();
    d.write(main);
    d.write(Buffer.from('anything at all'));
    d.end();
    assert.equal(d.summary.stopped?.at, 'section "timer"');
    assert.equal(d.summary.zeroPages, 14080);
    assert.equal(d.error, null);
  });
});

// --- 2. hand-built streams: what reaches the sink ------------------------------------------------

const UUID = '5e1ec7ed-0000-4000-8000-00000000c0de';
const BLOCKS = [
  { name: 'pc.ram', size: 16 * PAGE },
  { name: 'vga.vram', size: 4 * PAGE },
];
const P1 = pageBytes(1);
const P2 = pageBytes(2);
const P3 = pageBytes(3);
const DEVICES = { page_size: PAGE, devices: [{ name: 'ram', instance_id: 0 }, { name: 'timer', instance_id: 0 }, { name: 'apic', instance_id: 1 }] };

/** An 8.1+-style stream, multifd off: pages and zero pages on the main stream, FLUSH and EOS markers. */
function fullStream(): { bytes: Buffer; eofEnd: number; firstRecord: number } {
  const q = new Qevm()
    .header()
    .configuration('pc-q35-9.0', { uuid: UUID })
    .start(2).memSize(BLOCKS).flush().eos().footer(2)
    .part(2);
  const firstRecord = q.length;
  q.page(0x1000, 'pc.ram', P1)
    .zero(0x2000, null)
    .zero(0x3000, null, 0xab)
    .page(0, 'vga.vram', P2)
    .flush()
    .zero(0x3000, null)
    .eos().footer(2)
    .command(2, [0, 0, 0, 7]) // PING
    .end(2).page(0xf000, 'pc.ram', P3).flush().eos().footer(2)
    .eof();
  const eofEnd = q.length;
  q.vmdesc(DEVICES);
  return { bytes: q.bytes(), eofEnd, firstRecord };
}

const FULL_EVENTS = [
  ['section', { type: 'start', id: 2, name: 'ram', instance: 0, version: 4 }],
  ['blocks', BLOCKS],
  ['marker', 'flush'],
  ['marker', 'eos'],
  ['section', { type: 'part', id: 2, name: 'ram', instance: null, version: null }],
  ['page', 'pc.ram', 0x1000, hexOf(P1)],
  ['zero', 'pc.ram', 0x2000, 0],
  ['zero', 'pc.ram', 0x3000, 0xab],
  ['page', 'vga.vram', 0, hexOf(P2)],
  ['marker', 'flush'],
  ['zero', 'vga.vram', 0x3000, 0],
  ['marker', 'eos'],
  ['section', { type: 'end', id: 2, name: 'ram', instance: null, version: null }],
  ['page', 'pc.ram', 0xf000, hexOf(P3)],
  ['marker', 'flush'],
  ['marker', 'eos'],
];

describe('QemuMainDecoder on hand-built streams', () => {
  it('delivers pages with their block and offset, fill bytes, markers in order; reads the configuration and the device list', () => {
    const { bytes } = fullStream();
    const r = run([bytes]);
    assert.equal(r.error, null);
    assert.equal(r.finished, true);
    assert.deepEqual(r.events, FULL_EVENTS);
    const s = r.summary;
    assert.equal(s.machine, 'pc-q35-9.0');
    assert.equal(s.uuid, UUID);
    assert.deepEqual(s.blocks, BLOCKS);
    assert.deepEqual(s.sections, { ram: 3 });
    assert.equal(s.pages, 3);
    assert.equal(s.zeroPages, 3);
    assert.equal(s.eos, 3);
    assert.equal(s.flushes, 3);
    assert.equal(s.commands, 1, 'the PING is skipped over');
    assert.equal(s.eof, true);
    assert.deepEqual(s.devices, ['ram', 'timer', 'apic']);
    assert.equal(s.stopped, null);
    assert.equal(s.bytes, bytes.length);
  });

  it('gives the same result cut in two at every byte, and one byte at a time (empty writes included)', () => {
    const { bytes } = fullStream();
    for (const [label, chunks] of splits(bytes)) {
      const r = run(chunks);
      assert.equal(r.error, null, `${label}: ${String(r.error)}`);
      assert.equal(r.finished, true, label);
      assert.deepEqual(r.events, FULL_EVENTS, label);
      assert.deepEqual(r.summary.devices, ['ram', 'timer', 'apic'], label);
    }
  });

  it('keeps no reference to the caller\'s memory: one reused buffer, scribbled over after each write, gives the same result', () => {
    const { bytes } = fullStream();
    for (const size of [1, 7, 100, 4099, 8192]) {
      const scratch = Buffer.alloc(size);
      const chunks = (function* () {
        for (let i = 0; i < bytes.length; i += size) {
          const n = bytes.copy(scratch, 0, i, i + size);
          yield scratch.subarray(0, n);
          scratch.fill(0xee); // the caller reuses its buffer for the next read
        }
      })();
      const r = run(chunks);
      assert.equal(r.error, null, `${size}-byte reads: ${String(r.error)}`);
      assert.deepEqual(r.events, FULL_EVENTS, `${size}-byte reads`);
    }
  });

  it('is finished only once the description is in; without one, end() right after EOF is a clean end', () => {
    const { bytes, eofEnd } = fullStream();
    const d = new QemuMainDecoder();
    d.write(bytes.subarray(0, eofEnd));
    assert.equal(d.summary.eof, true);
    assert.equal(d.finished, false, 'a description may follow');
    d.write(bytes.subarray(eofEnd, bytes.length - 1));
    assert.equal(d.finished, false, 'one byte of the JSON missing');
    assert.equal(d.summary.devices, null);
    d.write(bytes.subarray(bytes.length - 1));
    assert.equal(d.finished, true);
    d.write(new Uint8Array(0)); // an empty write is nothing, even now
    d.end();
    assert.deepEqual(d.summary.devices, ['ram', 'timer', 'apic']);

    const noDesc = new QemuMainDecoder();
    noDesc.write(bytes.subarray(0, eofEnd));
    noDesc.end();
    assert.equal(noDesc.finished, true);
    assert.equal(noDesc.summary.devices, null);
    assert.equal(noDesc.summary.stopped, null);
  });

  it('a CONTINUE record at the start of a later section continues the block of the previous section (as QEMU sends it)', () => {
    // QEMU's source keeps last_sent_block across sections, and its destination last_recv_block:
    // a running guest's second iteration often starts in the block the first one ended in.
    const bytes = new Qevm()
      .header().configuration('pc')
      .start(2).memSize(BLOCKS).eos().footer(2)
      .part(2).zero(0x2000, 'vga.vram').eos().footer(2)
      .part(2).zero(0x3000, null).page(0x1000, null, P1).eos().footer(2)
      .end(2).eos().footer(2)
      .eof().bytes();
    const r = run([bytes]);
    assert.equal(r.error, null, String(r.error));
    assert.deepEqual(r.events.filter((e) => (e as unknown[])[0] === 'zero' || (e as unknown[])[0] === 'page'), [
      ['zero', 'vga.vram', 0x2000, 0],
      ['zero', 'vga.vram', 0x3000, 0],
      ['page', 'vga.vram', 0x1000, hexOf(P1)],
    ]);
  });

  it('reads target-page-bits, capabilities and x-ignore-shared block addresses', () => {
    const big = pageBytes(9, 8192);
    const bytes = new Qevm()
      .header()
      .configuration('virt-9.0', { pageBits: 13, capabilities: ['x-ignore-shared'], uuid: UUID })
      .start(3).memSize([{ name: 'mach-virt.ram', size: 8 * 8192, addr: 0x40000000 }, { name: 'rom', size: 8192, addr: 0 }]).eos().footer(3)
      .part(3).page(0x2000, 'mach-virt.ram', big).zero(0xe000, null).zero(0, 'rom').eos().footer(3)
      .eof().bytes();
    const r = run([bytes]);
    assert.equal(r.error, null, String(r.error));
    assert.equal(r.summary.pageSize, 8192);
    assert.deepEqual(r.summary.capabilities, ['x-ignore-shared']);
    assert.equal(r.summary.uuid, UUID);
    assert.deepEqual(r.summary.blocks, [{ name: 'mach-virt.ram', size: 65536 }, { name: 'rom', size: 8192 }]);
    assert.deepEqual(r.events.filter((e) => (e as unknown[])[0] === 'zero' || (e as unknown[])[0] === 'page'), [
      ['page', 'mach-virt.ram', 0x2000, hexOf(big)],
      ['zero', 'mach-virt.ram', 0xe000, 0],
      ['zero', 'rom', 0, 0],
    ]);
  });
});

// --- 3. faults: stable codes, messages that say what was expected and what came -----------------

/** A stream up to and including the ram START section (blocks pc.ram, vga.vram) and its footer. */
function upToStart(): Qevm {
  return new Qevm().header().configuration('pc').start(2).memSize(BLOCKS).eos().footer(2);
}

interface Fault {
  name: string;
  bytes: Buffer;
  code: string;
  field?: string;
  expected?: RegExp;
  received?: string;
  /** What the message must say (besides `expected` and `received` for frame errors). */
  message: RegExp[];
  /** `received` depends on how the bytes were cut (what the offending write held). */
  chunkDependent?: boolean;
}

const FAULTS: Fault[] = [
  {
    name: 'bad magic',
    bytes: new Qevm().header(0x48545450).configuration('pc').bytes(),
    code: 'MIGRATION_MAIN_BAD_FRAME', field: 'magic', expected: /0x5145564d/, received: '0x48545450',
    message: [/magic is 0x48545450, expected 0x5145564d \("QEVM"\)/],
  },
  {
    name: 'bad version',
    bytes: new Qevm().header(0x5145564d, 2).configuration('pc').bytes(),
    code: 'MIGRATION_MAIN_BAD_FRAME', field: 'version', expected: /^3$/, received: '2',
    message: [/version is 2, expected 3/, /byte 4\b/],
  },
  {
    name: 'unknown section type',
    bytes: upToStart().u8(0x09).u32(2).bytes(),
    code: 'MIGRATION_MAIN_BAD_FRAME', field: 'section type', expected: /QEMU_VM_\*/, received: '0x9',
    message: [/section type is 0x9/],
  },
  {
    name: 'PART naming a section id never started',
    bytes: upToStart().part(7).eos().footer(7).bytes(),
    code: 'MIGRATION_MAIN_BAD_FRAME', field: 'section id', expected: /started earlier/, received: '7',
    message: [/section id is 7, expected the id of a section started earlier/],
  },
  {
    name: 'footer with the wrong section id',
    bytes: new Qevm().header().configuration('pc').start(2).memSize(BLOCKS).eos().footer(3).bytes(),
    code: 'MIGRATION_MAIN_BAD_FRAME', field: 'section footer', expected: /section id 2/, received: '3',
    message: [/section footer is 3, expected section id 2/],
  },
  {
    name: 'record naming a block the list does not have',
    bytes: upToStart().part(2).zero(0x1000, 'nope').eos().footer(2).bytes(),
    code: 'MIGRATION_PACKET_UNKNOWN_RAMBLOCK', field: 'ramblock', expected: /MEM_SIZE/, received: 'nope',
    message: [/names block "nope"/, /block list does not have/],
  },
  {
    name: 'offset outside the block (the page would end past it)',
    bytes: upToStart().part(2).zero(4 * PAGE, 'vga.vram').eos().footer(2).bytes(),
    code: 'MIGRATION_PACKET_OFFSET_OUT_OF_RANGE', field: 'offset', expected: /0x0\.\.0x3000 \(ramblock "vga\.vram" is 16384 bytes\)/, received: '0x4000',
    message: [/offset 0x4000/, /outside ramblock "vga\.vram" \(16384 bytes\)/],
  },
  {
    name: 'PAGE record offset outside the block',
    bytes: upToStart().part(2).page(16 * PAGE, 'pc.ram', P1).eos().footer(2).bytes(),
    code: 'MIGRATION_PACKET_OFFSET_OUT_OF_RANGE', field: 'offset', expected: /ramblock "pc\.ram" is 65536 bytes/, received: '0x10000',
    message: [/offset 0x10000/, /outside ramblock "pc\.ram"/],
  },
  {
    name: 'CONTINUE before any record named a block',
    bytes: upToStart().part(2).zero(0x1000, null).eos().footer(2).bytes(),
    code: 'MIGRATION_MAIN_BAD_FRAME', field: 'ram record', expected: /a block name/, received: 'CONTINUE',
    message: [/ram record is CONTINUE, expected a block name/],
  },
  {
    name: 'unknown ram flags (0x400)',
    bytes: upToStart().part(2).u64(0x1000 + 0x400).eos().footer(2).bytes(),
    code: 'MIGRATION_MAIN_BAD_FRAME', field: 'ram record flags', expected: /ZERO, PAGE/, received: '0x400',
    message: [/ram record flags is 0x400/],
  },
  {
    name: 'ZERO and PAGE at once',
    bytes: upToStart().part(2).u64(0x1000 + FLAG.ZERO + FLAG.PAGE).str8('pc.ram').eos().footer(2).bytes(),
    code: 'MIGRATION_MAIN_BAD_FRAME', field: 'ram record flags', received: '0xa',
    message: [/ram record flags is 0xa, expected one of ZERO, PAGE, MEM_SIZE, EOS, MULTIFD_FLUSH/],
  },
  {
    name: 'vmstate description longer than the bound',
    bytes: upToStart().eof().u8(0x06).u32(MAX_VMDESCRIPTION + 1).raw(Buffer.from('{"devices":[]}')).bytes(),
    code: 'MIGRATION_MAIN_BAD_FRAME', field: 'vmdescription length', expected: new RegExp(`<= ${MAX_VMDESCRIPTION}`), received: String(MAX_VMDESCRIPTION + 1),
    message: [new RegExp(`vmdescription length is ${MAX_VMDESCRIPTION + 1}`)],
  },
  {
    name: 'bytes after the description',
    bytes: upToStart().eof().vmdesc(DEVICES).raw([0, 1, 2]).bytes(),
    code: 'MIGRATION_MAIN_BAD_FRAME', field: 'after the vmstate description', expected: /end of the stream/, received: '3 more bytes',
    message: [/after the vmstate description is 3 more bytes, expected the end of the stream/],
    chunkDependent: true,
  },
  {
    name: 'a section after QEMU_VM_EOF',
    bytes: upToStart().eof().part(2).eos().footer(2).bytes(),
    code: 'MIGRATION_MAIN_BAD_FRAME', field: 'after QEMU_VM_EOF', received: '0x2',
    message: [/expected QEMU_VM_VMDESCRIPTION or the end of the stream/],
  },
  {
    // The configuration is buffered whole: endless repeats would be an endless buffer.
    name: 'a configuration subsection twice',
    bytes: new Qevm().header().configuration('pc', { uuid: UUID }).subsection('configuration/uuid').raw(Buffer.alloc(16)).bytes(),
    code: 'MIGRATION_MAIN_BAD_FRAME', field: 'configuration subsection', expected: /each subsection once/, received: '"configuration/uuid" twice',
    message: [/configuration subsection is "configuration\/uuid" twice/],
  },
  {
    name: 'block sizes that do not add up to MEM_SIZE',
    bytes: new Qevm().header().configuration('pc').start(2).u64(5 * PAGE + FLAG.MEM_SIZE).str8('a').u64(3 * PAGE).str8('b').u64(3 * PAGE).eos().footer(2).bytes(),
    code: 'MIGRATION_MAIN_BAD_FRAME', field: 'block list', expected: /adding up to 20480/, received: '24576',
    message: [/block list is 24576, expected block sizes adding up to 20480/],
  },
];

function assertFault(err: unknown, f: Fault, label: string): MigrationError {
  assert.ok(err instanceof MigrationError, `${label}: expected ${f.code}, got ${String(err)}`);
  assert.equal(err.code, f.code, `${label}: ${err.message}`);
  if (f.field !== undefined) assert.equal(err.field, f.field, `${label}: ${err.message}`);
  if (f.expected) assert.match(err.expected ?? '', f.expected, label);
  if (f.received !== undefined) assert.equal(err.received, f.received, label);
  for (const m of f.message) assert.match(err.message, m, label);
  return err;
}

describe('QemuMainDecoder faults', () => {
  for (const f of FAULTS) {
    it(`${f.name}: ${f.code}`, () => {
      const whole = run([f.bytes]);
      const err = assertFault(whole.error, f, 'whole');
      assert.equal(whole.finished, false);
      // The same fault, said the same way, whatever the chunking.
      for (const n of [1, 5, 13]) {
        const r = run(chunked(f.bytes, n));
        if (f.chunkDependent) {
          assertFault(r.error, { ...f, received: undefined, message: [] }, `${n}-byte chunks`);
          continue;
        }
        assertFault(r.error, f, `${n}-byte chunks`);
        assert.equal((r.error as MigrationError).message, err.message, `${n}-byte chunks`);
      }
    });
  }

  it('after a fault, every later write() and end() throws the same error', () => {
    const d = new QemuMainDecoder();
    const err = throwsCode(() => d.write(new Qevm().header(0x12345678).bytes()), 'MIGRATION_MAIN_BAD_FRAME', { field: 'magic' });
    assert.equal(d.error, err);
    assert.throws(() => d.write(Buffer.alloc(1)), (e) => e === err);
    assert.throws(() => d.end(), (e) => e === err);
  });

  it('a vmstate description above the bound is refused before any buffer of its size is allocated', () => {
    /** Writes `bytes` to a new decoder, recording the length of every Uint8Array constructed meanwhile. */
    const allocations = (bytes: Uint8Array): { sizes: number[]; error: unknown } => {
      const sizes: number[] = [];
      const Real = globalThis.Uint8Array;
      (globalThis as { Uint8Array: unknown }).Uint8Array = new Proxy(Real, {
        construct(target, args, newTarget) {
          if (typeof args[0] === 'number') sizes.push(args[0]);
          return Reflect.construct(target, args, newTarget) as object;
        },
      });
      try {
        new QemuMainDecoder().write(bytes);
        return { sizes, error: null };
      } catch (error) {
        return { sizes, error };
      } finally {
        (globalThis as { Uint8Array: unknown }).Uint8Array = Real;
      }
    };
    // Control: a description within the bound is allocated at its declared size (so the probe sees it).
    const within = allocations(upToStart().eof().u8(0x06).u32(1536 * 1024).bytes());
    assert.equal(within.error, null);
    assert.ok(within.sizes.includes(1536 * 1024), `allocations: ${within.sizes.join(', ')}`);

    const bytes = upToStart().eof().u8(0x06).u32(0xffffffff).bytes();
    const above = allocations(bytes);
    assertFault(above.error, { name: '', bytes, code: 'MIGRATION_MAIN_BAD_FRAME', field: 'vmdescription length', received: String(0xffffffff), message: [/vmdescription length is 4294967295/] }, 'u32 max');
    assert.ok(above.sizes.every((n) => n < 1024 * 1024), `allocations: ${above.sizes.join(', ')}`);
  });

  it('a stream that ends inside any item is MIGRATION_MAIN_CLOSED at end(); only after EOF or after the description is the end clean', () => {
    const { bytes, eofEnd } = fullStream();
    let closed = 0;
    for (let cut = 0; cut <= bytes.length; cut++) {
      const r = run([bytes.subarray(0, cut)]);
      if (cut === eofEnd || cut === bytes.length) {
        assert.equal(r.error, null, `cut at ${cut}`);
        assert.equal(r.finished, true, `cut at ${cut}`);
        continue;
      }
      assert.ok(r.error instanceof MigrationError && r.error.code === 'MIGRATION_MAIN_CLOSED', `cut at ${cut}: ${String(r.error)}`);
      assert.equal(r.error.received, `end of stream at byte ${cut}`);
      assert.equal(r.error.expected, cut > eofEnd ? 'the vmstate description' : 'QEMU_VM_EOF');
      assert.match(r.error.message, new RegExp(`after ${cut} bytes`));
      closed++;
    }
    assert.equal(closed, bytes.length - 1);
  });

  it('MIGRATION_MAIN_CLOSED names where the stream ended', () => {
    const { bytes, eofEnd, firstRecord } = fullStream();
    const at = (cut: number) => (run([bytes.subarray(0, cut)]).error as MigrationError).message;
    assert.match(at(5), /inside the QEVM header after 5 bytes/);
    const inRecord = firstRecord + 3;
    assert.match(at(inRecord), new RegExp(`inside section "ram" after ${inRecord} bytes`));
    assert.match(at(eofEnd + 7), /inside the vmstate description/);
  });
});

// --- 4. where decoding stops on purpose (not an error) -------------------------------------------

describe('QemuMainDecoder stops, by name, at what it does not decode', () => {
  const cases: Array<{ name: string; bytes: Buffer; at: string; reason: RegExp; offset: number; zeroPages: number }> = [];
  {
    const q = upToStart().part(2).zero(0x1000, 'pc.ram');
    const offset = q.length;
    q.u64(0x2000 + FLAG.XBZRLE + FLAG.CONTINUE).raw([1, 0, 4, 9, 9, 9, 9]).eos().footer(2);
    cases.push({ name: 'an XBZRLE record', bytes: q.bytes(), at: 'ram record XBZRLE (0x40)', reason: /XBZRLE/, offset, zeroPages: 1 });
  }
  {
    const q = upToStart().part(2).zero(0, 'vga.vram').eos().footer(2);
    const offset = q.length;
    q.full(0, 'timer', 0, 2).raw(Buffer.alloc(24)).footer(0).eof();
    cases.push({ name: 'a FULL device section', bytes: q.bytes(), at: 'section "timer"', reason: /device state \(full, section id 0, instance 0, version 2\)/, offset, zeroPages: 1 });
  }
  {
    const q = upToStart().part(2).eos().footer(2);
    const offset = q.length;
    q.start(5, 'dirty-bitmap', 0, 1).raw([1, 2, 3]);
    cases.push({ name: 'a START of an iterable section other than ram', bytes: q.bytes(), at: 'section "dirty-bitmap"', reason: /other than ram/, offset, zeroPages: 0 });
  }
  {
    const q = new Qevm().header().configuration('pc', { uuid: UUID });
    const offset = q.length;
    q.subsection('configuration/future-thing').u32(1);
    cases.push({ name: 'an unknown configuration subsection', bytes: q.bytes(), at: 'subsection "configuration/future-thing"', reason: /not decoded/, offset, zeroPages: 0 });
  }
  {
    const q = new Qevm().header().configuration('pc');
    const offset = q.length;
    q.command(3, [0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x10, 0]).start(2).memSize(BLOCKS).eos().footer(2);
    cases.push({ name: 'a postcopy command (POSTCOPY_ADVISE)', bytes: q.bytes(), at: 'command 3', reason: /postcopy/, offset, zeroPages: 0 });
  }

  for (const c of cases) {
    it(`${c.name}: stopped, finished, no error, in any chunking`, () => {
      for (const chunks of [[c.bytes], chunked(c.bytes, 1), chunked(c.bytes, 6)]) {
        const r = run(chunks);
        assert.equal(r.error, null, String(r.error));
        assert.equal(r.finished, true);
        assert.deepEqual(r.summary.stopped && { at: r.summary.stopped.at, offset: r.summary.stopped.offset }, { at: c.at, offset: c.offset });
        assert.match(r.summary.stopped!.reason, c.reason);
        assert.equal(r.summary.zeroPages, c.zeroPages, 'what came before is delivered');
        assert.equal(r.summary.bytes, c.bytes.length);
      }
    });
  }

  it('an unknown subsection keeps what the configuration said before it', () => {
    const r = run([cases[3].bytes]);
    assert.equal(r.summary.machine, 'pc');
    assert.equal(r.summary.uuid, UUID);
  });

  it('OPEN_RETURN_PATH and PING are skipped, not stopped at', () => {
    const bytes = new Qevm().header().configuration('pc').command(1).command(2, [0, 0, 0, 1])
      .start(2).memSize(BLOCKS).eos().footer(2).eof().bytes();
    const r = run([bytes]);
    assert.equal(r.error, null);
    assert.equal(r.summary.stopped, null);
    assert.equal(r.summary.commands, 2);
    assert.equal(r.summary.eof, true);
  });

  it('a description whose JSON does not parse: finished, no devices, stopped names it', () => {
    const bytes = upToStart().eof().vmdesc('{"devices": [').bytes();
    const r = run([bytes]);
    assert.equal(r.error, null);
    assert.equal(r.finished, true);
    assert.equal(r.summary.devices, null);
    assert.equal(r.summary.stopped?.at, 'vmdescription');
  });
});
