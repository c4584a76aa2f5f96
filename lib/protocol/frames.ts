/**
 * The main channel (ours, DESIGN 3.3). The source opens it with an 8-byte preamble, then
 * frames flow both ways until close. Big-endian:
 *
 * Preamble (source → destination, once):
 * | offset | size | field   | value                  |
 * |-------:|-----:|---------|------------------------|
 * | 0      | 4    | magic   | `0x4d464443` ("MFDC")  |
 * | 4      | 4    | version | `1`                    |
 *
 * Frame (both directions):
 * | offset | size       | field   | value                                           |
 * |-------:|-----------:|---------|-------------------------------------------------|
 * | 0      | 4          | length  | bytes that follow (type + payload), 1..16 MiB   |
 * | 4      | 1          | type    | FrameType                                        |
 * | 5      | length - 1 | payload | UTF-8 JSON, except DeviceState (binary)          |
 *
 * The decoder checks the length before allocating, copies each frame's bytes exactly once
 * (into the payload Buffer it hands out) and holds at most one frame. Unknown types are
 * passed through: what a type means is the engine's business.
 */
import { MainBadFrameError, channelPrefix, type ErrorContext } from '../errors';
import {
  FRAME_HEADER_SIZE,
  FRAME_LENGTH_SIZE,
  FRAME_MAX_LENGTH,
  FRAME_TYPE_SIZE,
  MAIN_MAGIC,
  MAIN_PREAMBLE_SIZE,
  MAIN_VERSION,
} from './constants';
import { describeMagic, hex32, readU32 } from './magic';

/** Frame types; 0x0_ are sent by the source, 0x8_ by the destination. Payload JSON unless noted. */
export const FrameType = {
  /** source → destination: {uuid, migrationId, channels, pageSize, slots, compression, blocks: [{name, size}]} */
  Hello: 0x01,
  /** source → destination: {round}, a pre-copy round begins */
  RoundStart: 0x02,
  /** source → destination: {round}, every channel has been sent its SYNC packet for this round */
  SyncMarker: 0x03,
  /** source → destination: binary, the guest's device state (opaque to the protocol) */
  DeviceState: 0x04,
  /** source → destination: {digest, round}, the final round is sent; digest of guest RAM at the pause */
  Complete: 0x05,
  /** source → destination: {code, message}, the source gives up (cancel or failure) */
  Abort: 0x06,
  /** source → destination: empty, once a second: the source is alive (a silent one is ended) */
  Ping: 0x07,
  /** destination → source: {}, the hello was accepted */
  HelloAck: 0x80,
  /** destination → source: {channel, connection, peer}, a multifd channel passed its handshake */
  ChannelAccepted: 0x81,
  /** destination → source: {code, message, channel, connection, peer, expected, received, ...}, a connection was refused */
  ChannelRejected: 0x82,
  /** destination → source: {round}, every channel reached its SYNC and the marker arrived */
  SyncDone: 0x83,
  /** destination → source: {digest}, the destination's RAM digest matches */
  Verified: 0x84,
  /** destination → source: {code, message, channel, peer, expected, received, field, missing, ...}, the migration failed */
  Failed: 0x85,
} as const;
export type FrameTypeName = keyof typeof FrameType;
export type FrameTypeValue = (typeof FrameType)[FrameTypeName];

const TYPE_NAMES = new Map<number, string>(Object.entries(FrameType).map(([name, value]) => [value, name]));

/** 'Hello', ..., or '0x42' for a type we do not know. */
export function frameTypeName(type: number): string {
  return TYPE_NAMES.get(type) ?? `0x${type.toString(16).padStart(2, '0')}`;
}

/** Where the bytes came from, for messages and error context. */
type ConnectionContext = Pick<ErrorContext, 'peer' | 'connection'>;

export function encodePreamble(version: number = MAIN_VERSION): Buffer {
  const buf = Buffer.allocUnsafe(MAIN_PREAMBLE_SIZE);
  buf.writeUInt32BE(MAIN_MAGIC, 0);
  buf.writeUInt32BE(version, 4);
  return buf;
}

