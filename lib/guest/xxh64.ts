/**
 * xxhash64 of whole 4 KiB pages, many per call, in a WebAssembly function of our own.
 *
 * Why not xxhash-wasm's h64Raw per page: each call allocates a view and two BigInts, copies
 * the page into the module and crosses into wasm once; on a 2 GiB guest that overhead was
 * ~0.9 s per side, several times the hashing itself. Here the caller copies a run of pages
 * (at most BATCH_PAGES, 256 KiB, which stays in cache) into the module's memory, writes one
 * 64-bit seed per page next to it, and one call replaces each seed with its page's hash.
 * The caller reads the results as 32-bit halves, so nothing on the way allocates.
 *
 * Only the 4096-byte case of xxhash64 is needed: the length is a multiple of the 32-byte
 * stripe, so the algorithm is the four-lane stripe loop, the lane merge, the length, and
 * the final avalanche (no tail). lib/guest/xxh64.test.ts checks it against xxhash-wasm.
 *
 * The module is assembled below from opcodes (a few dozen instructions), so there is no
 * binary blob in the tree and no build step.
 */
import { PAGE_SIZE } from '../protocol/constants';

/** Pages hashed per call. 256 KiB of input stays in L2 between the copy and the hash. */
export const BATCH_PAGES = 64;
/** Layout of the module's memory: the pages, then one 8-byte seed/hash slot per page. */
const DATA_PTR = 0;
const IO_PTR = BATCH_PAGES * PAGE_SIZE;
const MEMORY_BYTES = IO_PTR + BATCH_PAGES * 8;
const WASM_PAGE = 65536;

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

/** hash_pages(data: i32, count: i32, io: i32): io[k] (a u64 seed) := xxh64(data + 4096k, 4096, io[k]). */
function hashPagesBody(): number[] {
  // params 0..2, then locals
  const data = 0;
  const count = 1;
  const io = 2;
  const p = 3; // i32: stripe pointer
  const end = 4; // i32: end of this page
  const seed = 5; // i64 ...
  const v = [6, 7, 8, 9];
  const h = 10;
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
    // seed and the four lanes
    ...get(io), op.i64Load, 3, 0, ...set(seed),
    ...get(seed), ...k64(P1 + P2), op.i64Add, ...set(v[0]),
    ...get(seed), ...k64(P2), op.i64Add, ...set(v[1]),
    ...get(seed), ...set(v[2]),
    ...get(seed), ...k64(P1), op.i64Sub, ...set(v[3]),
    ...get(data), ...set(p),
    ...get(data), ...k32(PAGE_SIZE), op.i32Add, ...set(end),
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
    // next page
    ...get(data), ...k32(PAGE_SIZE), op.i32Add, ...set(data),
    ...get(io), ...k32(8), op.i32Add, ...set(io),
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

function moduleBytes(): Uint8Array<ArrayBuffer> {
  const pages = Math.ceil(MEMORY_BYTES / WASM_PAGE);
  const body = hashPagesBody();
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([[0x60, ...vec([[I32], [I32], [I32]]), 0]])), // type 0: (i32 i32 i32) -> ()
    ...section(3, vec([[0]])), // function 0 has type 0
    ...section(5, vec([[0x01, ...uleb(pages), ...uleb(pages)]])), // one fixed-size memory
    ...section(7, vec([
      [...name('memory'), 0x02, 0],
      [...name('hash_pages'), 0x00, 0],
    ])),
    ...section(10, vec([[...uleb(body.length), ...body]])),
  ]);
}

let compiled: WebAssembly.Module | null = null;

/** One instance: its own memory, reused for every batch. Not for concurrent use across threads. */
export class PageHasher {
  readonly #hashPages: (data: number, count: number, io: number) => void;
  readonly #mem: Uint8Array;
  /** The seed/hash slots as 32-bit words: slot k is words 2k, 2k+1 (little-endian in wasm). */
  readonly io: Uint32Array;

  constructor() {
    // The module stores hashes little-endian; `io` reads them with the host's byte order.
    if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) throw new Error('PageHasher needs a little-endian host');
    compiled ??= new WebAssembly.Module(moduleBytes());
    const instance = new WebAssembly.Instance(compiled, {});
    const { memory, hash_pages } = instance.exports as { memory: WebAssembly.Memory; hash_pages: (a: number, b: number, c: number) => void };
    this.#hashPages = hash_pages;
    this.#mem = new Uint8Array(memory.buffer);
    this.io = new Uint32Array(memory.buffer, IO_PTR, BATCH_PAGES * 2);
  }

  /**
   * Hashes `count` (≤ BATCH_PAGES) consecutive pages starting at byte `offset` of `bytes`,
   * page k seeded with `seed + k × 4096`. Results: io[2k] (low) and io[2k+1] (high).
   */
  run(bytes: Uint8Array, offset: number, count: number, seed: number): void {
    this.stage(0, bytes, offset, count, seed);
    this.#hashPages(DATA_PTR, count, IO_PTR);
  }

  /**
   * Stages `count` consecutive pages starting at byte `offset` of `bytes` into slots k ..
   * k + count - 1 (k + count ≤ BATCH_PAGES), seeded `seed`, `seed + 4096`, ...; then
   * hashStaged(n) hashes slots 0 .. n - 1.
   */
  stage(k: number, bytes: Uint8Array, offset: number, count: number, seed: number): void {
    this.#mem.set(bytes.subarray(offset, offset + count * PAGE_SIZE), DATA_PTR + k * PAGE_SIZE);
    for (let i = 0; i < count; i++) setSeed(this.io, k + i, seed + i * PAGE_SIZE);
  }

  hashStaged(count: number): void {
    this.#hashPages(DATA_PTR, count, IO_PTR);
  }
}

const TWO32 = 2 ** 32;

/** Seeds are guest addresses: exact integers below 2^53. */
function setSeed(io: Uint32Array, k: number, seed: number): void {
  io[2 * k] = seed % TWO32;
  io[2 * k + 1] = Math.floor(seed / TWO32);
}
