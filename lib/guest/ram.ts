/**
 * Guest RAM: named blocks of 4 KiB pages, each on its own shared memory so the workload
 * worker writes the very bytes the migration reads. A block is a shared WebAssembly.Memory
 * when it fits one (4 GiB less a 64 KiB reserve after its pages), so page hashes are
 * computed in place (lib/guest/xxh64.ts); larger blocks are a plain SharedArrayBuffer. Blocks sit one after the
 * other in guest address space: a block's `base` is the sum of the sizes before it, and
 * a page's address (the digest's seed, DESIGN 5) is base + offset in the block.
 */
import { Buffer } from 'node:buffer';
import { ConfigInvalidError, InternalError } from '../errors/index';
import { PAGE_SIZE, RAMBLOCK_NAME_SIZE } from '../protocol/constants';
import { DirtyBitmap } from './dirty';
import { HASH_RESERVE_BYTES, MAX_WASM_MEMORY_BYTES } from './xxh64';

export interface RamBlockSpec {
  name: string;
  /** bytes: a positive multiple of PAGE_SIZE. */
  size: number;
}

/** Int32 words per page. */
const PAGE_WORDS = PAGE_SIZE / 4;
const ZERO_PAGE = Buffer.alloc(PAGE_SIZE);

export class RamBlock {
  readonly name: string;
  readonly size: number;
  readonly pages: number;
  readonly base: number;
  /** The memory: at least `size` bytes (a wasm memory has a reserve after the pages). */
  readonly sab: SharedArrayBuffer;
  /** The wasm memory `sab` belongs to, or null for a plain SharedArrayBuffer. */
  readonly memory: WebAssembly.Memory | null;
  /** The block's pages: `size` bytes. */
  readonly bytes: Uint8Array;
  readonly dirty: DirtyBitmap;
  readonly #words: Int32Array;
  /** Same memory, for memcmp. */
  readonly #buf: Buffer;

  /** `sab` lets a caller (tests, a worker) wrap existing memory; by default fresh zeroed memory. */
  constructor(spec: RamBlockSpec, base: number, sab?: SharedArrayBuffer) {
    checkBlockSpec(spec);
    this.name = spec.name;
    this.size = spec.size;
    this.pages = spec.size / PAGE_SIZE;
    this.base = base;
    try {
      this.memory = sab ? null : allocate(spec.size);
      this.sab = sab ?? (this.memory ? sharedBuffer(this.memory) : new SharedArrayBuffer(spec.size));
    } catch (err) {
      throw new ConfigInvalidError(`cannot allocate ramblock '${spec.name}' of ${spec.size} bytes: ${(err as Error).message}`, {
        received: String(spec.size),
        cause: err,
      });
    }
    if (this.sab.byteLength < spec.size) {
      throw new InternalError(`ramblock '${spec.name}': buffer is ${this.sab.byteLength} bytes, expected ${spec.size}`);
    }
    this.bytes = new Uint8Array(this.sab, 0, spec.size);
    this.#words = new Int32Array(this.sab, 0, spec.size / 4);
    this.#buf = Buffer.from(this.sab, 0, spec.size);
    this.dirty = new DirtyBitmap(this.pages);
  }

  /** A 4 KiB view of page `index` (no copy). */
  page(index: number): Uint8Array {
    this.#check(index);
    return new Uint8Array(this.sab, index * PAGE_SIZE, PAGE_SIZE);
  }

  /**
   * True when every byte of the page is 0. Most non-zero pages differ in their first 32
   * bytes, checked inline; the rest is a memcmp against a zero page (several times faster
   * than a JS word loop over a whole zero page).
   */
  isZeroPage(index: number): boolean {
    this.#check(index);
    const w = this.#words;
    const i = index * PAGE_WORDS;
    if ((w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7]) !== 0) return false;
    const off = index * PAGE_SIZE;
    return this.#buf.compare(ZERO_PAGE, 0, PAGE_SIZE, off, off + PAGE_SIZE) === 0;
  }

  #check(index: number): void {
    if (!(index >= 0 && index < this.pages) || !Number.isInteger(index)) {
      throw new InternalError(`ramblock '${this.name}': page ${index} out of range 0..${this.pages - 1}`);
    }
  }
}

/** A shared wasm memory with the hash reserve after `size` bytes, when that fits in 4 GiB. */
function allocate(size: number): WebAssembly.Memory | null {
  const bytes = size + HASH_RESERVE_BYTES;
  if (bytes > MAX_WASM_MEMORY_BYTES) return null;
  const pages = Math.ceil(bytes / 65536);
  return new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
}

function sharedBuffer(memory: WebAssembly.Memory): SharedArrayBuffer {
  const buf: unknown = memory.buffer;
  if (!(buf instanceof SharedArrayBuffer)) throw new InternalError('a shared wasm memory without a SharedArrayBuffer');
  return buf;
}

/** Largest name that fits QEMU's NUL-terminated char[256] ramblock field. */
export const MAX_RAMBLOCK_NAME_BYTES = RAMBLOCK_NAME_SIZE - 1;

export function checkBlockSpec(spec: RamBlockSpec): void {
  if (!spec || typeof spec !== 'object') {
    throw new ConfigInvalidError('expected a ramblock {name, size}', { received: String(spec) });
  }
  const { name, size } = spec;
  if (typeof name !== 'string' || name.length === 0 || name.includes('\0')) {
    throw new ConfigInvalidError(`ramblock name must be a non-empty string without NUL, received ${JSON.stringify(name)}`, {
      expected: 'a non-empty name',
      received: String(name),
    });
  }
  const nameBytes = new TextEncoder().encode(name).length;
  if (nameBytes > MAX_RAMBLOCK_NAME_BYTES) {
    throw new ConfigInvalidError(`ramblock name '${name.slice(0, 32)}…' is ${nameBytes} bytes, at most ${MAX_RAMBLOCK_NAME_BYTES} fit`, {
      expected: `at most ${MAX_RAMBLOCK_NAME_BYTES} bytes`,
      received: String(nameBytes),
    });
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0 || size % PAGE_SIZE !== 0) {
    throw new ConfigInvalidError(`ramblock '${name}': size must be a positive multiple of ${PAGE_SIZE} bytes, received ${size}`, {
      expected: `a positive multiple of ${PAGE_SIZE}`,
      received: String(size),
    });
  }
}

/** Validates a layout (at least one block, names unique) and allocates it, bases in order. */
export function allocateBlocks(specs: readonly RamBlockSpec[]): RamBlock[] {
  if (!Array.isArray(specs) || specs.length === 0) {
    throw new ConfigInvalidError('a guest needs at least one ramblock', { expected: 'one or more ramblocks', received: '0' });
  }
  const seen = new Set<string>();
  for (const s of specs) {
    checkBlockSpec(s);
    if (seen.has(s.name)) {
      throw new ConfigInvalidError(`ramblock name '${s.name}' appears twice`, { expected: 'unique ramblock names', received: s.name });
    }
    seen.add(s.name);
  }
  const blocks: RamBlock[] = [];
  let base = 0;
  for (const s of specs) {
    blocks.push(new RamBlock({ name: s.name, size: s.size }, base));
    base += s.size;
  }
  if (!Number.isSafeInteger(base)) throw new ConfigInvalidError('total guest RAM is too large', { received: String(base) });
  return blocks;
}
