/**
 * The dirty log: one bit per page, bit (page & 31) of word (page >> 5), in an Int32Array
 * over a SharedArrayBuffer that the workload worker marks concurrently.
 *
 * Who writes: the worker sets bits (Atomics.or) after it has written the page; the
 * migration takes them (Atomics.exchange to 0) at the start of each round. Because the
 * worker writes before it marks, a page taken here has its writes visible to the taker,
 * and a write that lands after the take re-marks the page for the next round.
 */
import { InternalError } from '../errors/index';

export class DirtyBitmap {
  readonly pages: number;
  readonly wordCount: number;
  readonly sab: SharedArrayBuffer;
  readonly #words: Int32Array;
  /** Valid bits of the last word (all ones when pages is a multiple of 32). */
  readonly #lastMask: number;

  constructor(pages: number, sab?: SharedArrayBuffer) {
    if (!Number.isSafeInteger(pages) || pages < 0) throw new InternalError(`dirty bitmap: bad page count ${pages}`);
    this.pages = pages;
    this.wordCount = Math.ceil(pages / 32);
    const bytes = this.wordCount * 4;
    if (sab !== undefined && sab.byteLength < bytes) {
      throw new InternalError(`dirty bitmap: buffer of ${sab.byteLength} bytes is too small for ${pages} pages`);
    }
    this.sab = sab ?? new SharedArrayBuffer(bytes);
    this.#words = new Int32Array(this.sab, 0, this.wordCount);
    const rem = pages & 31;
    this.#lastMask = rem === 0 ? -1 : (1 << rem) - 1;
  }

  mark(page: number): void {
    this.#check(page);
    Atomics.or(this.#words, page >>> 5, 1 << (page & 31));
  }

  isSet(page: number): boolean {
    this.#check(page);
    return (Atomics.load(this.#words, page >>> 5) & (1 << (page & 31))) !== 0;
  }

  /** Number of set bits. A snapshot: the worker may be marking meanwhile. */
  count(): number {
    const w = this.#words;
    let n = 0;
    for (let i = 0; i < w.length; i++) {
      const v = w[i];
      if (v !== 0) n += popcount32(v);
    }
    return n;
  }

  setAll(): void {
    if (this.wordCount === 0) return;
    this.#words.fill(-1);
    this.#words[this.wordCount - 1] = this.#lastMask;
  }

  clear(): void {
    this.#words.fill(0);
  }

  /**
   * Fetch-and-clear every word into `into` (wordCount words, caller-owned and reused);
   * returns the number of pages taken. Words read as 0 are not exchanged: a bit set
   * after that read belongs to the next take either way.
   */
  take(into: Uint32Array): number {
    if (into.length < this.wordCount) {
      throw new InternalError(`dirty bitmap: take() needs ${this.wordCount} words, got ${into.length}`);
    }
    const w = this.#words;
    let n = 0;
    for (let i = 0; i < w.length; i++) {
      // A plain read is enough to skip a word: it is only a hint, the exchange decides.
      if (w[i] === 0) {
        into[i] = 0;
        continue;
      }
      const v = Atomics.exchange(w, i, 0);
      into[i] = v;
      n += popcount32(v);
    }
    return n;
  }

  /**
   * Clears from `words` (a bitmap taken earlier, caller-owned) every page marked here since
   * that take; returns how many it cleared. Those pages are dirty again: the next take (a
   * later round, or the final pass) sends them, so sending them from `words` as well would
   * send them twice. Bits only get set here between takes, so a bit seen set stays set
   * until the next take: a page cleared from `words` cannot be lost.
   */
  clearMarkedFrom(words: Uint32Array): number {
    const w = this.#words;
    let n = 0;
    for (let i = 0; i < w.length; i++) {
      const mine = words[i];
      if (mine === 0) continue;
      const marked = Atomics.load(w, i);
      const gone = mine & marked;
      if (gone === 0) continue;
      words[i] = mine & ~marked;
      n += popcount32(gone);
    }
    return n;
  }

  #check(page: number): void {
    if (!(page >= 0 && page < this.pages) || !Number.isInteger(page)) {
      throw new InternalError(`dirty bitmap: page ${page} out of range 0..${this.pages - 1}`);
    }
  }
}

/** Set bits in a 32-bit word (works for negative Int32 values too). */
export function popcount32(v: number): number {
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

/** Calls fn(page) for every set bit of a taken bitmap, in page order. */
export function forEachSetBit(words: Uint32Array, wordCount: number, fn: (page: number) => void): void {
  for (let i = 0; i < wordCount; i++) {
    let v = words[i];
    while (v !== 0) {
      const bit = 31 - Math.clz32(v & -v);
      fn(i * 32 + bit);
      v &= v - 1;
    }
  }
}
