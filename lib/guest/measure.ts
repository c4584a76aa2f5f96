/**
 * Prints (does not assert) how long the guest's bulk operations take:
 *   node --import tsx lib/guest/measure.ts [GiB=1]
 */
import { PageHashes } from './digest';
import { Guest } from './guest';
import { formatBytes, GiB } from './units';

const size = Number(process.argv[2] ?? 1) * GiB;
const ms = (t: number): string => `${(performance.now() - t).toFixed(1)} ms`;

let t = performance.now();
const g = await Guest.create({ ramSize: size, fill: 'random' });
console.log(`Guest.create fill random ${formatBytes(size)}: ${ms(t)}`);

t = performance.now();
const hashes = await PageHashes.create(g.blocks);
console.log(`PageHashes.create: ${ms(t)}`);
t = performance.now();
hashes.hashAll();
console.log(`PageHashes.hashAll ${formatBytes(size)}: ${ms(t)}`);
for (let i = 0; i < 3; i++) {
  t = performance.now();
  hashes.digest();
  console.log(`digest() ${formatBytes(size)}: ${ms(t)}`);
}

const b = g.blocks[0];
t = performance.now();
let zero = 0;
for (let p = 0; p < b.pages; p++) if (b.isZeroPage(p)) zero++;
console.log(`isZeroPage over ${formatBytes(size)} of random pages: ${ms(t)} (${zero} zero)`);
const z = Guest.incoming({ uuid: g.uuid, blocks: [{ name: 'pc.ram', size: 64 << 20 }] });
z.blocks[0].bytes.fill(0);
t = performance.now();
zero = 0;
for (let p = 0; p < z.blocks[0].pages; p++) if (z.blocks[0].isZeroPage(p)) zero++;
console.log(`isZeroPage over 64 MiB of zero pages: ${ms(t)} (${zero} zero)`);

b.dirty.setAll();
const words = new Uint32Array(b.dirty.wordCount);
t = performance.now();
const n = b.dirty.take(words);
console.log(`dirty.take over ${b.pages} pages, all set: ${ms(t)} (${n})`);
t = performance.now();
b.dirty.take(words);
console.log(`dirty.take, none set: ${ms(t)}`);

g.workload = { kind: 'random', rate: 0 };
await g.start();
await new Promise((r) => setTimeout(r, 1000));
await g.pause();
console.log(`random:max for 1 s dirtied ${formatBytes(g.stats().bytesDirtied)}`);
await g.stop();
await z.stop();
