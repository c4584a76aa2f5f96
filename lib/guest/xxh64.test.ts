import assert from 'node:assert/strict';
import { randomFillSync } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import xxhash from 'xxhash-wasm';
import { PAGE_SIZE } from '../protocol/constants';
import { BATCH_PAGES, PageHasher } from './xxh64';

const { h64Raw } = await xxhash();

const slot = (h: PageHasher, k: number) => (BigInt(h.io[2 * k + 1]) << 32n) | BigInt(h.io[2 * k]);
const reference = (bytes: Uint8Array, offset: number, seed: number) => h64Raw(bytes.slice(offset, offset + PAGE_SIZE), BigInt(seed));

describe('PageHasher (xxhash64 of 4 KiB pages in our wasm)', () => {
  it('agrees with xxhash-wasm on a full batch, seeds across 2^32 and near 2^53', () => {
    const bytes = randomFillSync(new Uint8Array(BATCH_PAGES * PAGE_SIZE));
    const h = new PageHasher();
    for (const seed of [0, 2 ** 32 - 2 * PAGE_SIZE, 2 ** 40 + 12288, 2 ** 53 - BATCH_PAGES * PAGE_SIZE]) {
      h.run(bytes, 0, BATCH_PAGES, seed);
      for (let k = 0; k < BATCH_PAGES; k++) assert.equal(slot(h, k), reference(bytes, k * PAGE_SIZE, seed + k * PAGE_SIZE), `seed ${seed} page ${k}`);
    }
  });

  it('hashes the zero page and an all-ones page like xxhash-wasm', () => {
    const h = new PageHasher();
    for (const fill of [0x00, 0xff]) {
      const page = new Uint8Array(PAGE_SIZE).fill(fill);
      h.run(page, 0, 1, 8192);
      assert.equal(slot(h, 0), reference(page, 0, 8192));
    }
  });

  it('staged runs land in their slots with their own seeds', () => {
    const bytes = randomFillSync(new Uint8Array(16 * PAGE_SIZE));
    const h = new PageHasher();
    h.stage(0, bytes, 5 * PAGE_SIZE, 3, 5 * PAGE_SIZE); // pages 5, 6, 7
    h.stage(3, bytes, 0, 1, 0); // page 0
    h.stage(4, bytes, 12 * PAGE_SIZE, 2, 12 * PAGE_SIZE); // pages 12, 13
    h.hashStaged(6);
    const pages = [5, 6, 7, 0, 12, 13];
    pages.forEach((p, k) => assert.equal(slot(h, k), reference(bytes, p * PAGE_SIZE, p * PAGE_SIZE), `slot ${k}`));
  });

  it('property: any page contents and seed agree with xxhash-wasm', () => {
    const h = new PageHasher();
    fc.assert(
      fc.property(fc.uint8Array({ minLength: PAGE_SIZE, maxLength: PAGE_SIZE }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (page, seed) => {
        h.run(page, 0, 1, seed);
        return slot(h, 0) === reference(page, 0, seed);
      }),
      { numRuns: 200 },
    );
  });
});
