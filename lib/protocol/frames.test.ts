import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import {
  FrameDecoder,
  FrameType,
  checkPreamble,
  decodeJsonPayload,
  encodeFrame,
  encodeJsonFrame,
  encodePreamble,
  frameTypeName,
  type Frame,
} from './frames';
import { classifyConnection, describeMagic } from './magic';
import { hex, splits, throwsCode } from './test-support';

interface FrameFixture {
  name: string;
  bytes: string;
  type: number;
  /** JSON frames: the value; binary frames: undefined. */
  json?: unknown;
  payload: string;
}

const FRAMES: FrameFixture[] = [
  {
    name: 'HelloAck {}',
    bytes: '00000003 80 7b7d',
    type: FrameType.HelloAck,
    json: {},
    payload: '7b7d',
  },
  {
    name: 'RoundStart {"round":1}',
    bytes: '0000000c 02 7b22726f756e64223a317d',
    type: FrameType.RoundStart,
    json: { round: 1 },
    payload: '7b22726f756e64223a317d',
  },
  {
    name: 'Verified {"digest":"0123456789abcdef"}',
    bytes: '0000001e 84 7b22646967657374223a2230313233343536373839616263646566227d',
    type: FrameType.Verified,
    json: { digest: '0123456789abcdef' },
    payload: '7b22646967657374223a2230313233343536373839616263646566227d',
  },
  {
    name: 'Abort with a non-ASCII message (length counts UTF-8 bytes)',
    bytes: `00000034 06 7b22636f6465223a224d4947524154494f4e5f4449474553545f4d49534d41544348222c
            226d657373616765223a22c3a9227d`,
    type: FrameType.Abort,
    json: { code: 'MIGRATION_DIGEST_MISMATCH', message: 'é' },
    payload: '7b22636f6465223a224d4947524154494f4e5f4449474553545f4d49534d41544348222c226d657373616765223a22c3a9227d',
  },
  {
    name: 'Hello',
    bytes: `000000ab 01
            7b2275756964223a2235653165633765642d303030302d343030302d383030302d303030303030303063306465222c
            226d6967726174696f6e4964223a226d31222c226368616e6e656c73223a342c227061676553697a65223a343039362c
            22736c6f7473223a3132382c22636f6d7072657373696f6e223a226e6f6e65222c
            22626c6f636b73223a5b7b226e616d65223a226d656d222c2273697a65223a36373130383836347d5d7d`,
    type: FrameType.Hello,
    json: {
      uuid: '5e1ec7ed-0000-4000-8000-00000000c0de',
      migrationId: 'm1',
      channels: 4,
      pageSize: 4096,
      slots: 128,
      compression: 'none',
      blocks: [{ name: 'mem', size: 67108864 }],
    },
    payload: `7b2275756964223a2235653165633765642d303030302d343030302d383030302d303030303030303063306465222c
              226d6967726174696f6e4964223a226d31222c226368616e6e656c73223a342c227061676553697a65223a343039362c
              22736c6f7473223a3132382c22636f6d7072657373696f6e223a226e6f6e65222c
              22626c6f636b73223a5b7b226e616d65223a226d656d222c2273697a65223a36373130383836347d5d7d`,
  },
  {
    name: 'DeviceState, binary',
    bytes: '00000005 04 00ff10fe',
    type: FrameType.DeviceState,
    payload: '00ff10fe',
  },
  {
    name: 'a type-only frame of a type we do not know (passed through)',
    bytes: '00000001 42',
    type: 0x42,
    payload: '',
  },
];

const decoded = (f: FrameFixture): Frame => ({ type: f.type, payload: hex(f.payload) });

describe('main channel frame codec', () => {
  for (const f of FRAMES) {
    it(`encodes ${f.name}`, () => {
      const bytes = f.json === undefined ? encodeFrame(f.type, hex(f.payload)) : encodeJsonFrame(f.type, f.json);
      assert.deepEqual(bytes, hex(f.bytes));
    });
    it(`decodes ${f.name}, split at every byte and one byte at a time`, () => {
      for (const [label, chunks] of splits(hex(f.bytes))) {
        const d = new FrameDecoder();
        const frames = chunks.flatMap((c) => d.push(c));
        d.end();
        assert.deepEqual(frames, [decoded(f)], label);
        assert.equal(d.buffered, 0, label);
        if (f.json !== undefined) assert.deepEqual(decodeJsonPayload(frames[0]), f.json, label);
      }
    });
  }

  it('decodes a preamble and every fixture back to back, any chunking', () => {
    const stream = Buffer.concat([hex('4d464443 00000001'), ...FRAMES.map((f) => hex(f.bytes))]);
    for (const [label, chunks] of splits(stream)) {
      const d = new FrameDecoder(undefined, { preamble: true });
      const frames = chunks.flatMap((c) => d.push(c));
      d.end();
      assert.deepEqual(frames, FRAMES.map(decoded), label);
    }
  });

  it('hands out payloads the caller owns (one copy, not a view of the input)', () => {
    const input = hex('00000005 04 01020304');
    const d = new FrameDecoder();
    const [frame] = d.push(input);
    input.fill(0);
    assert.deepEqual(frame.payload, hex('01020304'));
  });

  it('holds no more than the frame under way', () => {
    const d = new FrameDecoder();
    assert.deepEqual(d.push(hex('00000005 04 0102')), []);
    assert.equal(d.buffered, 7);
    assert.equal(d.push(hex('0304 000000')).length, 1);
    assert.equal(d.buffered, 3);
  });

  it('names frame types', () => {
    assert.equal(frameTypeName(FrameType.ChannelRejected), 'ChannelRejected');
    assert.equal(frameTypeName(0x42), '0x42');
  });

  it('refuses to encode a frame over 16 MiB or a type that is not a byte', () => {
    assert.throws(() => encodeFrame(FrameType.DeviceState, new Uint8Array(16 * 1024 * 1024)), RangeError);
    assert.doesNotThrow(() => encodeFrame(FrameType.DeviceState, new Uint8Array(16 * 1024 * 1024 - 1)));
    assert.throws(() => encodeFrame(256, new Uint8Array(0)), RangeError);
    assert.throws(() => encodeJsonFrame(FrameType.Hello, undefined), TypeError);
  });
});

