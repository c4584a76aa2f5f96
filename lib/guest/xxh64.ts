/**
 * xxhash64 of whole 4 KiB pages, many per call, in a WebAssembly function of our own.
 *
 * Why not xxhash-wasm's h64Raw per page: each call allocates a view and two BigInts, copies
 * the page into the module and crosses into wasm once; that overhead was several times the
 * hashing itself. Here one call hashes a batch of pages described by 16-byte slots:
 *
 *   slot k: bytes 0..7  the page's 64-bit seed in, its hash out (little-endian)
 *           bytes 8..11 the page's address in the module's memory
 *
 * Two ways to reach the pages (PageHasher.forBlock picks):
 * - in place: the block's RAM *is* a shared WebAssembly.Memory (lib/guest/ram.ts) and the
 *   slots sit in a reserve after its last page, so nothing is copied;
 * - copying: for RAM on a plain SharedArrayBuffer (blocks too large for a 4 GiB wasm
 *   memory, memory wrapped from elsewhere), a run of pages is copied into the module's own
 *   memory first (256 KiB at a time, which stays in cache between the copy and the hash).
 * Results are read as 32-bit halves, so nothing on the way allocates.
 *
 * Only the 4096-byte case of xxhash64 is needed: the length is a multiple of the 32-byte
 * stripe, so the algorithm is the four-lane stripe loop, the lane merge, the length, and
 * the final avalanche (no tail). lib/guest/xxh64.test.ts checks it against xxhash-wasm.
 *
 * The module is assembled below from opcodes (a few dozen instructions), so there is no
 * binary blob in the tree and no build step.
 */
import { PAGE_SIZE } from '../protocol/constants';

/** Pages per call. In copy mode, 256 KiB of input stays in L2 between the copy and the hash. */
export const BATCH_PAGES = 64;
const SLOT_BYTES = 16;
/**
 * Bytes a block's wasm memory keeps after its pages (one wasm page): the slots, then at
 * ZERO_AT a page of zeros that zero pages are hashed from (never read from guest RAM).
 */
export const HASH_RESERVE_BYTES = 65536;
const ZERO_AT = PAGE_SIZE;
/** Copy mode's own memory: the pages, then the same reserve. */
const COPY_IO = BATCH_PAGES * PAGE_SIZE;
const COPY_MEMORY_BYTES = COPY_IO + ZERO_AT + PAGE_SIZE;
const WASM_PAGE = 65536;
/** The most a wasm32 memory can hold: 65536 pages of 64 KiB. */
export const MAX_WASM_MEMORY_BYTES = 65536 * WASM_PAGE;

const P1 = 0x9e3779b185ebca87n;
const P2 = 0xc2b2ae3d27d4eb4fn;
const P3 = 0x165667b19e3779f9n;
const P4 = 0x85ebca77c2b2ae63n;

// ---- a minimal WebAssembly assembler: just what one function needs -------------------------

const op = {
  block: 0x02,
  loop: 0x03,
  end: 0x0b,
  br: 0x0c,
  brIf: 0x0d,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  i32Load: 0x28,
  i64Load: 0x29,
  i64Store: 0x37,
  i32Const: 0x41,
  i64Const: 0x42,
  i32Eqz: 0x45,
  i32LtU: 0x49,
  i32Add: 0x6a,
  i32Sub: 0x6b,
  i64Add: 0x7c,
  i64Sub: 0x7d,
  i64Mul: 0x7e,
  i64Xor: 0x85,
  i64ShrU: 0x88,
  i64Rotl: 0x89,
} as const;
const VOID = 0x40;
const I32 = 0x7f;
const I64 = 0x7e;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 of a 64-bit pattern (wasm i64.const takes the two's-complement value). */
function sleb64(v: bigint): number[] {
  let x = BigInt.asIntN(64, v);
  const out: number[] = [];
  for (;;) {
    const b = Number(x & 0x7fn);
    x >>= 7n;
    const done = (x === 0n && (b & 0x40) === 0) || (x === -1n && (b & 0x40) !== 0);
    out.push(done ? b : b | 0x80);
    if (done) return out;
  }
}

const name = (s: string) => [...uleb(s.length), ...new TextEncoder().encode(s)];
const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];

