/**
 * RAM digest (DESIGN 5): sum mod 2^64 of xxhash64(page bytes, seed = the page's byte
 * address in guest address space = block.base + offset in block), over every page of
 * every block. A sum, so per-page hashes can be kept current in any order and the
 * digest taken at the pause costs one pass over 8 bytes per page.
 *
 * Hashes are stored per block as 32-bit halves (two words per page). The sum is kept
 * current as pages are (re)hashed, as two Number accumulators of those halves (new half
 * minus old half, carries folded lazily), so digest() is O(1) at the pause and no BigInt
 * is made per page. Pages are hashed in batches by PageHasher (lib/guest/xxh64.ts).
 */
import { InternalError } from '../errors/index';
import { PAGE_SIZE } from '../protocol/constants';
import type { RamBlock } from './ram';
import { BATCH_PAGES, PageHasher } from './xxh64';

const TWO32 = 2 ** 32;
/** Fold carries before an accumulator can leave the exact range of a double. */
const FOLD_AT = 2 ** 52;

interface Store {
  block: RamBlock;
  hasher: PageHasher;
  /** page p's hash: low word at 2p, high word at 2p + 1 */
  halves: Uint32Array;
}

export class PageHashes {
  readonly #stores: Store[];
  readonly #byBlock: Map<RamBlock, Store>;
  /** Sum of all stored hashes = sumHi × 2^32 + sumLo (mod 2^64); either may be negative between folds. */
  #sumLo = 0;
  #sumHi = 0;

  private constructor(blocks: readonly RamBlock[]) {
    this.#stores = blocks.map((block) => ({ block, hasher: PageHasher.forBlock(block), halves: new Uint32Array(block.pages * 2) }));
    this.#byBlock = new Map(this.#stores.map((s) => [s.block, s]));
  }

  /** Hashes start at 0 (not the hash of anything): call hashAll() or hash every page. */
  static async create(blocks: readonly RamBlock[]): Promise<PageHashes> {
    return new PageHashes(blocks);
  }

  hashPage(block: RamBlock, pageIndex: number): void {
    this.hashRun(block, pageIndex, 1);
  }

  /** Re-hashes pages firstPage .. firstPage + count - 1 of `block`. */
  hashRun(block: RamBlock, firstPage: number, count: number): void {
    const s = this.#store(block);
    if (!(Number.isInteger(firstPage) && Number.isInteger(count) && firstPage >= 0 && count >= 0 && firstPage + count <= block.pages)) {
      throw new InternalError(`page hashes: pages ${firstPage}+${count} out of range for ramblock '${block.name}'`);
    }
    const h = s.hasher;
    for (let p = firstPage; p < firstPage + count; p += BATCH_PAGES) {
      const n = Math.min(BATCH_PAGES, firstPage + count - p);
      h.add(0, p, n, block.base + p * PAGE_SIZE);
      h.hash(n);
      for (let k = 0; k < n; k++) this.#store1(s, p + k, k);
    }
  }

  /**
   * Re-hashes the pages `pages[from] .. pages[to - 1]` (page indices of `block`, any order;
   * runs of consecutive indices go to the hasher in one piece).
   */
  hashPages(block: RamBlock, pages: ArrayLike<number>, from = 0, to = pages.length): void {
    const s = this.#store(block);
    const h = s.hasher;
    let i = from;
    while (i < to) {
      // Fill one batch with runs of consecutive pages.
      const batchStart = i;
      let k = 0;
      while (i < to && k < BATCH_PAGES) {
        const first = pages[i];
        if (!(first >= 0 && first < block.pages && Number.isInteger(first))) {
          throw new InternalError(`page hashes: page ${first} out of range for ramblock '${block.name}'`);
        }
        let run = 1;
        while (i + run < to && k + run < BATCH_PAGES && pages[i + run] === first + run && first + run < block.pages) run++;
        h.add(k, first, run, block.base + first * PAGE_SIZE);
        k += run;
        i += run;
      }
      h.hash(k);
      for (let j = 0; j < k; j++) this.#store1(s, pages[batchStart + j], j);
    }
  }

  /**
   * Stores, for pages `pages[from] .. pages[to - 1]` of `block`, the hash of a page of
   * zeros: for pages known to be zero, without reading (or faulting in) guest RAM.
   */
  hashZeroPages(block: RamBlock, pages: ArrayLike<number>, from = 0, to = pages.length): void {
    const s = this.#store(block);
    const h = s.hasher;
    for (let i = from; i < to; i += BATCH_PAGES) {
      const n = Math.min(BATCH_PAGES, to - i);
      for (let k = 0; k < n; k++) {
        const p = pages[i + k];
        if (!(p >= 0 && p < block.pages && Number.isInteger(p))) {
          throw new InternalError(`page hashes: page ${p} out of range for ramblock '${block.name}'`);
        }
        h.addZero(k, block.base + p * PAGE_SIZE);
      }
      h.hash(n);
      for (let k = 0; k < n; k++) this.#store1(s, pages[i + k], k);
    }
  }

  hashAll(): void {
    for (const s of this.#stores) this.hashRun(s.block, 0, s.block.pages);
  }

  /** Sum of the stored hashes mod 2^64. O(1). */
  digest(): bigint {
    this.#fold();
    return (BigInt(this.#sumHi) << 32n) | BigInt(this.#sumLo);
  }

  /** Stores page `page`'s hash from the hasher's slot `slot`, moving the running sum by (new - old). */
  #store1(s: Store, page: number, slot: number): void {
    const halves = s.halves;
    const j = 2 * page;
    const lo = s.hasher.lo(slot);
    const hi = s.hasher.hi(slot);
    this.#sumLo += lo - halves[j];
    this.#sumHi += hi - halves[j + 1];
    halves[j] = lo;
    halves[j + 1] = hi;
    if (this.#sumLo > FOLD_AT || this.#sumLo < -FOLD_AT || this.#sumHi > FOLD_AT || this.#sumHi < -FOLD_AT) this.#fold();
  }

  /** Brings sumLo into [0, 2^32) and sumHi into [0, 2^32), carrying lo into hi. */
  #fold(): void {
    const carry = Math.floor(this.#sumLo / TWO32);
    this.#sumLo -= carry * TWO32;
    const hi = (this.#sumHi + carry) % TWO32;
    this.#sumHi = hi < 0 ? hi + TWO32 : hi;
  }

  #store(block: RamBlock): Store {
    const s = this.#byBlock.get(block);
    if (!s) throw new InternalError(`page hashes: ramblock '${block.name}' is not one of this guest's blocks`);
    return s;
  }
}

/** Re-hashes every page from scratch. */
export async function fullDigest(blocks: readonly RamBlock[]): Promise<bigint> {
  const hashes = await PageHashes.create(blocks);
  hashes.hashAll();
  return hashes.digest();
}

/** 16 lowercase hex digits. */
export function formatDigest(d: bigint): string {
  return BigInt.asUintN(64, d).toString(16).padStart(16, '0');
}

/** Inverse of formatDigest; null when not 1-16 hex digits. */
export function parseDigest(s: string): bigint | null {
  return /^[0-9a-fA-F]{1,16}$/.test(s) ? BigInt(`0x${s}`) : null;
}
