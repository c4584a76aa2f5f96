/**
 * RAM digest (DESIGN 5): sum mod 2^64 of xxhash64(page bytes, seed = the page's byte
 * address in guest address space = block.base + offset in block), over every page of
 * every block. A sum, so per-page hashes can be kept current in any order and the
 * digest taken at the pause costs one pass over 8 bytes per page.
 *
 * Hashes are stored per block in a BigUint64Array (one slot per page). The sum is kept
 * current as pages are (re)hashed, as two Number accumulators of 32-bit halves (new half
 * minus old half, carries folded lazily), so digest() is O(1) at the pause, however
 * cold the code is, and no BigInt add happens per page.
 */
import xxhash from 'xxhash-wasm';
import { InternalError } from '../errors/index';
import { PAGE_SIZE } from '../protocol/constants';
import type { RamBlock } from './ram';

type XXHashAPI = Awaited<ReturnType<typeof xxhash>>;

let hasher: Promise<XXHashAPI> | null = null;

/** The xxhash-wasm instance, loaded once per thread. */
export function loadXxhash(): Promise<XXHashAPI> {
  if (!hasher) {
    hasher = xxhash().catch((err: unknown) => {
      hasher = null;
      throw new InternalError(`cannot load xxhash-wasm: ${(err as Error).message}`, { cause: err });
    });
  }
  return hasher;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const LO = LITTLE_ENDIAN ? 0 : 1;
const HI = 1 - LO;
const TWO32 = 2 ** 32;
/** Fold carries before an accumulator can leave the exact range of a double. */
const FOLD_AT = 2 ** 52;

interface Store {
  block: RamBlock;
  hashes: BigUint64Array;
  halves: Uint32Array;
}

export class PageHashes {
  readonly #h64: XXHashAPI['h64Raw'];
  readonly #stores: Store[];
  readonly #byBlock: Map<RamBlock, Store>;
  /** Sum of all stored hashes = sumHi × 2^32 + sumLo (mod 2^64); either may be negative between folds. */
  #sumLo = 0;
  #sumHi = 0;

  private constructor(api: XXHashAPI, blocks: readonly RamBlock[]) {
    this.#h64 = api.h64Raw;
    this.#stores = blocks.map((block) => {
      const hashes = new BigUint64Array(block.pages);
      return { block, hashes, halves: new Uint32Array(hashes.buffer) };
    });
    this.#byBlock = new Map(this.#stores.map((s) => [s.block, s]));
  }

  /** Hashes start at 0 (not the hash of anything): call hashAll() or hash every page. */
  static async create(blocks: readonly RamBlock[]): Promise<PageHashes> {
    return new PageHashes(await loadXxhash(), blocks);
  }

  hashPage(block: RamBlock, pageIndex: number): void {
    const s = this.#store(block);
    if (!(pageIndex >= 0 && pageIndex < block.pages) || !Number.isInteger(pageIndex)) {
      throw new InternalError(`page hashes: page ${pageIndex} out of range for ramblock '${block.name}'`);
    }
    const off = pageIndex * PAGE_SIZE;
    this.#store1(s, pageIndex, this.#h64(block.bytes.subarray(off, off + PAGE_SIZE), BigInt(block.base + off)));
  }

  hashRun(block: RamBlock, firstPage: number, count: number): void {
    const s = this.#store(block);
    if (!(firstPage >= 0 && count >= 0 && firstPage + count <= block.pages)) {
      throw new InternalError(`page hashes: pages ${firstPage}+${count} out of range for ramblock '${block.name}'`);
    }
    const h64 = this.#h64;
    const bytes = block.bytes;
    for (let i = firstPage; i < firstPage + count; i++) {
      const off = i * PAGE_SIZE;
      this.#store1(s, i, h64(bytes.subarray(off, off + PAGE_SIZE), BigInt(block.base + off)));
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

  /** Stores one page's hash and moves the running sum by (new - old). */
  #store1(s: Store, page: number, hash: bigint): void {
    const halves = s.halves;
    const j = 2 * page;
    const oldLo = halves[j + LO];
    const oldHi = halves[j + HI];
    s.hashes[page] = hash;
    this.#sumLo += halves[j + LO] - oldLo;
    this.#sumHi += halves[j + HI] - oldHi;
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
