import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DirtyBitmap, forEachSetBit, popcount32 } from './dirty';

describe('DirtyBitmap', () => {
  it('marks, tests and counts bits', () => {
    const d = new DirtyBitmap(100);
    assert.equal(d.wordCount, 4);
    assert.equal(d.count(), 0);
    for (const p of [0, 31, 32, 63, 99]) d.mark(p);
    d.mark(31); // twice is once
    assert.equal(d.count(), 5);
    assert.equal(d.isSet(31), true);
    assert.equal(d.isSet(30), false);
    assert.equal(d.isSet(99), true);
  });

  it('take() returns the words, the page count, and clears', () => {
    const d = new DirtyBitmap(100);
    for (const p of [0, 1, 31, 33, 99]) d.mark(p);
    const into = new Uint32Array(d.wordCount).fill(0xdeadbeef); // stale contents must be overwritten
    assert.equal(d.take(into), 5);
    assert.deepEqual([...into], [0x80000003, 0x2, 0, 1 << 3]);
    assert.equal(d.count(), 0);
    assert.equal(d.take(into), 0);
    assert.deepEqual([...into], [0, 0, 0, 0]);
    const pages: number[] = [];
    d.mark(64);
    d.mark(5);
    d.take(into);
    forEachSetBit(into, d.wordCount, (p) => pages.push(p));
    assert.deepEqual(pages, [5, 64]);
  });

  it('setAll() sets exactly `pages` bits; clear() clears them', () => {
    for (const pages of [1, 31, 32, 33, 100, 4096]) {
      const d = new DirtyBitmap(pages);
      d.setAll();
      assert.equal(d.count(), pages, `pages=${pages}`);
      assert.equal(d.isSet(pages - 1), true);
      const into = new Uint32Array(d.wordCount);
      assert.equal(d.take(into), pages);
      d.setAll();
      d.clear();
      assert.equal(d.count(), 0);
    }
  });

  it('shares its memory through the SharedArrayBuffer', () => {
    const a = new DirtyBitmap(64);
    const b = new DirtyBitmap(64, a.sab);
    a.mark(40);
    assert.equal(b.isSet(40), true);
    b.take(new Uint32Array(b.wordCount));
    assert.equal(a.count(), 0);
  });

  it('clearMarkedFrom() drops from a taken set the pages marked since, and only those', () => {
    const d = new DirtyBitmap(100);
    for (const p of [1, 2, 40, 99]) d.mark(p);
    const taken = new Uint32Array(d.wordCount);
    d.take(taken);
    d.mark(2);
    d.mark(99);
    d.mark(50); // dirty again but not in the taken set: nothing to drop
    assert.equal(d.clearMarkedFrom(taken), 2);
    const left: number[] = [];
    forEachSetBit(taken, d.wordCount, (p) => left.push(p));
    assert.deepEqual(left, [1, 40]);
    // The live bitmap is untouched: the dropped pages are still there for the next take.
    assert.equal(d.count(), 3);
    assert.equal(d.isSet(2) && d.isSet(99) && d.isSet(50), true);
    assert.equal(d.clearMarkedFrom(taken), 0);
  });

  it('rejects pages out of range', () => {
    const d = new DirtyBitmap(10);
    assert.throws(() => d.mark(10), { code: 'MIGRATION_INTERNAL' });
    assert.throws(() => d.isSet(-1), { code: 'MIGRATION_INTERNAL' });
  });

  it('popcount32 counts negative Int32 words', () => {
    assert.equal(popcount32(0), 0);
    assert.equal(popcount32(-1), 32);
    assert.equal(popcount32(0x80000001 | 0), 2);
    assert.equal(popcount32(0x0f0f0f0f), 16);
  });
});
