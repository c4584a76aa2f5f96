import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import {
  bytesToUuid,
  checkHandshake,
  claimedChannelId,
  decodeHandshake,
  encodeHandshake,
  uuidToBytes,
  type Handshake,
  type HandshakeExpectation,
} from './handshake';
import { hex, splits, throwsCode } from './test-support';

const QEMU_UUID = '5e1ec7ed-0000-4000-8000-00000000c0de';
const OTHER_UUID = '7c9e6679-7425-40de-944b-e07fc1f90ae7';
const PEER = '127.0.0.1:51234';

interface Fixture {
  name: string;
  bytes: string;
  decoded: Handshake;
  encode: Parameters<typeof encodeHandshake>[0];
}

const FIXTURES: Fixture[] = [
  {
    name: 'QEMU 7.2 channel 2 (first bytes of ch-1.bin)',
    bytes: `11223344 00000001                  # magic, version
            5e1ec7ed 00004000 80000000 0000c0de # uuid
            02 00*39                          # id, reserved`,
    decoded: { magic: 0x11223344, version: 1, uuid: new Uint8Array(hex('5e1ec7ed00004000800000000000c0de')), id: 2 },
    encode: { uuid: QEMU_UUID, id: 2 },
  },
  {
    name: 'channel 254, uuid given as bytes',
    bytes: `11223344 00000001 7c9e6679 742540de 944be07f c1f90ae7 fe 00*39`,
    decoded: { magic: 0x11223344, version: 1, uuid: new Uint8Array(hex('7c9e6679742540de944be07fc1f90ae7')), id: 254 },
    encode: { uuid: new Uint8Array(hex('7c9e6679742540de944be07fc1f90ae7')), id: 254 },
  },
  {
    name: 'structure only: foreign magic, version 7, all-ones uuid still decode',
    bytes: `5145564d 00000007 ff*16 00 00*39`,
    decoded: { magic: 0x5145564d, version: 7, uuid: new Uint8Array(16).fill(0xff), id: 0 },
    encode: { uuid: new Uint8Array(16).fill(0xff), id: 0, magic: 0x5145564d, version: 7 },
  },
];

describe('handshake codec', () => {
  for (const f of FIXTURES) {
    it(`decodes ${f.name}`, () => {
      assert.deepEqual(decodeHandshake(hex(f.bytes)), f.decoded);
    });
    it(`encodes ${f.name}`, () => {
      assert.deepEqual(encodeHandshake(f.encode), hex(f.bytes));
    });
    it(`${f.name}: every prefix claims the id only once byte 24 is in, and is short until 64`, () => {
      const bytes = hex(f.bytes);
      for (const [label, chunks] of splits(bytes)) {
        // The engine accumulates what arrived; every stage must be readable the same way.
        let got = new Uint8Array(0);
        for (const chunk of chunks) {
          got = Buffer.concat([got, chunk]);
          assert.equal(claimedChannelId(got), got.length > 24 ? f.decoded.id : null, label);
          if (got.length < 64) throwsCode(() => decodeHandshake(got), 'MIGRATION_CHANNEL_SHORT_HANDSHAKE');
        }
        assert.deepEqual(decodeHandshake(got), f.decoded, label);
      }
    });
  }

  it('ignores reserved bytes on receive and reads only the first 64 bytes', () => {
    const bytes = hex(`11223344 00000001 5e1ec7ed 00004000 80000000 0000c0de 03 ab*39 11223344`);
    assert.deepEqual(decodeHandshake(bytes), { magic: 0x11223344, version: 1, uuid: uuidToBytes(QEMU_UUID), id: 3 });
  });

  it('returns a uuid copy, not a view of the input', () => {
    const bytes = hex(`11223344 00000001 5e1ec7ed 00004000 80000000 0000c0de 03 00*39`);
    const h = decodeHandshake(bytes);
    bytes.fill(0);
    assert.equal(bytesToUuid(h.uuid), QEMU_UUID);
    assert.equal(Object.getPrototypeOf(h.uuid), Uint8Array.prototype);
  });

  it('converts uuids both ways, any version nibble, and refuses non-canonical text', () => {
    assert.deepEqual(uuidToBytes(QEMU_UUID), new Uint8Array(hex('5e1ec7ed00004000800000000000c0de')));
    assert.equal(bytesToUuid(uuidToBytes(OTHER_UUID.toUpperCase())), OTHER_UUID);
    assert.equal(bytesToUuid(new Uint8Array(16)), '00000000-0000-0000-0000-000000000000');
    assert.equal(bytesToUuid(new Uint8Array(hex('00112233445566778899aabbccddeeff'))), '00112233-4455-6677-8899-aabbccddeeff');
    throwsCode(() => uuidToBytes('5e1ec7ed00004000800000000000c0de'), 'MIGRATION_CONFIG_INVALID');
    throwsCode(() => uuidToBytes(`${QEMU_UUID}0`), 'MIGRATION_CONFIG_INVALID');
  });

  it('refuses to encode what the 64 bytes cannot hold', () => {
    assert.throws(() => encodeHandshake({ uuid: new Uint8Array(15), id: 0 }), RangeError);
    assert.throws(() => encodeHandshake({ uuid: QEMU_UUID, id: 256 }), RangeError);
  });
});

