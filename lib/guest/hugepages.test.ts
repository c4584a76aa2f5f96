/**
 * Huge-page advice for guest RAM: given on Linux, harmless to the bytes.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { adviseHugePages, hugePagesStatus } from './hugepages';

const thpMode = (() => {
  try {
    return /\[(\w+)\]/.exec(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))?.[1] ?? 'absent';
  } catch {
    return 'absent';
  }
})();

describe('adviseHugePages', () => {
  it('advises the 2 MiB-aligned part of a fresh buffer where the kernel has THP', { skip: thpMode === 'never' || thpMode === 'absent' ? `THP ${thpMode}` : false }, () => {
    const sab = new SharedArrayBuffer(16 * 1024 * 1024);
    const advised = adviseHugePages(sab);
    assert.equal(hugePagesStatus(), 'on');
    // at most one 2 MiB page lost to alignment
    assert.ok(advised >= 14 * 1024 * 1024 && advised <= 16 * 1024 * 1024, `advised ${advised}`);
    assert.equal(advised % (2 * 1024 * 1024), 0);
  });

  it('leaves contents and small buffers alone', () => {
    const sab = new SharedArrayBuffer(8 * 1024 * 1024);
    const u8 = new Uint8Array(sab);
    for (let i = 0; i < u8.length; i += 4093) u8[i] = i & 0xff;
    adviseHugePages(sab);
    for (let i = 0; i < u8.length; i += 4093) assert.equal(u8[i], i & 0xff);
    assert.equal(adviseHugePages(new SharedArrayBuffer(4096)), 0);
  });
});