/** hash_pages(io: i32, count: i32): for each of `count` 16-byte slots at io, seed := xxh64(page, seed). */
function hashPagesBody(): number[] {
  // params 0..1, then locals
  const io = 0;
  const count = 1;
  const p = 2; // i32: stripe pointer
  const end = 3; // i32: end of this page
  const seed = 4; // i64 ...
  const v = [5, 6, 7, 8];
  const h = 9;
  const get = (l: number) => [op.localGet, l];
  const set = (l: number) => [op.localSet, l];
  const k64 = (c: bigint) => [op.i64Const, ...sleb64(c)];
  const k32 = (c: number) => [op.i32Const, ...sleb64(BigInt(c))];
  // round(acc, input) = rotl(acc + input * P2, 31) * P1, with input already on the stack
  const roundTail = [...k64(P2), op.i64Mul, op.i64Add, ...k64(31n), op.i64Rotl, ...k64(P1), op.i64Mul];
  const code: number[] = [
    op.block, VOID,
    op.loop, VOID,
    ...get(count), op.i32Eqz, op.brIf, 1,
    // seed, page pointer, and the four lanes
    ...get(io), op.i64Load, 3, 0, ...set(seed),
    ...get(io), op.i32Load, 2, 8, op.localTee, p,
    ...k32(PAGE_SIZE), op.i32Add, ...set(end),
    ...get(seed), ...k64(P1 + P2), op.i64Add, ...set(v[0]),
    ...get(seed), ...k64(P2), op.i64Add, ...set(v[1]),
    ...get(seed), ...set(v[2]),
    ...get(seed), ...k64(P1), op.i64Sub, ...set(v[3]),
    // 128 stripes of 32 bytes: lane i takes the 8 bytes at p + 8i
    op.loop, VOID,
  ];
  for (let i = 0; i < 4; i++) code.push(...get(v[i]), ...get(p), op.i64Load, 3, 8 * i, ...roundTail, ...set(v[i]));
  code.push(
    ...get(p), ...k32(32), op.i32Add, op.localTee, p,
    ...get(end), op.i32LtU, op.brIf, 0,
    op.end,
    // h = rotl(v1,1) + rotl(v2,7) + rotl(v3,12) + rotl(v4,18)
    ...get(v[0]), ...k64(1n), op.i64Rotl,
    ...get(v[1]), ...k64(7n), op.i64Rotl, op.i64Add,
    ...get(v[2]), ...k64(12n), op.i64Rotl, op.i64Add,
    ...get(v[3]), ...k64(18n), op.i64Rotl, op.i64Add,
    ...set(h),
  );
  // merge each lane: h = (h ^ round(0, v)) * P1 + P4
  for (let i = 0; i < 4; i++) {
    code.push(...get(h), ...k64(0n), ...get(v[i]), ...roundTail, op.i64Xor, ...k64(P1), op.i64Mul, ...k64(P4), op.i64Add, ...set(h));
  }
  code.push(
    // h += length; avalanche: h ^= h >> 33; h *= P2; h ^= h >> 29; h *= P3; h ^= h >> 32
    ...get(h), ...k64(BigInt(PAGE_SIZE)), op.i64Add, ...set(h),
    ...get(h), ...get(h), ...k64(33n), op.i64ShrU, op.i64Xor, ...k64(P2), op.i64Mul, ...set(h),
    ...get(h), ...get(h), ...k64(29n), op.i64ShrU, op.i64Xor, ...k64(P3), op.i64Mul, ...set(h),
    ...get(io), ...get(h), ...get(h), ...k64(32n), op.i64ShrU, op.i64Xor, op.i64Store, 3, 0,
    // next slot
    ...get(io), ...k32(SLOT_BYTES), op.i32Add, ...set(io),
    ...get(count), ...k32(1), op.i32Sub, ...set(count),
    op.br, 0,
    op.end,
    op.end,
    op.end, // function
  );
  const locals = vec([
    [2, I32],
    [6, I64],
  ]);
  return [...locals, ...code];
}

/**
 * The module: with `ownPages`, a fixed memory of its own that it exports; without, it
 * imports a shared memory of any size as env.memory.
 */
function moduleBytes(ownPages: number | null): Uint8Array<ArrayBuffer> {
  const body = hashPagesBody();
  const memory =
    ownPages === null
      ? section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x03, ...uleb(1), ...uleb(65536)]])) // import shared 1..65536 pages
      : section(5, vec([[0x01, ...uleb(ownPages), ...uleb(ownPages)]]));
  const exports = [[...name('hash_pages'), 0x00, 0]];
  if (ownPages !== null) exports.push([...name('memory'), 0x02, 0]);
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([[0x60, ...vec([[I32], [I32]]), 0]])), // type 0: (i32 i32) -> ()
    ...(ownPages === null ? memory : []),
    ...section(3, vec([[0]])), // function 0 has type 0
    ...(ownPages === null ? [] : memory),
    ...section(7, vec(exports)),
    ...section(10, vec([[...uleb(body.length), ...body]])),
  ]);
}

