import assert from 'node:assert/strict';
import { randomFillSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { fullDigest } from './digest';
import { Populator } from './populate';
import { allocateBlocks } from './ram';

describe('Populator', () => {
  it('faults pages in without changing a byte, whichever write comes first', async () => {
    const blocks = allocateBlocks([
      { name: 'pc.ram', size: 64 << 20 },
      { name: 'vga.vram', size: 1 << 20 },
    ]);
    const [ram, vram] = blocks;
    // Pages written before and while the populator runs, as a receiver would.
    randomFillSync(ram.bytes, 0, 8 << 20);
    const pop = new Populator(blocks);
    randomFillSync(ram.bytes, 32 << 20, 8 << 20);
    randomFillSync(vram.bytes);
    const expected = await fullDigest(blocks);
    await pop.exited;
    assert.equal(await fullDigest(blocks), expected);
    assert.ok(ram.bytes.subarray(16 << 20, 24 << 20).every((b) => b === 0), 'untouched pages stay zero');
  });

  it('stop() ends the worker before it has faulted the block in; calling it again is harmless', async () => {
    const blocks = allocateBlocks([{ name: 'pc.ram', size: 1 << 30 }]);
    const rssBefore = process.memoryUsage().rss;
    const pop = new Populator(blocks);
    pop.stop();
    pop.stop();
    await pop.exited;
    // Run to the end it would have made 1 GiB resident; stopped, it looks at the flag first.
    const grew = process.memoryUsage().rss - rssBefore;
    assert.ok(grew < 256 << 20, `RSS grew ${grew >> 20} MiB`);
  });

  it('without stop() it makes the whole block resident', async () => {
    const blocks = allocateBlocks([{ name: 'pc.ram', size: 256 << 20 }]);
    const rssBefore = process.memoryUsage().rss;
    await new Populator(blocks).exited;
    const grew = process.memoryUsage().rss - rssBefore;
    assert.ok(grew > 200 << 20, `RSS grew ${grew >> 20} MiB`);
  });
});