describe('main channel frame errors', () => {
  const where = { peer: '10.0.0.2:4444', connection: 1 };

  it('rejects length 0xffffffff from the 5-byte header alone, before allocating', () => {
    const d = new FrameDecoder(undefined, where);
    const err = throwsCode(() => d.push(hex('ffffffff 01')), 'MIGRATION_MAIN_BAD_FRAME', {
      field: 'length',
      expected: '1..16777216',
      received: '4294967295',
      peer: '10.0.0.2:4444',
      connection: 1,
    });
    assert.match(err.message, /^connection #1 from 10\.0\.0\.2:4444: main channel: received frame length 4294967295, expected 1\.\.16777216$/);
    assert.ok(d.buffered <= 5, 'nothing allocated for the claimed payload');
    assert.throws(() => d.push(hex('00')), (e) => e === err, 'the error sticks');
  });

  it('rejects length 0 (no room for the type byte)', () => {
    throwsCode(() => new FrameDecoder().push(hex('00000000')), 'MIGRATION_MAIN_BAD_FRAME', { field: 'length', received: '0' });
  });

  it('honours a smaller maximum', () => {
    const d = new FrameDecoder(4);
    assert.equal(d.push(hex('00000004 04 010203')).length, 1);
    throwsCode(() => d.push(hex('00000005')), 'MIGRATION_MAIN_BAD_FRAME', { expected: '1..4', received: '5' });
  });

  it('end() mid-header and mid-payload', () => {
    const a = new FrameDecoder();
    a.push(hex('000000'));
    throwsCode(() => a.end(), 'MIGRATION_MAIN_BAD_FRAME', { field: 'frame', received: '3 bytes' });
    const b = new FrameDecoder();
    b.push(hex('0000000c 02 7b2272'));
    const err = throwsCode(() => b.end(), 'MIGRATION_MAIN_BAD_FRAME', { expected: '11 payload bytes', received: '3 bytes' });
    assert.match(err.message, /closed after 3 of the 11 payload bytes of a RoundStart frame$/);
    const c = new FrameDecoder(undefined, { preamble: true });
    c.push(hex('4d4644'));
    throwsCode(() => c.end(), 'MIGRATION_MAIN_BAD_FRAME', { field: 'preamble', received: '3 bytes' });
  });

  it('invalid UTF-8 or JSON payloads', () => {
    throwsCode(() => decodeJsonPayload({ type: FrameType.Hello, payload: hex('7b22c3') }), 'MIGRATION_MAIN_BAD_FRAME', {
      field: 'payload',
      received: 'invalid UTF-8',
    });
    const err = throwsCode(() => decodeJsonPayload({ type: FrameType.Hello, payload: hex('7b7b') }), 'MIGRATION_MAIN_BAD_FRAME', { field: 'payload' });
    assert.match(err.message, /^main channel: Hello frame payload is not JSON/);
  });
});

describe('main channel preamble and connection classification', () => {
  it('encodes MFDC version 1', () => {
    assert.deepEqual(encodePreamble(), hex('4d464443 00000001'));
    assert.deepEqual(encodePreamble(2), hex('4d464443 00000002'));
    checkPreamble(hex('4d464443 00000001'));
  });

  it('rejects QEMU\'s QEVM stream by name', () => {
    const err = throwsCode(() => checkPreamble(hex('5145564d 00000003'), { peer: '127.0.0.1:4000' }), 'MIGRATION_MAIN_BAD_FRAME', {
      field: 'magic',
      expected: '0x4d464443',
      received: '0x5145564d',
    });
    assert.match(err.message, /"QEVM", QEMU's own migration stream/);
    assert.match(err.message, /starts with 0x4d464443 \("MFDC"/);
  });

  it('rejects a multifd handshake sent as a main channel by name, and other bytes as ASCII or hex', () => {
    assert.match(throwsCode(() => checkPreamble(hex('11223344 00000001')), 'MIGRATION_MAIN_BAD_FRAME').message, /a multifd channel handshake/);
    assert.match(throwsCode(() => checkPreamble(hex('47455420 2f204854')), 'MIGRATION_MAIN_BAD_FRAME').message, /0x47455420 \("GET "\)/);
    assert.equal(describeMagic(0x00010203), '0x00010203');
  });

  it('rejects another version and a short preamble', () => {
    throwsCode(() => checkPreamble(hex('4d464443 00000002')), 'MIGRATION_MAIN_BAD_FRAME', { field: 'version', expected: '1', received: '2' });
    throwsCode(() => checkPreamble(hex('4d464443 0000')), 'MIGRATION_MAIN_BAD_FRAME', { field: 'preamble', received: '6 bytes' });
    throwsCode(() => new FrameDecoder(undefined, { preamble: true }).push(hex('4d464443 00000009')), 'MIGRATION_MAIN_BAD_FRAME', { field: 'version' });
  });

  it('classifies connections by their first 4 bytes', () => {
    assert.equal(classifyConnection(hex('4d464443')), 'main');
    assert.equal(classifyConnection(hex('11223344 00000001')), 'multifd');
    assert.equal(classifyConnection(hex('5145564d')), 'unknown');
    assert.equal(classifyConnection(hex('112233')), null);
  });
});
