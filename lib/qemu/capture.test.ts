/**
 * inspectCapture: the real QEMU 7.2 capture (../shared/vectors/qemu-7.2-multifd-4ch), and
 * captures synthesized into a temp dir for each way pages travel — multifd off, 9.0 zero
 * pages inside packets, a page moving between the main stream and a channel across sync
 * epochs (EOS-delimited as in 7.2, MULTIFD_FLUSH-delimited as in 8.1+) — each checked byte
 * for byte against the RAM it must rebuild; invalid files flagged one by one with the
 * engine's codes; and `multifd inspect` run as the real command.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FLAG_SYNC, PAGE_SIZE, encodeHandshake, encodePacketHeader } from '../protocol';
import { pageBytes } from '../protocol/test-support';
import { ROOT, killAll, run as runCli } from '../../server/cli/test-support';
import { inspectCapture, type CaptureFileReport, type InspectOptions, type InspectResult } from './capture';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const VECTORS = path.resolve(repoRoot, '..', 'shared', 'vectors', 'qemu-7.2-multifd-4ch');
const present = existsSync(VECTORS);
const REAL_SHA256 = '99e1c16697e51698fc2497ad52762d04b6a68e2d7f9244a3fa1c6168bbac6702';
const REAL_UUID = '5e1ec7ed-0000-4000-8000-00000000c0de';

const U = '7c9e6679-7425-40de-944b-e07fc1f90ae7';
const V = '11111111-2222-4333-8444-555555555555';

let root = '';
let dirs = 0;
before(() => {
  root = mkdtempSync(path.join(tmpdir(), 'multifd-capture-test-'));
});
after(() => {
  killAll();
  if (root) rmSync(root, { recursive: true, force: true });
});

/** A fresh directory for one capture; returns a writer of its files (name -> path). */
function captureDir(): { dir: string; file(name: string, bytes: Uint8Array): string } {
  const dir = path.join(root, `c${++dirs}`);
  mkdirSync(dir);
  return {
    dir,
    file(name, bytes) {
      const p = path.join(dir, name);
      writeFileSync(p, bytes);
      return p;
    },
  };
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

// --- synthesizing captures ---------------------------------------------------------------------

interface Block {
  name: string;
  size: number;
}

/** A main-stream record; no `block` means CONTINUE (the block of the record before). */
type Rec = { zero: number; block?: string; fill?: number } | { page: number; data: Uint8Array; block?: string } | 'eos' | 'flush';

/**
 * QEMU's main stream: header, configuration (machine "pc", uuid subsection when given), then
 * `sections` as ram START (after its MEM_SIZE list), PARTs, END, each with its footer, then EOF.
 */
function qemuMain(blocks: Block[], sections: Rec[][], opts: { uuid?: string } = {}): Buffer {
  const out: Buffer[] = [];
  const u8 = (v: number) => out.push(Buffer.from([v]));
  const u32 = (v: number) => out.push(Buffer.from([v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]));
  const u64 = (v: number) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(v));
    out.push(b);
  };
  const str8 = (s: string) => {
    u8(s.length);
    out.push(Buffer.from(s, 'latin1'));
  };
  u32(0x5145564d);
  u32(3);
  u8(0x07);
  u32(2);
  out.push(Buffer.from('pc'));
  if (opts.uuid) {
    u8(0x05);
    str8('configuration/uuid');
    u32(1);
    out.push(Buffer.from(opts.uuid.replace(/-/g, ''), 'hex'));
  }
  const ID = 2;
  sections.forEach((body, i) => {
    if (i === 0) {
      u8(0x01);
      u32(ID);
      str8('ram');
      u32(0);
      u32(4);
      u64(blocks.reduce((n, b) => n + b.size, 0) + 0x04);
      for (const b of blocks) {
        str8(b.name);
        u64(b.size);
      }
    } else {
      u8(i === sections.length - 1 ? 0x03 : 0x02);
      u32(ID);
    }
    for (const r of body) {
      if (r === 'eos') u64(0x10);
      else if (r === 'flush') u64(0x200);
      else {
        const flags = ('zero' in r ? 0x02 : 0x08) | (r.block === undefined ? 0x20 : 0);
        u64(('zero' in r ? r.zero : r.page) + flags);
        if (r.block !== undefined) str8(r.block);
        if ('zero' in r) u8(r.fill ?? 0);
        else out.push(Buffer.from(r.data));
      }
    }
    u8(0x7e);
    u32(ID);
  });
  u8(0x00);
  return Buffer.concat(out);
}

interface Pkt {
  sync?: boolean;
  block?: string;
  /** Normal pages: [offset, bytes]. */
  pages?: Array<[number, Uint8Array]>;
  /** 9.0+ zero pages (offsets). */
  zeros?: number[];
}

