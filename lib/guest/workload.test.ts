import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatBytes, parseBytesPerSecond, parseRate, parseSize } from './units';
import { formatWorkload, parseWorkload, validateWorkload, type Workload } from './workload';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const CONFIG_INVALID = { code: 'MIGRATION_CONFIG_INVALID' };

describe('parseSize', () => {
  const ok: [string, number][] = [
    ['4096', 4096],
    ['0', 0],
    ['256MiB', 256 * MiB],
    ['1GiB', GiB],
    ['2G', 2 * GiB],
    ['2g', 2 * GiB],
    ['64K', 64 * KiB],
    ['64KB', 64 * KiB],
    ['1.5GiB', 1.5 * GiB],
    ['100B', 100],
    [' 8 MiB ', 8 * MiB],
    ['1TiB', 1024 * GiB],
  ];
  for (const [s, n] of ok) it(`'${s}' is ${n} bytes`, () => assert.equal(parseSize(s), n));
  for (const s of ['', 'abc', '-1', '1.5', '12XB', 'MiB', '1 2', '1e3', '0.3K', '99999999999999999999']) {
    it(`'${s}' is refused`, () => assert.throws(() => parseSize(s), CONFIG_INVALID));
  }
  it('says what was expected', () => {
    assert.throws(() => parseSize('lots'), /expected a size such as/);
  });
});

describe('parseRate (workloads: bare number is MiB/s)', () => {
  const ok: [string, number][] = [
    ['64', 64 * MiB],
    ['0.5', 512 * KiB],
    ['64MiB/s', 64 * MiB],
    ['64M/s', 64 * MiB],
    ['64MiB', 64 * MiB],
    ['1048576B/s', MiB],
    ['512KiB/s', 512 * KiB],
    ['1GiB/s', GiB],
    ['max', 0],
    ['MAX', 0],
    ['0', 0],
  ];
  for (const [s, n] of ok) it(`'${s}' is ${n} B/s`, () => assert.equal(parseRate(s), n));
  for (const s of ['', 'fast', '-5', '64MiB/h', '/s', '0.0000001']) {
    it(`'${s}' is refused`, () => assert.throws(() => parseRate(s), CONFIG_INVALID));
  }
});

describe('parseBytesPerSecond (bandwidth: bare number is bytes/s)', () => {
  const ok: [string, number][] = [
    ['1048576', MiB],
    ['64MiB/s', 64 * MiB],
    ['100', 100],
  ];
  for (const [s, n] of ok) it(`'${s}' is ${n} B/s`, () => assert.equal(parseBytesPerSecond(s), n));
  it("'max' is refused", () => assert.throws(() => parseBytesPerSecond('max'), CONFIG_INVALID));
});

describe('formatBytes', () => {
  const cases: [number, string][] = [
    [0, '0 B'],
    [100, '100 B'],
    [512 * KiB, '512 KiB'],
    [1.5 * GiB, '1.50 GiB'],
    [64 * MiB, '64 MiB'],
    [1536, '1.50 KiB'],
  ];
  for (const [n, s] of cases) it(`${n} is '${s}'`, () => assert.equal(formatBytes(n), s));
});

describe('parseWorkload / formatWorkload', () => {
  const table: [string, Workload, string][] = [
    ['idle', { kind: 'idle' }, 'idle'],
    ['random:64', { kind: 'random', rate: 64 * MiB }, 'random:64MiB/s'],
    ['random:64MiB/s:256MiB', { kind: 'random', rate: 64 * MiB, workingSet: 256 * MiB }, 'random:64MiB/s:256MiB'],
    ['random:max', { kind: 'random', rate: 0 }, 'random:max'],
    ['random:max:1G', { kind: 'random', rate: 0, workingSet: GiB }, 'random:max:1GiB'],
    ['hotset:16MiB', { kind: 'hotset', size: 16 * MiB, rate: 0 }, 'hotset:16MiB:max'],
    ['hotset:16MiB:8', { kind: 'hotset', size: 16 * MiB, rate: 8 * MiB }, 'hotset:16MiB:8MiB/s'],
    ['sweep', { kind: 'sweep', rate: 0 }, 'sweep'],
    ['sweep:100B/s', { kind: 'sweep', rate: 100 }, 'sweep:100B/s'],
    ['sweep:1.5', { kind: 'sweep', rate: 1.5 * MiB }, 'sweep:1536KiB/s'],
  ];
  for (const [text, w, canonical] of table) {
    it(`'${text}'`, () => {
      assert.deepEqual(parseWorkload(text), w);
      assert.equal(formatWorkload(w), canonical);
      assert.deepEqual(parseWorkload(canonical), w);
    });
  }
  const errors: [string, RegExp][] = [
    ['', /unknown workload/],
    ['busy', /unknown workload ''?busy'?: expected idle, random:RATE/],
    ['idle:5', /'idle' with no arguments/],
    ['random', /random:RATE\[:WORKING_SET\]/],
    ['random:fast', /rate: expected a rate/],
    ['random:64:0', /working set must be more than 0/],
    ['random:1:2:3', /random:RATE/],
    ['hotset', /hotset:SIZE\[:RATE\]/],
    ['hotset:big', /hotset size: expected a size/],
    ['sweep:1:2', /sweep\[:RATE\]/],
  ];
  for (const [text, message] of errors) {
    it(`'${text}' is refused with a message saying what was expected`, () => {
      assert.throws(() => parseWorkload(text), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'MIGRATION_CONFIG_INVALID');
        assert.match(err.message, message);
        return true;
      });
    });
  }
  it('validateWorkload checks sizes against RAM', () => {
    assert.throws(() => validateWorkload({ kind: 'hotset', size: 32 * MiB, rate: 0 }, 16 * MiB), /larger than guest RAM/);
    assert.throws(() => validateWorkload({ kind: 'sweep', rate: -1 }), CONFIG_INVALID);
    assert.throws(() => validateWorkload({ kind: 'nope' } as unknown as Workload), CONFIG_INVALID);
    assert.deepEqual(validateWorkload({ kind: 'random', rate: 5 }, 4096), { kind: 'random', rate: 5 });
  });
});
