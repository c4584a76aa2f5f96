/**
 * Multifd channel handshake, byte-compatible with QEMU's `MultiFDInit_t` (DESIGN 3.1).
 * The first 64 bytes on every multifd channel, big-endian:
 *
 * | offset | size | field    | value                                                  |
 * |-------:|-----:|----------|--------------------------------------------------------|
 * | 0      | 4    | magic    | `0x11223344`                                           |
 * | 4      | 4    | version  | `1`                                                    |
 * | 8      | 16   | uuid     | guest UUID, raw bytes in RFC 4122 order                |
 * | 24     | 1    | id       | channel number, `0 <= id < channels`                   |
 * | 25     | 39   | reserved | zero on send, ignored on receive                       |
 *
 * decodeHandshake reads the structure only; checkHandshake applies DESIGN's validation
 * order (magic, version, uuid, id range, duplicate) and returns the first failure.
 * Encoder misuse (a 15-byte uuid, id 300) is a caller bug and throws RangeError/TypeError;
 * every fault in received bytes is a typed MigrationError.
 */
import {
  ChannelBadMagicError,
  ChannelBadVersionError,
  ChannelIdDuplicateError,
  ChannelIdOutOfRangeError,
  ChannelShortHandshakeError,
  ChannelUuidMismatchError,
  ConfigInvalidError,
  channelPrefix,
  type ErrorContext,
  type MigrationError,
} from '../errors';
import {
  HANDSHAKE_OFFSET_ID,
  HANDSHAKE_OFFSET_MAGIC,
  HANDSHAKE_OFFSET_UUID,
  HANDSHAKE_OFFSET_VERSION,
  HANDSHAKE_SIZE,
  MULTIFD_MAGIC,
  MULTIFD_VERSION,
  UUID_SIZE,
} from './constants';
import { describeMagic, hex32, readU32 } from './magic';

export interface Handshake {
  magic: number;
  version: number;
  /** 16 bytes, a copy (never a view of the input). */
  uuid: Uint8Array;
  id: number;
}

/** Where the bytes came from, for error messages and context. */
type ConnectionContext = Pick<ErrorContext, 'peer' | 'connection'>;

export function encodeHandshake(h: { uuid: Uint8Array | string; id: number; magic?: number; version?: number }): Buffer {
  const uuid = typeof h.uuid === 'string' ? uuidToBytes(h.uuid) : h.uuid;
  if (uuid.length !== UUID_SIZE) throw new RangeError(`handshake uuid must be ${UUID_SIZE} bytes, got ${uuid.length}`);
  const buf = Buffer.alloc(HANDSHAKE_SIZE); // reserved bytes stay zero
  buf.writeUInt32BE(h.magic ?? MULTIFD_MAGIC, HANDSHAKE_OFFSET_MAGIC);
  buf.writeUInt32BE(h.version ?? MULTIFD_VERSION, HANDSHAKE_OFFSET_VERSION);
  buf.set(uuid, HANDSHAKE_OFFSET_UUID);
  buf.writeUInt8(h.id, HANDSHAKE_OFFSET_ID);
  return buf;
}

/**
 * Structure only, no semantic checks. Fewer than 64 bytes is ChannelShortHandshakeError
 * (the caller got EOF first); its channel is the claimed id when the bytes reached
 * offset 24 and do not start with a foreign magic, else null.
 */
export function decodeHandshake(buf: Uint8Array, ctx: ConnectionContext = {}): Handshake {
  if (buf.length < HANDSHAKE_SIZE) {
    const foreign = buf.length >= 4 && readU32(buf, HANDSHAKE_OFFSET_MAGIC) !== MULTIFD_MAGIC;
    const channel = foreign ? null : claimedChannelId(buf);
    const c = { ...ctx, channel, expected: `${HANDSHAKE_SIZE} bytes`, received: `${buf.length} bytes`, field: 'handshake' };
    throw new ChannelShortHandshakeError(
      `${channelPrefix(c)}connection closed after ${buf.length} of the ${HANDSHAKE_SIZE} handshake bytes`,
      c,
    );
  }
  return {
    magic: readU32(buf, HANDSHAKE_OFFSET_MAGIC),
    version: readU32(buf, HANDSHAKE_OFFSET_VERSION),
    // A plain Uint8Array copy: the caller may reuse `buf`, and a Buffer would not deep-equal.
    uuid: new Uint8Array(buf.subarray(HANDSHAKE_OFFSET_UUID, HANDSHAKE_OFFSET_UUID + UUID_SIZE)),
    id: buf[HANDSHAKE_OFFSET_ID],
  };
}

