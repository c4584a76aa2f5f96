/**
 * `--inject chK:KIND[:ARG]` parsing (DESIGN 7.2): every kind, and a clear refusal otherwise.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseFault } from './faults';

describe('parseFault', () => {
  const ok: Array<[string, object]> = [
    ['ch3:uuid', { channel: 3, kind: 'uuid' }],
    ['ch0:dup', { channel: 0, kind: 'dup' }],
    ['ch1:id-4', { channel: 1, kind: 'id', n: 4 }],
    ['ch1:id-big', { channel: 1, kind: 'id-big' }],
    ['ch2:magic', { channel: 2, kind: 'magic' }],
    ['ch2:version', { channel: 2, kind: 'version' }],
    ['ch0:truncate', { channel: 0, kind: 'truncate', n: 20 }],
    ['ch0:truncate:40', { channel: 0, kind: 'truncate', n: 40 }],
    ['ch1:stall', { channel: 1, kind: 'stall' }],
    ['ch1:drop:65536', { channel: 1, kind: 'drop', n: 65536 }],
    ['ch3:slow:1048576', { channel: 3, kind: 'slow', n: 1048576 }],
    ['ch0:bad-header:normal_pages', { channel: 0, kind: 'bad-header', field: 'normal_pages' }],
    ['ch0:bad-header:offset', { channel: 0, kind: 'bad-header', field: 'offset' }],
    ['ch0:bad-header:ramblock', { channel: 0, kind: 'bad-header', field: 'ramblock' }],
    ['ch0:bad-header:short-payload', { channel: 0, kind: 'bad-header', field: 'short-payload' }],
  ];
  for (const [spec, want] of ok) {
    it(`${spec}`, () => assert.deepEqual(parseFault(spec, 4), want));
  }

  const bad: Array<[string, RegExp]> = [
    ['ch4:uuid', /channel 4 does not exist/],
    ['3:uuid', /expected chK:KIND/],
    ['ch1:wat', /unknown fault/],
    ['ch1:uuid:7', /unknown fault/],
    ['ch1:drop', /drop takes/],
    ['ch1:drop:-5', /whole number/],
    ['ch1:slow', /slow takes/],
    ['ch1:slow:0', /from 1 to/],
    ['ch0:drop:999999999999999999999', /whole number from 0 to 1099511627776/],
    ['ch1:slow:1e9', /whole number/],
    ['ch0:truncate:64', /from 0 to 63/],
    ['ch0:truncate:99999', /from 0 to 63/],
    ['ch0:id-256', /0 to 255/],
    ['ch1:bad-header:flags', /bad-header takes one of/],
    ['ch1:truncate:x', /whole number/],
  ];
  for (const [spec, says] of bad) {
    it(`refuses ${spec}`, () => {
      assert.throws(
        () => parseFault(spec, 4),
        (err: { code?: string; message?: string }) => err.code === 'MIGRATION_CONFIG_INVALID' && says.test(err.message ?? ''),
      );
    });
  }
});
