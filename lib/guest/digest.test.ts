import assert from 'node:assert/strict';
import { randomFillSync } from 'node:crypto';
import { describe, it } from 'node:test';
import xxhash from 'xxhash-wasm';
import { fullDigest, formatDigest, PageHashes } from './digest';
import { RamBlock, allocateBlocks } from './ram';

const MASK64 = (1n << 64n) - 1n;

function randomBlocks(specs: { name: string; size: number }[]): RamBlock[] {
  const blocks = allocateBlocks(specs);
  for (const b of blocks) randomFillSync(b.bytes);
  return blocks;
}

describe('PageHashes', () => {
  it('matches an independent xxh64 sum for a tiny 2-page block (seeds 0 and 4096)', async () => {
    const { h64Raw } = await xxhash();
    const [block] = randomBlocks([{ name: 'pc.ram', size: 8192 }]);
    const expected = (h64Raw(block.bytes.slice(0, 4096), 0n) + h64Raw(block.bytes.slice(4096), 4096n)) & MASK64;
    const hashes = await PageHashes.create([block]);
    hashes.hashAll();
    assert.equal(hashes.digest(), expected);
    assert.equal(await fullDigest([block]), expected);
    assert.equal(formatDigest(expected), expected.toString(16).padStart(16, '0'));
  });

  it('seeds pages of later blocks with their address in guest address space', async () => {
    const { h64Raw } = await xxhash();
    const blocks = randomBlocks([
      { name: 'a', size: 4096 },
      { name: 'b', size: 8192 },
    ]);
    const [a, b] = blocks;
    assert.equal(b.base, 4096);
    const expected =
      (h64Raw(a.bytes.slice(), 0n) + h64Raw(b.bytes.slice(0, 4096), 4096n) + h64Raw(b.bytes.slice(4096), 8192n)) & MASK64;
    assert.equal(await fullDigest(blocks), expected);
  });

  it('equals fullDigest after hashing all; follows a page change and comes back', async () => {
    const blocks = randomBlocks([
      { name: 'pc.ram', size: 1 << 20 },
      { name: 'vga.vram', size: 64 << 10 },
    ]);
    const hashes = await PageHashes.create(blocks);
    hashes.hashAll();
    const before = hashes.digest();
    assert.equal(before, await fullDigest(blocks));

    const [ram] = blocks;
    const page = ram.page(17);
    const saved = page.slice();
    page[100] ^= 0xff;
    assert.equal(hashes.digest(), before, 'stored hashes only change when re-hashed');
    hashes.hashPage(ram, 17);
    const changed = hashes.digest();
    assert.notEqual(changed, before);
    assert.equal(changed, await fullDigest(blocks));
    page.set(saved);
    hashes.hashPage(ram, 17);
    assert.equal(hashes.digest(), before);
  });

  it('does not depend on the order pages are hashed in', async () => {
    const blocks = randomBlocks([
      { name: 'a', size: 256 << 10 },
      { name: 'b', size: 128 << 10 },
    ]);
    const forward = await PageHashes.create(blocks);
    forward.hashAll();
    const backward = await PageHashes.create(blocks);
    for (const b of [...blocks].reverse()) for (let p = b.pages - 1; p >= 0; p--) backward.hashPage(b, p);
    const runs = await PageHashes.create(blocks);
    runs.hashRun(blocks[1], 10, 22);
    runs.hashRun(blocks[0], 0, 64);
    assert.notEqual(runs.digest(), forward.digest(), 'pages not hashed yet count as 0');
    runs.hashRun(blocks[1], 0, 10);
    assert.equal(runs.digest(), forward.digest());
    assert.equal(backward.digest(), forward.digest());
  });

  it('hashPages takes any list of pages: runs, gaps, repeats, across batches', async () => {
    const [b] = randomBlocks([{ name: 'pc.ram', size: 1 << 20 }]); // 256 pages
    const all = await PageHashes.create([b]);
    all.hashAll();
    const listed = await PageHashes.create([b]);
    // a run crossing the 64-page batch, scattered pages, a repeat, then everything in reverse
    listed.hashPages(b, [3, 4, 5, 200, 7, 7, ...Array.from({ length: 100 }, (_, i) => 100 + i)]);
    listed.hashPages(b, Array.from({ length: b.pages }, (_, i) => b.pages - 1 - i));
    assert.equal(listed.digest(), all.digest());
    const part = await PageHashes.create([b]);
    part.hashPages(b, [9, 1, 2, 3], 1, 3); // only pages 1 and 2
    const two = await PageHashes.create([b]);
    two.hashRun(b, 1, 2);
    assert.equal(part.digest(), two.digest());
    assert.throws(() => listed.hashPages(b, [0, 256]), { code: 'MIGRATION_INTERNAL' });
    assert.throws(() => listed.hashPages(b, [1.5]), { code: 'MIGRATION_INTERNAL' });
  });

  it('hashZeroPages stores what hashing those pages would, when they are zero, in both memory kinds', async () => {
    for (const plain of [false, true]) {
      const spec = { name: 'pc.ram', size: 256 * 4096 };
      const b = plain ? new RamBlock(spec, 8192, new SharedArrayBuffer(spec.size)) : new RamBlock(spec, 8192);
      randomFillSync(b.bytes, 0, 100 * 4096); // pages 100.. stay zero
      const read = await PageHashes.create([b]);
      read.hashAll();
      const known = await PageHashes.create([b]);
      known.hashRun(b, 0, 100);
      known.hashZeroPages(b, Array.from({ length: 156 }, (_, i) => 255 - i));
      assert.equal(known.digest(), read.digest(), plain ? 'plain SharedArrayBuffer' : 'wasm memory');
    }
  });

  it('digest() carries across 32-bit halves exactly (compared with a BigInt sum)', async () => {
    const blocks = randomBlocks([{ name: 'pc.ram', size: 4 << 20 }]);
    const { h64Raw } = await xxhash();
    let sum = 0n;
    const [b] = blocks;
    for (let p = 0; p < b.pages; p++) sum += h64Raw(b.bytes.slice(p * 4096, (p + 1) * 4096), BigInt(p * 4096));
    assert.equal(await fullDigest(blocks), sum & MASK64);
  });

  it('keeps the running sum exact through many re-hashes of changed pages', async () => {
    const blocks = randomBlocks([
      { name: 'a', size: 64 << 10 },
      { name: 'b', size: 64 << 10 },
    ]);
    const hashes = await PageHashes.create(blocks);
    hashes.hashAll();
    for (let i = 0; i < 3000; i++) {
      const b = blocks[i & 1];
      const p = (i * 7) % b.pages;
      randomFillSync(b.page(p), (i * 13) % 4000, 8);
      hashes.hashPage(b, p);
      if (i % 500 === 0) assert.equal(hashes.digest(), await fullDigest(blocks), `after ${i} updates`);
    }
    assert.equal(hashes.digest(), await fullDigest(blocks));
  });

  it('refuses blocks it does not know and pages out of range', async () => {
    const [a] = randomBlocks([{ name: 'a', size: 8192 }]);
    const [other] = randomBlocks([{ name: 'a', size: 8192 }]);
    const hashes = await PageHashes.create([a]);
    assert.throws(() => hashes.hashPage(other, 0), { code: 'MIGRATION_INTERNAL' });
    assert.throws(() => hashes.hashPage(a, 2), { code: 'MIGRATION_INTERNAL' });
    assert.throws(() => hashes.hashRun(a, 1, 2), { code: 'MIGRATION_INTERNAL' });
  });

  it('formatDigest is 16 lowercase hex digits', () => {
    assert.equal(formatDigest(0n), '0000000000000000');
    assert.equal(formatDigest(0xabcn), '0000000000000abc');
    assert.equal(formatDigest(MASK64), 'ffffffffffffffff');
  });
});
