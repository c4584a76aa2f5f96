// Fills parts of guest RAM with random bytes, then exits. Several run at once for a large
// guest: first-touch page faults, not the random generator, dominate the cost of a fill.
//
// workerData: { pieces: [{ sab, offset, length }] }
import { randomFillSync } from 'node:crypto';
import { workerData } from 'node:worker_threads';

const CHUNK = 1 << 20;
for (const { sab, offset, length } of workerData.pieces) {
  const bytes = new Uint8Array(sab, offset, length);
  for (let o = 0; o < length; o += CHUNK) randomFillSync(bytes, o, Math.min(CHUNK, length - o));
}