/** The channel id a partial handshake claims: byte 24 once it has arrived, else null. */
export function claimedChannelId(partial: Uint8Array): number | null {
  return partial.length > HANDSHAKE_OFFSET_ID ? partial[HANDSHAKE_OFFSET_ID] : null;
}

export interface HandshakeExpectation {
  /** The migration's uuid; null while unknown (no check). */
  uuid: Uint8Array | null;
  /** The migration's channel count; null while unknown (no range check). */
  channels: number | null;
  /** Whether a channel with this id was already accepted. */
  isTaken?: (id: number) => boolean;
}

/**
 * Validation in DESIGN order: magic, version, uuid, id range (reject id >= channels),
 * duplicate. Returns the first failure or null. Bad magic names no channel (the bytes
 * are not trusted); the others name the claimed id.
 */
export function checkHandshake(h: Handshake, exp: HandshakeExpectation, ctx: ConnectionContext): MigrationError | null {
  const where = { peer: ctx.peer ?? null, connection: ctx.connection ?? null };
  if (h.magic !== MULTIFD_MAGIC) {
    const c = { ...where, channel: null, expected: hex32(MULTIFD_MAGIC), received: hex32(h.magic), field: 'magic' };
    return new ChannelBadMagicError(
      `${channelPrefix(c)}received magic ${describeMagic(h.magic)} but a multifd channel starts with ${hex32(MULTIFD_MAGIC)}`,
      c,
    );
  }
  const at = { ...where, channel: h.id };
  if (h.version !== MULTIFD_VERSION) {
    const c = { ...at, expected: String(MULTIFD_VERSION), received: String(h.version), field: 'version' };
    return new ChannelBadVersionError(
      `${channelPrefix(c)}received handshake version ${h.version} but this destination speaks version ${MULTIFD_VERSION}`,
      c,
    );
  }
  if (exp.uuid !== null && !sameBytes(h.uuid, exp.uuid)) {
    const c = { ...at, expected: bytesToUuid(exp.uuid), received: bytesToUuid(h.uuid), field: 'uuid' };
    return new ChannelUuidMismatchError(`${channelPrefix(c)}received uuid ${c.received} but this migration is ${c.expected}`, c);
  }
  if (exp.channels !== null && h.id >= exp.channels) {
    const range = exp.channels > 0 ? `0..${exp.channels - 1}` : 'none';
    const c = { ...at, expected: range, received: String(h.id), field: 'id' };
    return new ChannelIdOutOfRangeError(
      `${channelPrefix(c)}received channel id ${h.id} but this migration has ${exp.channels} channels (ids ${range})`,
      c,
    );
  }
  if (exp.isTaken?.(h.id)) {
    const c = { ...at, expected: `an id not yet connected`, received: String(h.id), field: 'id' };
    return new ChannelIdDuplicateError(`${channelPrefix(c)}received channel id ${h.id} but channel ${h.id} is already connected`, c);
  }
  return null;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Canonical text (8-4-4-4-12 hex, any version or variant, as QEMU's `-uuid` accepts) to
 * 16 bytes. Not `uuid.parse`: that rejects UUIDs whose version nibble is not 1-8.
 */
export function uuidToBytes(s: string): Uint8Array {
  if (!UUID_RE.test(s)) {
    throw new ConfigInvalidError(`uuid must look like 7c9e6679-7425-40de-944b-e07fc1f90ae7, got ${JSON.stringify(s)}`, {
      expected: '8-4-4-4-12 hex digits',
      received: s,
      field: 'uuid',
    });
  }
  const hex = s.replace(/-/g, '');
  const out = new Uint8Array(UUID_SIZE);
  for (let i = 0; i < UUID_SIZE; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * 16 bytes to lower-case canonical text. Never throws on content: the bytes come off the
 * wire and may be anything (uuid.stringify throws on a non-RFC version nibble).
 */
export function bytesToUuid(b: Uint8Array): string {
  if (b.length !== UUID_SIZE) throw new RangeError(`a uuid is ${UUID_SIZE} bytes, got ${b.length}`);
  let hex = '';
  for (let i = 0; i < UUID_SIZE; i++) hex += b[i].toString(16).padStart(2, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