describe('handshake validation (DESIGN 3.1 order)', () => {
  const good = (over: Partial<Handshake> = {}): Handshake => ({
    magic: 0x11223344,
    version: 1,
    uuid: uuidToBytes(QEMU_UUID),
    id: 3,
    ...over,
  });
  const expect4: HandshakeExpectation = { uuid: uuidToBytes(QEMU_UUID), channels: 4, isTaken: () => false };
  const ctx = { peer: PEER, connection: 7 };

  it('accepts a good handshake, and checks nothing it was not told', () => {
    assert.equal(checkHandshake(good(), expect4, ctx), null);
    assert.equal(checkHandshake(good({ uuid: uuidToBytes(OTHER_UUID), id: 200 }), { uuid: null, channels: null }, ctx), null);
  });

  it('bad magic: no channel (the bytes are not trusted), hex expected/received, named when known', () => {
    const err = checkHandshake(good({ magic: 0x5145564d, version: 9, id: 9 }), expect4, ctx)!;
    assert.equal(err.code, 'MIGRATION_CHANNEL_BAD_MAGIC');
    assert.equal(err.channel, null);
    assert.equal(err.connection, 7);
    assert.equal(err.peer, PEER);
    assert.equal(err.expected, '0x11223344');
    assert.equal(err.received, '0x5145564d');
    assert.match(err.message, /^connection #7 from 127\.0\.0\.1:51234: received magic 0x5145564d \("QEVM", QEMU/);
  });

  it('bad version: the claimed channel, numbers', () => {
    const err = checkHandshake(good({ version: 7, uuid: uuidToBytes(OTHER_UUID) }), expect4, ctx)!;
    assert.equal(err.code, 'MIGRATION_CHANNEL_BAD_VERSION');
    assert.equal(err.channel, 3);
    assert.equal(err.expected, '1');
    assert.equal(err.received, '7');
    assert.match(err.message, /^channel 3 from 127\.0\.0\.1:51234: received handshake version 7 /);
  });

  it('uuid mismatch: full canonical uuids, expected vs received', () => {
    const received = '5e1ec7ed-0000-4000-8000-00000000c0df';
    const err = checkHandshake(good({ uuid: uuidToBytes(received), id: 9 }), expect4, ctx)!;
    assert.equal(err.code, 'MIGRATION_CHANNEL_UUID_MISMATCH');
    assert.equal(err.channel, 9);
    assert.equal(err.expected, QEMU_UUID);
    assert.equal(err.received, received);
    assert.equal(err.message, `channel 9 from ${PEER}: received uuid ${received} but this migration is ${QEMU_UUID}`);
  });

  it('id == channels is out of range (QEMU checks id > channels, off by one)', () => {
    const err = checkHandshake(good({ id: 4 }), expect4, ctx)!;
    assert.equal(err.code, 'MIGRATION_CHANNEL_ID_OUT_OF_RANGE');
    assert.equal(err.channel, 4);
    assert.equal(err.expected, '0..3');
    assert.equal(err.received, '4');
  });

  it('id > channels is out of range', () => {
    const err = checkHandshake(good({ id: 200 }), expect4, ctx)!;
    assert.equal(err.code, 'MIGRATION_CHANNEL_ID_OUT_OF_RANGE');
    assert.equal(err.channel, 200);
    assert.match(err.message, /^channel 200 from .*: received channel id 200 but this migration has 4 channels \(ids 0\.\.3\)$/);
  });

  it('duplicate id, checked last', () => {
    const taken = new Set([3]);
    const exp = { ...expect4, isTaken: (id: number) => taken.has(id) };
    const err = checkHandshake(good(), exp, ctx)!;
    assert.equal(err.code, 'MIGRATION_CHANNEL_ID_DUPLICATE');
    assert.equal(err.channel, 3);
    assert.equal(err.received, '3');
    // an out-of-range id that is also "taken" reports the range first
    taken.add(5);
    assert.equal(checkHandshake(good({ id: 5 }), exp, ctx)!.code, 'MIGRATION_CHANNEL_ID_OUT_OF_RANGE');
  });

  it('short handshake: channel null before byte 24, the claimed id after', () => {
    const full = hex(`11223344 00000001 5e1ec7ed 00004000 80000000 0000c0de 02 00*39`);
    const early = throwsCode(() => decodeHandshake(full.subarray(0, 20), ctx), 'MIGRATION_CHANNEL_SHORT_HANDSHAKE', {
      channel: null,
      connection: 7,
      peer: PEER,
      expected: '64 bytes',
      received: '20 bytes',
    });
    assert.match(early.message, /^connection #7 from 127\.0\.0\.1:51234: connection closed after 20 of the 64 handshake bytes$/);
    throwsCode(() => decodeHandshake(full.subarray(0, 24), ctx), 'MIGRATION_CHANNEL_SHORT_HANDSHAKE', { channel: null });
    const late = throwsCode(() => decodeHandshake(full.subarray(0, 25), ctx), 'MIGRATION_CHANNEL_SHORT_HANDSHAKE', { channel: 2 });
    assert.match(late.message, /^channel 2 from /);
    throwsCode(() => decodeHandshake(new Uint8Array(0)), 'MIGRATION_CHANNEL_SHORT_HANDSHAKE', { channel: null });
    // a foreign magic does not get its byte 24 believed
    throwsCode(() => decodeHandshake(hex('47455420 2f20 00*30')), 'MIGRATION_CHANNEL_SHORT_HANDSHAKE', { channel: null });
  });
});