/** A multifd channel file: handshake, then the packets (128 slots, as QEMU), packet_num id, id+n, ... */
function channelFile(uuid: string, id: number, packets: Pkt[], channels = 4): Buffer {
  const out: Uint8Array[] = [encodeHandshake({ uuid, id })];
  packets.forEach((p, i) => {
    const pages = p.pages ?? [];
    const zeros = p.zeros ?? [];
    out.push(
      encodePacketHeader({
        flags: p.sync ? FLAG_SYNC : 0,
        normalPages: pages.length,
        zeroPages: zeros.length,
        packetNum: id + i * channels,
        ramblock: pages.length + zeros.length > 0 ? (p.block ?? 'pc.ram') : '',
        offsets: [...pages.map(([o]) => o), ...zeros],
      }),
    );
    for (const [, data] of pages) out.push(data);
  });
  return Buffer.concat(out);
}

const SYNC: Pkt = { sync: true };

/** The RAM image the capture must rebuild: every block zero but for `pages` ([block, offset, bytes]). */
function image(blocks: Block[], pages: Array<[string, number, Uint8Array]>): Buffer {
  const at = new Map<string, number>();
  let total = 0;
  for (const b of blocks) {
    at.set(b.name, total);
    total += b.size;
  }
  const img = Buffer.alloc(total);
  for (const [name, off, data] of pages) img.set(data, at.get(name)! + off);
  return img;
}

/** Inspects with --ram-out into the capture's dir; asserts no file has an error and the RAM is `expected`. */
function rebuild(paths: string[], expected: Buffer, opts: InspectOptions = {}): InspectResult {
  const out = path.join(path.dirname(paths[0]), `ram-${Math.random().toString(36).slice(2)}.img`);
  const r = inspectCapture(paths, { ...opts, ramOut: out });
  assert.deepEqual(r.files.filter((f) => f.error).map((f) => [f.path, f.error]), [], 'no file has an error');
  assert.equal(r.errors, 0);
  const got = readFileSync(out);
  assert.equal(got.length, expected.length, 'RAM file size');
  for (let off = 0; off < expected.length; off += PAGE_SIZE) {
    assert.ok(got.subarray(off, off + PAGE_SIZE).equals(expected.subarray(off, off + PAGE_SIZE)), `page at byte ${off} of the RAM file`);
  }
  assert.equal(r.sha256, sha256(expected));
  assert.equal(r.ramOut, out);
  return r;
}

const byName = (r: InspectResult, p: string): CaptureFileReport => r.files.find((f) => f.path === p)!;

// --- 1. the real capture -----------------------------------------------------------------------

describe('inspectCapture on the QEMU 7.2 capture', { skip: present ? false : `test vectors not found at ${VECTORS}` }, () => {
  const real = (name: string) => path.join(VECTORS, name);
  /** From the capture's README: file -> (id, packets, SYNC packets, pages, first..last packet_num, repeats). */
  const CHANNELS: Record<string, [number, number, number, number, string, string, number]> = {
    'ch-1.bin': [2, 8, 3, 517, '2', '29', 1],
    'ch-2.bin': [0, 8, 3, 640, '0', '27', 0],
    'ch-3.bin': [1, 8, 3, 640, '1', '28', 0],
    'ch-4.bin': [3, 7, 3, 512, '3', '30', 0],
  };

  it('rebuilds the guest RAM exactly (sha256 of the source image), with the README\'s per-channel counts, in any file order', () => {
    const orders = [
      ['main.bin', 'ch-1.bin', 'ch-2.bin', 'ch-3.bin', 'ch-4.bin'],
      ['ch-4.bin', 'ch-2.bin', 'main.bin', 'ch-3.bin', 'ch-1.bin'],
    ];
    const reports: unknown[] = [];
    for (const order of orders) {
      const out = path.join(root, `real-${reports.length}.img`);
      const r = inspectCapture(order.map(real), { ramOut: out });
      assert.equal(r.errors, 0);
      assert.equal(r.sha256, REAL_SHA256, order.join(' '));
      assert.equal(sha256(readFileSync(out)), REAL_SHA256);
      assert.equal(statSync(out).size, 64 * 1024 * 1024);
      assert.deepEqual(r.blocks, [{ name: 'mem', size: 64 * 1024 * 1024, fileOffset: 0 }]);
      assert.equal(r.syncMarker, 'eos');
      assert.equal(r.pagesWritten, 2309, 'every multifd page, the 5 sent twice included');
      assert.equal(r.zeroPagesApplied, 14080);

      const main = byName(r, real('main.bin'));
      assert.equal(main.kind, 'qemu-main');
      assert.equal(main.main?.zeroPages, 14080);
      assert.equal(main.main?.eos, 3);
      assert.match(main.note ?? '', /section "timer"/, 'stopping at device state is a note, not an error');
      for (const [file, [id, packets, syncs, pages, first, last, repeated]] of Object.entries(CHANNELS)) {
        const f = byName(r, real(file));
        assert.equal(f.kind, 'multifd');
        assert.equal(f.error, null);
        assert.deepEqual(f.channel, {
          id, uuid: REAL_UUID, packets, syncs, pages, zeroPages: 0, payloadBytes: pages * PAGE_SIZE,
          firstPacketNum: first, lastPacketNum: last, repeatedPacketNums: repeated, pagesAlloc: 128,
        }, file);
      }
      reports.push(Object.fromEntries(r.files.map((f) => [path.basename(f.path), { ...f, path: path.basename(f.path) }])));
    }
    assert.deepEqual(reports[1], reports[0], 'the same report per file whatever the order');
  });

  it('without --ram-out: same counts, no file, no sha256', () => {
    const r = inspectCapture(['main.bin', 'ch-1.bin', 'ch-2.bin', 'ch-3.bin', 'ch-4.bin'].map(real));
    assert.equal(r.sha256, null);
    assert.equal(r.ramOut, null);
    assert.equal(r.pagesWritten, 2309);
    assert.equal(r.zeroPagesApplied, 14080);
    assert.equal(r.errors, 0);
  });
});

