import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allocateBlocks, RamBlock } from './ram';

describe('RamBlock', () => {
  it('isZeroPage finds a single non-zero byte anywhere in the page, and only in that page', () => {
    const b = new RamBlock({ name: 'pc.ram', size: 4 * 4096 }, 0);
    for (const at of [0, 7, 31, 32, 2048, 4095]) {
      b.bytes[4096 + at] = at === 7 ? 0x80 : 1; // 0x80 at byte 7: the bits of -0.0, equal to 0 as a double
      assert.equal(b.isZeroPage(1), false, `byte ${at}`);
      assert.equal(b.isZeroPage(0), true);
      assert.equal(b.isZeroPage(2), true);
      b.bytes[4096 + at] = 0;
      assert.equal(b.isZeroPage(1), true);
    }
    assert.throws(() => b.isZeroPage(4), { code: 'MIGRATION_INTERNAL' });
  });

  it('page() is a 4 KiB view of the block, not a copy', () => {
    const b = new RamBlock({ name: 'pc.ram', size: 2 * 4096 }, 0);
    const p = b.page(1);
    assert.equal(p.byteLength, 4096);
    p[5] = 9;
    assert.equal(b.bytes[4096 + 5], 9);
  });

  it('allocateBlocks places blocks one after the other and gives each its dirty bitmap', () => {
    const [a, c] = allocateBlocks([
      { name: 'a', size: 3 * 4096 },
      { name: 'c', size: 4096 },
    ]);
    assert.equal(a.base, 0);
    assert.equal(c.base, 3 * 4096);
    assert.equal(a.pages, 3);
    assert.equal(a.dirty.pages, 3);
    assert.notEqual(a.sab, c.sab);
  });

  it('refuses names too long for the wire and sizes that are not whole pages', () => {
    assert.throws(() => allocateBlocks([{ name: 'x'.repeat(256), size: 4096 }]), { code: 'MIGRATION_CONFIG_INVALID' });
    allocateBlocks([{ name: 'x'.repeat(255), size: 4096 }]);
    assert.throws(() => allocateBlocks([{ name: 'a', size: 0 }]), /positive multiple of 4096/);
  });
});