let copyModule: WebAssembly.Module | null = null;
let inPlaceModule: WebAssembly.Module | null = null;

type HashPages = (io: number, count: number) => void;

/** Where a block's pages are: RAM on a shared wasm memory gets hashed in place. */
export interface HashablePages {
  readonly bytes: Uint8Array;
  readonly pages: number;
  /** The wasm memory under `bytes` (starting at address 0), with HASH_RESERVE_BYTES after the pages; or null. */
  readonly memory: WebAssembly.Memory | null;
}

/**
 * Hashes pages of one block: add(k, page, count, seed) fills slots k.. with a run of
 * consecutive pages; hash(n) hashes slots 0..n-1; the result of slot k is lo(k), hi(k).
 * Not for concurrent use across threads (the slots of an in-place hasher live in the
 * block's shared memory).
 */
export class PageHasher {
  readonly #hashPages: HashPages;
  readonly #bytes: Uint8Array;
  /** copy mode: the module's own memory, else null */
  readonly #copyTo: Uint8Array | null;
  readonly #ioAddr: number;
  /** the slots as 32-bit words: slot k is words 4k .. 4k+3 */
  readonly #io: Uint32Array;

  private constructor(hashPages: HashPages, bytes: Uint8Array, copyTo: Uint8Array | null, ioAddr: number, io: Uint32Array) {
    this.#hashPages = hashPages;
    this.#bytes = bytes;
    this.#copyTo = copyTo;
    this.#ioAddr = ioAddr;
    this.#io = io;
  }

  static forBlock(block: HashablePages): PageHasher {
    // The module stores hashes little-endian; the slots are read with the host's byte order.
    if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) throw new Error('PageHasher needs a little-endian host');
    const size = block.pages * PAGE_SIZE;
    if (block.memory && block.memory.buffer.byteLength >= size + ZERO_AT + PAGE_SIZE) {
      inPlaceModule ??= new WebAssembly.Module(moduleBytes(null));
      const instance = new WebAssembly.Instance(inPlaceModule, { env: { memory: block.memory } });
      const io = new Uint32Array(block.memory.buffer, size, BATCH_PAGES * 4);
      return new PageHasher(instance.exports.hash_pages as HashPages, block.bytes, null, size, io);
    }
    const pages = Math.ceil(COPY_MEMORY_BYTES / WASM_PAGE);
    copyModule ??= new WebAssembly.Module(moduleBytes(pages));
    const instance = new WebAssembly.Instance(copyModule, {});
    const memory = instance.exports.memory as WebAssembly.Memory;
    const io = new Uint32Array(memory.buffer, COPY_IO, BATCH_PAGES * 4);
    return new PageHasher(instance.exports.hash_pages as HashPages, block.bytes, new Uint8Array(memory.buffer), COPY_IO, io);
  }

  /** Slot k := a page of zeros with this seed (for pages known to be zero, without touching them). */
  addZero(k: number, seed: number): void {
    const w = 4 * k;
    this.#io[w] = seed % TWO32;
    this.#io[w + 1] = Math.floor(seed / TWO32);
    this.#io[w + 2] = this.#ioAddr + ZERO_AT;
  }

  /** True when pages are hashed where they are, without a copy. */
  get inPlace(): boolean {
    return this.#copyTo === null;
  }

  /** Slots k .. k + count - 1 (k + count ≤ BATCH_PAGES) := pages first .., seeds seed, seed + 4096, ... */
  add(k: number, first: number, count: number, seed: number): void {
    const io = this.#io;
    let addr: number;
    if (this.#copyTo) {
      const off = first * PAGE_SIZE;
      this.#copyTo.set(this.#bytes.subarray(off, off + count * PAGE_SIZE), k * PAGE_SIZE);
      addr = k * PAGE_SIZE;
    } else {
      addr = first * PAGE_SIZE;
    }
    for (let i = 0; i < count; i++) {
      const w = 4 * (k + i);
      const s = seed + i * PAGE_SIZE;
      io[w] = s % TWO32;
      io[w + 1] = Math.floor(s / TWO32);
      io[w + 2] = addr + i * PAGE_SIZE;
    }
  }

  hash(count: number): void {
    this.#hashPages(this.#ioAddr, count);
  }

  lo(k: number): number {
    return this.#io[4 * k];
  }

  hi(k: number): number {
    return this.#io[4 * k + 1];
  }
}

const TWO32 = 2 ** 32;