// --- 2. synthesized captures that decode ------------------------------------------------------

const TWO_BLOCKS: Block[] = [
  { name: 'pc.ram', size: 8 * PAGE_SIZE },
  { name: 'vga.vram', size: 4 * PAGE_SIZE },
];
const ONE_BLOCK: Block[] = [{ name: 'pc.ram', size: 8 * PAGE_SIZE }];
const pg = (seed: number) => pageBytes(seed);
const fillPage = (v: number) => new Uint8Array(PAGE_SIZE).fill(v);

describe('inspectCapture rebuilds synthesized captures', () => {
  it('multifd off: pages and zero pages on the main stream, two blocks, later iterations overwriting earlier ones', () => {
    const c = captureDir();
    const main = c.file('main.bin', qemuMain(TWO_BLOCKS, [
      ['eos'],
      [
        { page: 0, block: 'pc.ram', data: pg(1) }, { page: 0x1000, data: pg(2) }, { zero: 0x2000 }, { page: 0x3000, data: pg(3) },
        { zero: 0x1000, block: 'vga.vram', fill: 0x5a }, { page: 0x2000, data: pg(4) }, 'eos',
      ],
      [{ page: 0x1000, block: 'pc.ram', data: pg(5) }, { zero: 0x3000 }, { page: 0x2000, data: pg(6) }, 'eos'],
      [{ zero: 0, block: 'vga.vram' }, { page: 0x7000, block: 'pc.ram', data: pg(7) }, 'eos'],
    ]));
    const expected = image(TWO_BLOCKS, [
      ['pc.ram', 0, pg(1)], ['pc.ram', 0x1000, pg(5)], ['pc.ram', 0x2000, pg(6)], ['pc.ram', 0x7000, pg(7)],
      ['vga.vram', 0x1000, fillPage(0x5a)], ['vga.vram', 0x2000, pg(4)],
    ]);
    const r = rebuild([main], expected);
    assert.deepEqual(r.blocks, [
      { name: 'pc.ram', size: 8 * PAGE_SIZE, fileOffset: 0 },
      { name: 'vga.vram', size: 4 * PAGE_SIZE, fileOffset: 8 * PAGE_SIZE },
    ]);
    assert.equal(r.files[0].kind, 'qemu-main');
    assert.equal(r.files[0].main?.pages, 7);
    assert.equal(r.files[0].main?.zeroPages, 4);
    assert.equal(r.files[0].main?.eof, true);
    assert.equal(r.files[0].note, null);
    assert.equal(r.pagesWritten, 7);
    assert.equal(r.zeroPagesApplied, 4);
  });

  it('--block writes one RAM block alone (the others still decoded and checked); an unknown block is refused by name', () => {
    const c = captureDir();
    const main = c.file('main.bin', qemuMain(TWO_BLOCKS, [
      ['eos'],
      [{ page: 0x1000, block: 'pc.ram', data: pg(1) }, { page: 0x2000, block: 'vga.vram', data: pg(2) }, { zero: 0x3000, fill: 7 }, 'eos'],
    ]));
    const vram = image([TWO_BLOCKS[1]], [['vga.vram', 0x2000, pg(2)], ['vga.vram', 0x3000, fillPage(7)]]);
    const r = rebuild([main], vram, { block: 'vga.vram' });
    assert.deepEqual(r.blocks.map((b) => [b.name, b.fileOffset]), [['pc.ram', null], ['vga.vram', 0]]);
    assert.equal(r.pagesWritten, 2, 'pages of every block are counted');
    assert.throws(() => inspectCapture([main], { ramOut: path.join(c.dir, 'x.img'), block: 'mem' }), (err: unknown) => {
      assert.equal((err as { code?: string }).code, 'MIGRATION_CONFIG_INVALID');
      assert.match((err as Error).message, /no such RAM block.*"pc\.ram", "vga\.vram"/);
      return true;
    });
  });

  it('multifd off, a main stream of 2.5 MiB: records that straddle the reader\'s chunks decode whole', () => {
    // inspectCapture reads the main stream in one reused 1 MiB buffer: the record cut at the end of
    // one read must survive the next full read into that buffer.
    const N = 640;
    const blocks: Block[] = [{ name: 'pc.ram', size: N * PAGE_SIZE }];
    const recs: Rec[] = [];
    for (let i = 0; i < N; i++) recs.push({ page: i * PAGE_SIZE, data: pg(100 + i), ...(i === 0 ? { block: 'pc.ram' } : {}) });
    const c = captureDir();
    const main = c.file('main.bin', qemuMain(blocks, [['eos'], [...recs, 'eos'], ['eos']]));
    assert.ok(statSync(main).size > 2.5 * 1024 * 1024);
    const expected = image(blocks, recs.map((r) => ['pc.ram', (r as { page: number }).page, (r as { data: Uint8Array }).data]));
    const r = rebuild([main], expected);
    assert.equal(r.pagesWritten, N);
    assert.equal(r.files[0].main?.eof, true);
  });

  it('9.0 style: zero pages listed in multifd packets, MULTIFD_FLUSH on the main stream, the uuid from configuration/uuid', () => {
    const c = captureDir();
    const main = c.file('main.bin', qemuMain(ONE_BLOCK, [['flush', 'eos'], ['flush', 'eos'], ['flush', 'eos'], ['flush', 'eos']], { uuid: U }));
    const ch0 = c.file('ch0.bin', channelFile(U, 0, [
      SYNC,
      { pages: [[0, pg(1)], [0x1000, pg(2)]], zeros: [0x2000, 0x3000] }, SYNC,
      { zeros: [0] }, SYNC, // round 2: page 0 became zero
      SYNC,
    ], 2));
    const ch1 = c.file('ch1.bin', channelFile(U, 1, [
      SYNC,
      { pages: [[0x4000, pg(3)]], zeros: [0x5000], sync: true }, // a SYNC packet that carries pages
      { pages: [[0x2000, pg(4)]] }, { pages: [[0x1000, pg(5)]] }, SYNC, // round 2: zero -> data, data -> new data
      SYNC,
    ], 2));
    const expected = image(ONE_BLOCK, [['pc.ram', 0x1000, pg(5)], ['pc.ram', 0x2000, pg(4)], ['pc.ram', 0x4000, pg(3)]]);
    const r = rebuild([main, ch0, ch1], expected);
    assert.equal(r.syncMarker, 'flush');
    assert.equal(byName(r, main).main?.uuid, U);
    assert.equal(byName(r, main).main?.zeroPages, 0);
    assert.deepEqual([byName(r, ch0).channel?.pages, byName(r, ch0).channel?.zeroPages, byName(r, ch0).channel?.syncs], [2, 3, 4]);
    assert.deepEqual([byName(r, ch1).channel?.pages, byName(r, ch1).channel?.zeroPages, byName(r, ch1).channel?.syncs], [3, 1, 4]);
    assert.equal(r.pagesWritten, 5);
    assert.equal(r.zeroPagesApplied, 4);
  });

  it('7.2 style (EOS epochs): data on a channel then ZERO on the main stream ends zero; ZERO then data ends data', () => {
    // Main: START | PART: ZERO 0x3000 (epoch 1) | PART: ZERO 0x1000, CONTINUE (epoch 2) | END.
    // ch0 sends 0x1000 with data in epoch 1; ch1 sends 0x3000 with data in epoch 2, in a SYNC packet.
    const c = captureDir();
    const main = c.file('main.bin', qemuMain(ONE_BLOCK, [
      ['eos'],
      [{ zero: 0x3000, block: 'pc.ram' }, 'eos'],
      [{ zero: 0x1000 }, 'eos'],
      ['eos'],
    ]));
    const ch0 = c.file('ch0.bin', channelFile(U, 0, [SYNC, { pages: [[0x1000, pg(1)]] }, SYNC, SYNC, SYNC], 2));
    const ch1 = c.file('ch1.bin', channelFile(U, 1, [SYNC, { pages: [[0x5000, pg(3)]] }, SYNC, { pages: [[0x3000, pg(2)]], sync: true }, SYNC], 2));
    const expected = image(ONE_BLOCK, [['pc.ram', 0x3000, pg(2)], ['pc.ram', 0x5000, pg(3)]]);
    for (const order of [[main, ch0, ch1], [ch1, ch0, main]]) {
      const r = rebuild(order, expected);
      assert.equal(r.syncMarker, 'eos');
      assert.equal(byName(r, main).main?.eos, 4);
      assert.equal(r.pagesWritten, 3);
      assert.equal(r.zeroPagesApplied, 2);
    }
  });

  it('8.1+ style (MULTIFD_FLUSH epochs, not EOS): the same moves, where EOS counting would get both wrong', () => {
    // Flush epochs of the main records:  ZERO 0x0000 -> 1; ZERO 0x1000 -> 2 (but EOS count 1); ZERO 0x2000 -> 2 (but EOS count 4).
    const c = captureDir();
    const main = c.file('main.bin', qemuMain(ONE_BLOCK, [
      ['flush', 'eos'], //                                                   f1 e1
      [{ zero: 0, block: 'pc.ram' }, 'flush', { zero: 0x1000 }, 'eos'], //    f2 e2
      ['eos'], //                                                            e3
      ['eos'], //                                                            e4
      [{ zero: 0x2000 }, 'eos'], //                                          e5
      ['flush', 'eos'], //                                                   f3 e6
      ['flush', 'eos'], //                                                   f4 e7
    ]));
    // Channel epochs (k-th SYNC ends epoch k-1): 0x1000 data in epoch 1, 0x0000 data in 2, 0x2000 data in 3.
    const ch0 = c.file('ch0.bin', channelFile(U, 0, [SYNC, { pages: [[0x1000, pg(1)]] }, SYNC, SYNC, { pages: [[0x2000, pg(3)]] }, SYNC], 2));
    const ch1 = c.file('ch1.bin', channelFile(U, 1, [SYNC, SYNC, { pages: [[0, pg(2)]], sync: true }, SYNC], 2));
    const expected = image(ONE_BLOCK, [['pc.ram', 0, pg(2)], ['pc.ram', 0x2000, pg(3)]]);
    const r = rebuild([main, ch0, ch1], expected);
    assert.equal(r.syncMarker, 'flush');
    assert.deepEqual([byName(r, main).main?.flushes, byName(r, main).main?.eos], [4, 7]);
    assert.equal(r.zeroPagesApplied, 3);
    assert.equal(r.pagesWritten, 3);
  });

  it('memory does not grow with the zero pages: 1M of them (a 4 GiB guest) with multifd, inspected under a 32 MiB heap', { timeout: 60_000 }, async () => {
    // One block of N pages: START (MEM_SIZE) | PART: N ZERO records (the first names the block) | END | EOF.
    const N = 1024 * 1024;
    const rec = Buffer.alloc(9 * N);
    for (let i = 1; i < N; i++) rec.writeBigUInt64BE(BigInt(i * PAGE_SIZE + 0x02 + 0x20), 9 * i);
    const whole = qemuMain([{ name: 'pc.ram', size: N * PAGE_SIZE }], [['eos'], [{ zero: 0, block: 'pc.ram' }, 'eos'], ['eos']], { uuid: U });
    // The CONTINUE records go right after the first one, before: its section's EOS and footer,
    // the END section (header, EOS, footer) and EOF.
    const at = whole.length - (8 + 5) - (5 + 8 + 5) - 1;
    const main = Buffer.concat([whole.subarray(0, at), rec.subarray(9), whole.subarray(at)]);
    const c = captureDir();
    const files = [c.file('main.bin', main), c.file('ch0.bin', channelFile(U, 0, [SYNC, SYNC, SYNC], 1))];
    const child = spawn(process.execPath, ['--max-old-space-size=32', 'bin/multifd.mjs', 'inspect', '--json', ...files], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 0, err.slice(-2000));
    const r = JSON.parse(out) as InspectResult;
    assert.equal(r.files[0].main?.zeroPages, N);
    assert.equal(r.zeroPagesApplied, N);
  });

  it('channels without a main stream: the blocks are what the packets name, as large as they reach', () => {
    const c = captureDir();
    const ch0 = c.file('ch0.bin', channelFile(U, 0, [SYNC, { pages: [[0x3000, pg(1)]] }, SYNC], 1));
    const r = rebuild([ch0], image([{ name: 'pc.ram', size: 0x4000 }], [['pc.ram', 0x3000, pg(1)]]));
    assert.deepEqual(r.blocks, [{ name: 'pc.ram', size: 0x4000, fileOffset: 0 }]);
    assert.equal(r.syncMarker, null);
  });
});