/** The first 8 bytes of a main channel; MainBadFrameError (field 'preamble', 'magic' or 'version') if wrong. */
export function checkPreamble(buf: Uint8Array, ctx: ConnectionContext = {}): void {
  if (buf.length < MAIN_PREAMBLE_SIZE) {
    throw badFrame(ctx, 'preamble', `${MAIN_PREAMBLE_SIZE} bytes`, `${buf.length} bytes`,
      `main channel preamble is ${buf.length} bytes, expected ${MAIN_PREAMBLE_SIZE}`);
  }
  const magic = readU32(buf, 0);
  if (magic !== MAIN_MAGIC) {
    throw badFrame(ctx, 'magic', hex32(MAIN_MAGIC), hex32(magic),
      `main channel: received magic ${describeMagic(magic)} but the main channel starts with ${describeMagic(MAIN_MAGIC)}`);
  }
  const version = readU32(buf, 4);
  if (version !== MAIN_VERSION) {
    throw badFrame(ctx, 'version', String(MAIN_VERSION), String(version),
      `main channel: received version ${version} but this side speaks version ${MAIN_VERSION}`);
  }
}

/** One allocation, one copy of the payload. */
export function encodeFrame(type: number, payload: Uint8Array): Buffer {
  const buf = frameBuffer(type, payload.length);
  buf.set(payload, FRAME_HEADER_SIZE);
  return buf;
}

/** JSON.stringify(value) as UTF-8, written straight into the frame. */
export function encodeJsonFrame(type: number, value: unknown): Buffer {
  const json = JSON.stringify(value);
  if (json === undefined) throw new TypeError(`a ${frameTypeName(type)} frame needs a JSON value, got ${typeof value}`);
  const buf = frameBuffer(type, Buffer.byteLength(json, 'utf8'));
  buf.write(json, FRAME_HEADER_SIZE, 'utf8');
  return buf;
}

function frameBuffer(type: number, payloadLength: number): Buffer {
  const length = FRAME_TYPE_SIZE + payloadLength;
  if (length > FRAME_MAX_LENGTH) throw new RangeError(`a ${frameTypeName(type)} frame of ${length} bytes exceeds ${FRAME_MAX_LENGTH}`);
  if (!Number.isInteger(type) || type < 0 || type > 0xff) throw new RangeError(`frame type ${type} is not a byte`);
  const buf = Buffer.allocUnsafe(FRAME_LENGTH_SIZE + length);
  buf.writeUInt32BE(length, 0);
  buf[FRAME_LENGTH_SIZE] = type;
  return buf;
}

export interface Frame {
  type: number;
  /** Owned by the receiver: a fresh Buffer per frame. */
  payload: Buffer;
}

export interface FrameDecoderOptions extends ConnectionContext {
  /** Expect and check the 8-byte preamble before the first frame (the destination's side). */
  preamble?: boolean;
}

const PREAMBLE = 0;
const HEADER = 1;
const PAYLOAD = 2;
type State = typeof PREAMBLE | typeof HEADER | typeof PAYLOAD;
const EMPTY = Buffer.alloc(0);

export class FrameDecoder {
  #maxLength: number;
  readonly #ctx: ConnectionContext;
  /** Preamble or frame header bytes so far. */
  readonly #head = new Uint8Array(MAIN_PREAMBLE_SIZE);
  #headFilled = 0;
  #state: State;
  #type = 0;
  #payload: Buffer = EMPTY;
  #payloadFilled = 0;
  #error: unknown = null;

  constructor(maxLength: number = FRAME_MAX_LENGTH, options: FrameDecoderOptions = {}) {
    if (!Number.isInteger(maxLength) || maxLength < 1 || maxLength > 0xffffffff) throw new RangeError(`bad max frame length ${maxLength}`);
    this.#maxLength = maxLength;
    this.#ctx = { peer: options.peer ?? null, connection: options.connection ?? null };
    this.#state = options.preamble ? PREAMBLE : HEADER;
  }

  /**
   * Changes the largest frame taken from here on (a destination reads the hello under a
   * small limit and raises it once the hello is accepted). A frame already being read keeps
   * the length it was checked against.
   */
  set maxLength(maxLength: number) {
    if (!Number.isInteger(maxLength) || maxLength < 1 || maxLength > 0xffffffff) throw new RangeError(`bad max frame length ${maxLength}`);
    this.#maxLength = maxLength;
  }

  get maxLength(): number {
    return this.#maxLength;
  }

  /** Bytes held of an incomplete preamble or frame. */
  get buffered(): number {
    return this.#state === PAYLOAD ? FRAME_HEADER_SIZE + this.#payloadFilled : this.#headFilled;
  }

