import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeDeviceState, DEVICE_STATE_SIZE, encodeDeviceState, type DeviceState } from './device';

const MiB = 1 << 20;
const CONFIG_INVALID = { code: 'MIGRATION_CONFIG_INVALID' };

const states: DeviceState[] = [
  { workload: { kind: 'idle' }, ramSize: 16 * MiB, rng: [1, 2, 3, 4], cursor: 0, bytesDirtied: 0 },
  { workload: { kind: 'random', rate: 64 * MiB }, ramSize: 16 * MiB, rng: [0xffffffff, 0, 0, 0], cursor: 7, bytesDirtied: 4096 * 99 },
  { workload: { kind: 'random', rate: 0, workingSet: 4 * MiB }, ramSize: 16 * MiB, rng: [5, 6, 7, 8], cursor: 0, bytesDirtied: 2 ** 40 },
  { workload: { kind: 'hotset', size: MiB, rate: 3 }, ramSize: 16 * MiB, rng: [9, 9, 9, 9], cursor: 0, bytesDirtied: 4096 },
  { workload: { kind: 'sweep', rate: 100 }, ramSize: 16 * MiB, rng: [1, 0, 0, 0], cursor: 4095, bytesDirtied: 0 },
];

describe('device state codec', () => {
  for (const s of states) {
    it(`round-trips ${JSON.stringify(s.workload)}`, () => {
      const bytes = encodeDeviceState(s);
      assert.equal(bytes.byteLength, DEVICE_STATE_SIZE);
      assert.deepEqual(decodeDeviceState(bytes), s);
    });
  }

  it('starts with the magic MFDG and version 1, big-endian', () => {
    const bytes = encodeDeviceState(states[4]);
    assert.deepEqual([...bytes.subarray(0, 8)], [0x4d, 0x46, 0x44, 0x47, 1, 3, 0, 0]);
    assert.deepEqual([...bytes.subarray(8, 16)], [0, 0, 0, 0, 0, 0, 0, 100]);
  });

  const good = encodeDeviceState(states[1]);
  const corrupt = (off: number, value: number): Uint8Array => {
    const b = good.slice();
    b[off] = value;
    return b;
  };
  const garbage: [string, Uint8Array, RegExp][] = [
    ['empty', new Uint8Array(0), /length: expected 64 bytes, received 0 bytes/],
    ['too long', new Uint8Array(65), /length/],
    ['bad magic', corrupt(0, 0), /magic: expected 0x4d464447/],
    ['bad version', corrupt(4, 2), /version: expected 1, received 2/],
    ['bad kind', corrupt(5, 9), /workload kind: expected 0..3, received 9/],
    ['reserved set', corrupt(7, 1), /reserved/],
    ['ram size not a page multiple', corrupt(31, 1), /RAM size/],
    ['cursor past the end', corrupt(50, 0xff), /sweep cursor/],
    ['rate above 2^53', corrupt(8, 0xff), /rate: expected at most 2\^53-1/],
    ['hotset larger than RAM', encodeDeviceState({ ...states[3], workload: { kind: 'hotset', size: 32 * MiB, rate: 0 } }), /larger than guest RAM/],
    ['zero RNG', encodeDeviceState({ ...states[0], rng: [0, 0, 0, 0] }), /RNG/],
    ['random bytes', Uint8Array.from({ length: 64 }, (_, i) => (i * 37 + 11) & 0xff), /magic/],
  ];
  for (const [name, bytes, message] of garbage) {
    it(`refuses ${name} with MIGRATION_CONFIG_INVALID`, () => {
      assert.throws(() => decodeDeviceState(bytes), CONFIG_INVALID);
      assert.throws(() => decodeDeviceState(bytes), message);
    });
  }
  it('refuses non-bytes', () => {
    assert.throws(() => decodeDeviceState('hello' as unknown as Uint8Array), CONFIG_INVALID);
  });
});