// --- 3. invalid inputs, flagged per file ---------------------------------------------------------

/** A valid two-channel capture of ONE_BLOCK (main stream with uuid U) and the RAM it rebuilds. */
function goodCapture(c: ReturnType<typeof captureDir>): { files: string[]; expected: Buffer } {
  const main = c.file('main.bin', qemuMain(ONE_BLOCK, [['eos'], [{ zero: 0, block: 'pc.ram' }, 'eos'], ['eos']], { uuid: U }));
  const ch0 = c.file('ch0.bin', channelFile(U, 0, [SYNC, { pages: [[0x1000, pg(1)]] }, SYNC, SYNC], 2));
  const ch1 = c.file('ch1.bin', channelFile(U, 1, [SYNC, { pages: [[0x2000, pg(2)]] }, SYNC, SYNC], 2));
  return { files: [main, ch0, ch1], expected: image(ONE_BLOCK, [['pc.ram', 0x1000, pg(1)], ['pc.ram', 0x2000, pg(2)]]) };
}

/** Asserts exactly the files in `bad` have an error, with those codes (and fields), and `errors` counts them. */
function flagged(r: InspectResult, bad: Record<string, { code: string; field?: string; expected?: string; received?: string; message?: RegExp }>): void {
  for (const f of r.files) {
    const want = bad[f.path];
    if (!want) {
      assert.equal(f.error, null, `${f.path}: ${f.error?.message}`);
      continue;
    }
    assert.ok(f.error, `${f.path} has no error`);
    assert.equal(f.error.code, want.code, f.error.message);
    if (want.field !== undefined) assert.equal(f.error.field, want.field, f.error.message);
    if (want.expected !== undefined) assert.equal(f.error.expected, want.expected, f.error.message);
    if (want.received !== undefined) assert.equal(f.error.received, want.received, f.error.message);
    if (want.message) assert.match(f.error.message, want.message);
  }
  assert.equal(r.errors, Object.keys(bad).length);
}

