import assert from 'node:assert/strict';
import { randomFillSync } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import xxhash from 'xxhash-wasm';
import { PAGE_SIZE } from '../protocol/constants';
import { RamBlock } from './ram';
import { BATCH_PAGES, PageHasher } from './xxh64';

const { h64Raw } = await xxhash();

const result = (h: PageHasher, k: number) => (BigInt(h.hi(k)) << 32n) | BigInt(h.lo(k));
const reference = (bytes: Uint8Array, page: number, seed: number) =>
  h64Raw(bytes.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE), BigInt(seed));

/** A block on a shared wasm memory (hashed in place) and one on a plain SharedArrayBuffer (copied). */
function blocks(pages: number): { mode: string; block: RamBlock }[] {
  const spec = { name: 'pc.ram', size: pages * PAGE_SIZE };
  const inPlace = new RamBlock(spec, 0);
  const copied = new RamBlock(spec, 0, new SharedArrayBuffer(spec.size));
  randomFillSync(inPlace.bytes);
  copied.bytes.set(inPlace.bytes);
  return [
    { mode: 'in place', block: inPlace },
    { mode: 'copying', block: copied },
  ];
}

describe('PageHasher (xxhash64 of 4 KiB pages in our wasm)', () => {
  it('uses the block memory in place when it is a wasm memory, and copies otherwise', () => {
    const [a, b] = blocks(4);
    assert.equal(PageHasher.forBlock(a.block).inPlace, true);
    assert.equal(PageHasher.forBlock(b.block).inPlace, false);
  });

  for (const { mode, block } of blocks(2 * BATCH_PAGES)) {
    it(`${mode}: agrees with xxhash-wasm on a full batch, seeds across 2^32 and near 2^53`, () => {
      const h = PageHasher.forBlock(block);
      for (const seed of [0, 2 ** 32 - 2 * PAGE_SIZE, 2 ** 40 + 12288, 2 ** 53 - BATCH_PAGES * PAGE_SIZE]) {
        h.add(0, BATCH_PAGES, BATCH_PAGES, seed);
        h.hash(BATCH_PAGES);
        for (let k = 0; k < BATCH_PAGES; k++) {
          assert.equal(result(h, k), reference(block.bytes, BATCH_PAGES + k, seed + k * PAGE_SIZE), `seed ${seed} page ${k}`);
        }
      }
    });

    it(`${mode}: runs and single pages land in their slots with their own seeds`, () => {
      const h = PageHasher.forBlock(block);
      h.add(0, 5, 3, 5 * PAGE_SIZE); // pages 5, 6, 7
      h.add(3, 0, 1, 0); // page 0
      h.add(4, 127, 1, 7); // the last page, any seed
      h.add(5, 12, 2, 12 * PAGE_SIZE); // pages 12, 13
      h.hash(7);
      const expected = [
        [5, 5 * PAGE_SIZE],
        [6, 6 * PAGE_SIZE],
        [7, 7 * PAGE_SIZE],
        [0, 0],
        [127, 7],
        [12, 12 * PAGE_SIZE],
        [13, 13 * PAGE_SIZE],
      ];
      expected.forEach(([page, seed], k) => assert.equal(result(h, k), reference(block.bytes, page, seed), `slot ${k}`));
    });
  }

  it('hashes the zero page and an all-ones page like xxhash-wasm', () => {
    const block = new RamBlock({ name: 'pc.ram', size: 2 * PAGE_SIZE }, 0);
    block.bytes.fill(0xff, PAGE_SIZE);
    const h = PageHasher.forBlock(block);
    h.add(0, 0, 2, 8192);
    h.hash(2);
    assert.equal(result(h, 0), reference(block.bytes, 0, 8192));
    assert.equal(result(h, 1), reference(block.bytes, 1, 8192 + PAGE_SIZE));
  });

  it('property: any page contents and seed agree with xxhash-wasm', () => {
    const block = new RamBlock({ name: 'pc.ram', size: PAGE_SIZE }, 0);
    const h = PageHasher.forBlock(block);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: PAGE_SIZE, maxLength: PAGE_SIZE }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (page, seed) => {
        block.bytes.set(page);
        h.add(0, 0, 1, seed);
        h.hash(1);
        return result(h, 0) === reference(block.bytes, 0, seed);
      }),
      { numRuns: 200 },
    );
  });
});