  /** Any chunking. Returns the frames completed by this chunk; after an error, every call throws it. */
  push(chunk: Uint8Array): Frame[] {
    if (this.#error !== null) throw this.#error;
    const frames: Frame[] = [];
    try {
      let at = 0;
      while (at < chunk.length) {
        if (this.#state === PAYLOAD) {
          const n = Math.min(this.#payload.length - this.#payloadFilled, chunk.length - at);
          this.#payload.set(chunk.subarray(at, at + n), this.#payloadFilled);
          this.#payloadFilled += n;
          at += n;
          if (this.#payloadFilled === this.#payload.length) frames.push(this.#take());
          continue;
        }
        const want = this.#state === PREAMBLE ? MAIN_PREAMBLE_SIZE : FRAME_HEADER_SIZE;
        const n = Math.min(want - this.#headFilled, chunk.length - at);
        this.#head.set(chunk.subarray(at, at + n), this.#headFilled);
        const before = this.#headFilled;
        this.#headFilled += n;
        at += n;
        if (this.#state === PREAMBLE) {
          if (this.#headFilled === MAIN_PREAMBLE_SIZE) {
            checkPreamble(this.#head, this.#ctx);
            this.#headFilled = 0;
            this.#state = HEADER;
          }
          continue;
        }
        // Refuse a bad length as soon as its 4 bytes are in, before the type byte and
        // before allocating anything.
        if (before < FRAME_LENGTH_SIZE && this.#headFilled >= FRAME_LENGTH_SIZE) this.#checkLength(readU32(this.#head, 0));
        if (this.#headFilled === FRAME_HEADER_SIZE) {
          this.#type = this.#head[FRAME_LENGTH_SIZE];
          const payloadLength = readU32(this.#head, 0) - FRAME_TYPE_SIZE;
          this.#headFilled = 0;
          if (payloadLength === 0) {
            frames.push({ type: this.#type, payload: Buffer.alloc(0) });
          } else {
            this.#payload = Buffer.allocUnsafe(payloadLength);
            this.#payloadFilled = 0;
            this.#state = PAYLOAD;
          }
        }
      }
    } catch (err) {
      this.#error = err;
      throw err;
    }
    return frames;
  }

  /** End of stream: MainBadFrameError unless at a frame boundary. */
  end(): void {
    if (this.#error !== null) throw this.#error;
    if (this.buffered === 0) return;
    let err: MainBadFrameError;
    if (this.#state === PREAMBLE) {
      err = badFrame(this.#ctx, 'preamble', `${MAIN_PREAMBLE_SIZE} bytes`, `${this.#headFilled} bytes`,
        `main channel closed after ${this.#headFilled} of the ${MAIN_PREAMBLE_SIZE} preamble bytes`);
    } else if (this.#state === HEADER) {
      err = badFrame(this.#ctx, 'frame', `${FRAME_HEADER_SIZE} header bytes`, `${this.#headFilled} bytes`,
        `main channel closed ${this.#headFilled} bytes into a ${FRAME_HEADER_SIZE}-byte frame header`);
    } else {
      const name = frameTypeName(this.#type);
      err = badFrame(this.#ctx, 'frame', `${this.#payload.length} payload bytes`, `${this.#payloadFilled} bytes`,
        `main channel closed after ${this.#payloadFilled} of the ${this.#payload.length} payload bytes of a ${name} frame`);
    }
    this.#error = err;
    throw err;
  }

  #checkLength(length: number): void {
    if (length === 0 || length > this.#maxLength) {
      throw badFrame(this.#ctx, 'length', `1..${this.#maxLength}`, String(length),
        `main channel: received frame length ${length}, expected 1..${this.#maxLength}`);
    }
  }

  #take(): Frame {
    const frame = { type: this.#type, payload: this.#payload };
    this.#payload = EMPTY; // the frame owns it now
    this.#payloadFilled = 0;
    this.#state = HEADER;
    return frame;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A JSON frame's value; MainBadFrameError (field 'payload') on invalid UTF-8 or JSON. */
export function decodeJsonPayload(f: Frame, ctx: ConnectionContext = {}): unknown {
  const name = frameTypeName(f.type);
  let text: string;
  try {
    text = utf8.decode(f.payload);
  } catch {
    throw badFrame(ctx, 'payload', 'UTF-8 JSON', 'invalid UTF-8', `main channel: ${name} frame payload is not valid UTF-8`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw badFrame(ctx, 'payload', 'UTF-8 JSON', `invalid JSON (${why})`, `main channel: ${name} frame payload is not JSON: ${why}`);
  }
}

function badFrame(ctx: ConnectionContext, field: string, expected: string, received: string, message: string): MainBadFrameError {
  const c = { peer: ctx.peer ?? null, connection: ctx.connection ?? null, field, expected, received };
  return new MainBadFrameError(`${channelPrefix(c)}${message}`, c);
}