describe('inspectCapture flags invalid files with the engine\'s codes', () => {
  it('a file that is neither QEVM nor multifd: MIGRATION_CHANNEL_BAD_MAGIC, the rest still rebuilt', () => {
    const c = captureDir();
    const { files, expected } = goodCapture(c);
    const junk = c.file('junk.bin', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    const out = path.join(c.dir, 'ram.img');
    const r = inspectCapture([...files, junk], { ramOut: out });
    flagged(r, { [junk]: { code: 'MIGRATION_CHANNEL_BAD_MAGIC', field: 'magic', received: '0x47455420', expected: '0x5145564d or 0x11223344', message: /neither QEMU's main stream/ } });
    assert.equal(byName(r, junk).kind, 'unknown');
    assert.equal(r.sha256, sha256(expected));
  });

  it('two files with the same channel id: MIGRATION_CHANNEL_ID_DUPLICATE on the second in file order, naming the first', () => {
    const c = captureDir();
    const main = c.file('main.bin', qemuMain(ONE_BLOCK, [['eos'], ['eos']], { uuid: U }));
    const a = c.file('a.bin', channelFile(U, 1, [SYNC, SYNC]));
    const b = c.file('b.bin', channelFile(U, 1, [SYNC, SYNC]));
    flagged(inspectCapture([main, a, b]), { [b]: { code: 'MIGRATION_CHANNEL_ID_DUPLICATE', field: 'id', received: '1', message: new RegExp(`also in ${a.replace(/[.]/g, '\\.')}`) } });
    flagged(inspectCapture([main, b, a]), { [a]: { code: 'MIGRATION_CHANNEL_ID_DUPLICATE', received: '1' } });
  });

  it('an id at or above the channel count: MIGRATION_CHANNEL_ID_OUT_OF_RANGE (count = multifd files, or --channels)', () => {
    const c = captureDir();
    const main = c.file('main.bin', qemuMain(ONE_BLOCK, [['eos'], ['eos']], { uuid: U }));
    const a = c.file('a.bin', channelFile(U, 0, [SYNC, SYNC]));
    const b = c.file('b.bin', channelFile(U, 2, [SYNC, SYNC]));
    flagged(inspectCapture([main, a, b]), { [b]: { code: 'MIGRATION_CHANNEL_ID_OUT_OF_RANGE', field: 'id', expected: '0..1', received: '2' } });
    flagged(inspectCapture([main, a, b], { channels: 3 }), {});
    flagged(inspectCapture([main, a, b], { channels: 2 }), { [b]: { code: 'MIGRATION_CHANNEL_ID_OUT_OF_RANGE', received: '2' } });
  });

  it('a wrong uuid: MIGRATION_CHANNEL_UUID_MISMATCH against the main stream\'s uuid, else --uuid, else the majority', () => {
    const c = captureDir();
    const withUuid = c.file('main-u.bin', qemuMain(ONE_BLOCK, [['eos'], ['eos']], { uuid: U }));
    const noUuid = c.file('main.bin', qemuMain(ONE_BLOCK, [['eos'], ['eos']]));
    const ch0 = c.file('ch0.bin', channelFile(U, 0, [SYNC, SYNC]));
    const ch1 = c.file('ch1.bin', channelFile(V, 1, [SYNC, SYNC]));
    const ch2 = c.file('ch2.bin', channelFile(U, 2, [SYNC, SYNC]));
    flagged(inspectCapture([withUuid, ch0, ch1]), { [ch1]: { code: 'MIGRATION_CHANNEL_UUID_MISMATCH', field: 'uuid', expected: U, received: V } });
    flagged(inspectCapture([noUuid, ch0, ch1, ch2]), { [ch1]: { code: 'MIGRATION_CHANNEL_UUID_MISMATCH', expected: U, received: V, message: /the uuid most channels carry/ } });
    flagged(inspectCapture([noUuid, ch0, ch1, ch2], { uuid: V }), {
      [ch0]: { code: 'MIGRATION_CHANNEL_UUID_MISMATCH', expected: V, received: U },
      [ch2]: { code: 'MIGRATION_CHANNEL_UUID_MISMATCH', expected: V, received: U },
    });
  });

  it('a short handshake: MIGRATION_CHANNEL_SHORT_HANDSHAKE (multifd magic then EOF; or under 4 bytes at all)', () => {
    const c = captureDir();
    const { files } = goodCapture(c);
    const cut = c.file('cut.bin', encodeHandshake({ uuid: U, id: 2 }).subarray(0, 30));
    const tiny = c.file('tiny.bin', Buffer.from([0x11, 0x22, 0x33]));
    const r = inspectCapture([...files, cut, tiny]);
    flagged(r, {
      [cut]: { code: 'MIGRATION_CHANNEL_SHORT_HANDSHAKE', field: 'handshake', expected: '64 bytes', received: '30 bytes' },
      [tiny]: { code: 'MIGRATION_CHANNEL_SHORT_HANDSHAKE', received: '3 bytes' },
    });
    assert.equal(byName(r, cut).kind, 'multifd');
  });

  it('a packet offset outside the block: MIGRATION_PACKET_OFFSET_OUT_OF_RANGE with the channel id; earlier packets still count', () => {
    const c = captureDir();
    const main = c.file('main.bin', qemuMain(ONE_BLOCK, [['eos'], ['eos']], { uuid: U }));
    const ch0 = c.file('ch0.bin', channelFile(U, 0, [SYNC, { pages: [[0x1000, pg(1)]] }, { pages: [[8 * PAGE_SIZE, pg(2)]] }, SYNC], 1));
    const out = path.join(c.dir, 'ram.img');
    const r = inspectCapture([main, ch0], { ramOut: out });
    flagged(r, { [ch0]: { code: 'MIGRATION_PACKET_OFFSET_OUT_OF_RANGE', field: 'offset', received: '0x8000', message: /channel 0: received offset 0x8000/ } });
    assert.equal(r.files[1].error?.channel, 0);
    assert.equal(r.files[1].channel?.packets, 2, 'the packets before the bad one');
    assert.equal(r.sha256, sha256(image(ONE_BLOCK, [['pc.ram', 0x1000, pg(1)]])));
  });

  it('a truncated packet: MIGRATION_PACKET_SHORT_PAYLOAD, inside the payload or inside the header', () => {
    const c = captureDir();
    const main = c.file('main.bin', qemuMain(ONE_BLOCK, [['eos'], ['eos']], { uuid: U }));
    const whole = channelFile(U, 0, [SYNC, { pages: [[0x1000, pg(1)], [0x2000, pg(2)]] }], 2);
    const inPayload = c.file('payload.bin', whole.subarray(0, whole.length - 100));
    const inHeader = c.file('header.bin', channelFile(U, 1, [SYNC, SYNC], 2).subarray(0, 64 + 1344 + 200));
    const r = inspectCapture([main, inPayload, inHeader]);
    flagged(r, {
      [inPayload]: { code: 'MIGRATION_PACKET_SHORT_PAYLOAD', field: 'payload', expected: '8192 bytes', received: '8092 bytes' },
      [inHeader]: { code: 'MIGRATION_PACKET_SHORT_PAYLOAD', field: 'header', received: '200 bytes' },
    });
    assert.equal(byName(r, inPayload).channel?.packets, 1);
  });

  it('faults of the main stream itself: the decoder\'s codes on that file (a ZERO record outside its block; a stream cut short)', () => {
    const c = captureDir();
    const outside = c.file('outside.bin', qemuMain(ONE_BLOCK, [['eos'], [{ zero: 0x1000, block: 'pc.ram' }, { zero: 8 * PAGE_SIZE }, 'eos'], ['eos']]));
    const r1 = inspectCapture([outside]);
    flagged(r1, { [outside]: { code: 'MIGRATION_PACKET_OFFSET_OUT_OF_RANGE', field: 'offset', received: '0x8000' } });
    assert.equal(r1.files[0].main?.zeroPages, 1, 'the record before the fault');

    const whole = qemuMain(ONE_BLOCK, [['eos'], [{ zero: 0x1000, block: 'pc.ram' }, 'eos'], ['eos']]);
    const cut = c.file('cut.bin', whole.subarray(0, whole.length - 6));
    const r2 = inspectCapture([cut]);
    flagged(r2, { [cut]: { code: 'MIGRATION_MAIN_CLOSED', expected: 'QEMU_VM_EOF', received: `end of stream at byte ${whole.length - 6}` } });
  });

  it('a file that cannot be read (missing, or a directory) is that file\'s error; the rest is still rebuilt', () => {
    const c = captureDir();
    const { files, expected } = goodCapture(c);
    const missing = path.join(c.dir, 'missing.bin');
    const dir = path.join(c.dir, 'a-directory');
    mkdirSync(dir);
    const out = path.join(c.dir, 'ram.img');
    const r = inspectCapture([...files, missing, dir], { ramOut: out });
    flagged(r, { [missing]: { code: 'MIGRATION_CONFIG_INVALID', message: /ENOENT/ }, [dir]: { code: 'MIGRATION_CONFIG_INVALID', message: /EISDIR/ } });
    assert.equal(r.sha256, sha256(expected));
  });

  it('a --ram-out that cannot be written is MIGRATION_CONFIG_INVALID (the caller\'s error), not a fault of the capture\'s files', () => {
    const c = captureDir();
    const { files } = goodCapture(c);
    const out = path.join(c.dir, 'no-such-dir', 'ram.img');
    assert.throws(() => inspectCapture(files, { ramOut: out }), (err: unknown) => {
      assert.equal((err as { code?: string }).code, 'MIGRATION_CONFIG_INVALID');
      assert.equal((err as { field?: string }).field, 'ramOut');
      assert.match((err as Error).message, /--ram-out .*no-such-dir.*ENOENT/);
      return true;
    });
  });

  it('many faults in one capture: each file flagged with its own code, `errors` counts the files', () => {
    const c = captureDir();
    const { files } = goodCapture(c);
    const junk = c.file('junk.bin', Buffer.from('SSH-2.0-OpenSSH_9.6\r\n'));
    const dup = c.file('dup.bin', channelFile(U, 0, [SYNC]));
    const stranger = c.file('stranger.bin', channelFile(V, 2, [SYNC]));
    const cut = c.file('cut.bin', encodeHandshake({ uuid: U, id: 3 }).subarray(0, 40));
    const outside = c.file('outside.bin', channelFile(U, 4, [SYNC, { pages: [[0x9000, pg(9)]] }]));
    const whole = channelFile(U, 5, [SYNC, { pages: [[0x3000, pg(3)]] }]);
    const trunc = c.file('trunc.bin', whole.subarray(0, whole.length - 1));
    const far = c.file('far.bin', channelFile(U, 200, [SYNC]));
    const r = inspectCapture([...files, junk, dup, stranger, cut, outside, trunc, far]);
    flagged(r, {
      [junk]: { code: 'MIGRATION_CHANNEL_BAD_MAGIC' },
      [dup]: { code: 'MIGRATION_CHANNEL_ID_DUPLICATE' },
      [stranger]: { code: 'MIGRATION_CHANNEL_UUID_MISMATCH' },
      [cut]: { code: 'MIGRATION_CHANNEL_SHORT_HANDSHAKE' },
      [outside]: { code: 'MIGRATION_PACKET_OFFSET_OUT_OF_RANGE' },
      [trunc]: { code: 'MIGRATION_PACKET_SHORT_PAYLOAD' },
      [far]: { code: 'MIGRATION_CHANNEL_ID_OUT_OF_RANGE', expected: '0..7', received: '200' },
    });
    assert.equal(r.errors, 7);
  });
});

// --- 4. the real command ---------------------------------------------------------------------------

describe('multifd inspect (the real command)', () => {
  it('--ram-out on the real capture exits 0 and prints the sha256; a bad file makes it exit 1; --json parses', { skip: present ? false : `test vectors not found at ${VECTORS}`, timeout: 120_000 }, async () => {
    const real = ['main.bin', 'ch-1.bin', 'ch-2.bin', 'ch-3.bin', 'ch-4.bin'].map((f) => path.join(VECTORS, f));
    const c = captureDir();
    const out = path.join(c.dir, 'ram.img');
    const junk = c.file('junk.bin', Buffer.from('not a migration stream'));
    const [ok, bad, json] = await Promise.all([
      runCli(['inspect', '--ram-out', out, ...real], 60_000),
      runCli(['inspect', ...real, junk], 60_000),
      runCli(['inspect', '--json', ...real, junk], 60_000),
    ]);

    // The human report is not ndjson: the helper keeps such lines in badLines.
    const okText = ok.cli.badLines.join('\n');
    assert.equal(ok.exit.code, 0, ok.cli.describe());
    assert.match(okText, new RegExp(`written to ${out.replace(/[.]/g, '\\.')}, sha256 ${REAL_SHA256}`));
    assert.match(okText, /no errors/);
    assert.equal(sha256(readFileSync(out)), REAL_SHA256);

    const badText = bad.cli.badLines.join('\n');
    assert.equal(bad.exit.code, 1, bad.cli.describe());
    assert.match(badText, /ERROR MIGRATION_CHANNEL_BAD_MAGIC/);
    assert.match(badText, /1 file\(s\) with errors/);

    assert.equal(json.exit.code, 1, json.cli.describe());
    const parsed = JSON.parse(json.cli.badLines.join('\n')) as InspectResult;
    assert.equal(parsed.errors, 1);
    assert.equal(parsed.files.length, 6);
    assert.equal(parsed.files.find((f) => f.path === junk)?.error?.code, 'MIGRATION_CHANNEL_BAD_MAGIC');
    assert.equal(parsed.files.find((f) => f.kind === 'qemu-main')?.main?.zeroPages, 14080);
    assert.equal(parsed.sha256, null, 'no --ram-out');
  });
});
