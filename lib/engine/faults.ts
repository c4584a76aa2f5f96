/**
 * Faults the source can inject per channel (DESIGN 7.2): `chK:KIND[:ARG]`.
 */
import { ConfigInvalidError } from '../errors';
import { MULTIFD_VERSION, encodeHandshake } from '../protocol';

/**
 * Handshake faults (what channel K sends instead of its handshake) and stream faults (what
 * it does to its packets).
 */
export type FaultKind =
  | 'uuid' | 'dup' | 'id' | 'id-big' | 'magic' | 'version' | 'truncate' | 'stall'
  | 'drop' | 'bad-header' | 'slow'
  | TlsFaultKind;

/**
 * TLS faults (the migration must use TLS): channel K connects in clear (`tls-clear`), checks
 * the destination's certificate for another host name (`tls-hostname`), or presents no client
 * certificate (`tls-anon`).
 */
export const TLS_FAULTS = ['tls-clear', 'tls-hostname', 'tls-anon'] as const;
export type TlsFaultKind = (typeof TLS_FAULTS)[number];
/** The host name channel K checks under `tls-hostname` (.invalid: never anyone's, RFC 2606). */
export const TLS_FAULT_HOSTNAME = 'wrong-host.invalid';

export const HEADER_FAULTS = ['normal_pages', 'offset', 'ramblock', 'short-payload'] as const;
export type HeaderFault = (typeof HEADER_FAULTS)[number];

export interface Fault {
  channel: number;
  kind: FaultKind;
  /** id for `id-N`, bytes for truncate and drop, bytes/s for slow. */
  n?: number;
  /** which part of its first page-carrying packet bad-header corrupts. */
  field?: HeaderFault;
}

/** drop's and slow's largest argument: 1 TiB (of payload, or a second), past any guest here. */
const FAULT_MAX_BYTES = 2 ** 40;

/** Parses one `--inject` value. Throws ConfigInvalidError saying what was expected. */
export function parseFault(spec: string, channels: number): Fault {
  const m = /^ch(\d+):([a-z-]+?)(?:-(\d+))?(?::(.+))?$/.exec(spec.trim());
  if (!m) throw new ConfigInvalidError(`--inject ${spec}: expected chK:KIND[:ARG], e.g. ch3:uuid`);
  const channel = Number(m[1]);
  if (channel >= channels) {
    throw new ConfigInvalidError(`--inject ${spec}: channel ${channel} does not exist (channels are 0..${channels - 1})`);
  }
  const kind = m[2];
  const num = m[3];
  const arg = m[4];
  /** A whole number the fault can mean: min..max, refused with the range otherwise. */
  const bytes = (what: string, dflt: number | undefined, min: number, max: number): number => {
    if (arg === undefined && dflt !== undefined) return dflt;
    const v = /^\d{1,16}$/.test(arg ?? '') ? Number(arg) : NaN;
    if (!Number.isSafeInteger(v) || v < min || v > max) {
      throw new ConfigInvalidError(`--inject ${spec}: ${what} must be a whole number from ${min} to ${max}`, {
        field: 'inject',
        expected: `${min}..${max}`,
        received: arg ?? '',
      });
    }
    return v;
  };
  switch (kind) {
    case 'id': {
      if (num === undefined) break;
      const n = Number(num);
      // The handshake's id is one byte.
      if (!(n >= 0 && n <= 255)) throw new ConfigInvalidError(`--inject ${spec}: id-N takes a channel id from 0 to 255`, { field: 'inject', expected: '0..255', received: num });
      return { channel, kind: 'id', n };
    }
    case 'uuid':
    case 'dup':
    case 'magic':
    case 'version':
    case 'stall':
      if (num !== undefined || arg !== undefined) break;
      return { channel, kind };
    case 'id-big':
      return { channel, kind };
    case 'tls-clear':
    case 'tls-hostname':
    case 'tls-anon':
      if (num !== undefined || arg !== undefined) break;
      return { channel, kind };
    case 'truncate':
      // Cut short: 64 bytes or more is a whole handshake, no fault at all.
      return { channel, kind, n: bytes('BYTES (of the 64-byte handshake sent)', 20, 0, 63) };
    case 'drop':
      if (arg === undefined) throw new ConfigInvalidError(`--inject ${spec}: drop takes the payload bytes to send first, e.g. ch1:drop:65536`);
      return { channel, kind, n: bytes('BYTES', undefined, 0, FAULT_MAX_BYTES) };
    case 'slow': {
      if (arg === undefined) throw new ConfigInvalidError(`--inject ${spec}: slow takes a rate in bytes/s, e.g. ch1:slow:1048576`);
      return { channel, kind, n: bytes('RATE (bytes/s)', undefined, 1, FAULT_MAX_BYTES) };
    }
    case 'bad-header': {
      const field = HEADER_FAULTS.find((x) => x === arg);
      if (!field) throw new ConfigInvalidError(`--inject ${spec}: bad-header takes one of ${HEADER_FAULTS.join(', ')}`);
      return { channel, kind, field };
    }
  }
  throw new ConfigInvalidError(
    `--inject ${spec}: unknown fault; expected uuid, dup, id-N, id-big, magic, version, truncate[:BYTES], stall, drop:BYTES, bad-header:FIELD, slow:RATE, tls-clear, tls-hostname or tls-anon`,
  );
}

/**
 * The handshake channel `id` sends under fault `f` (none: the true one): a wrong uuid, a
 * neighbour's id, an id out of range, a bad magic or version, or only the first bytes
 * (truncate). Null for stall, which sends nothing. The engine's source and the relay use it.
 */
export function faultyHandshake(f: Fault | null, uuid: Uint8Array, id: number, channels: number): Uint8Array | null {
  const u = Uint8Array.from(uuid);
  let magic: number | undefined;
  let version = MULTIFD_VERSION;
  switch (f?.kind) {
    case 'stall':
      return null;
    case 'uuid':
      u[0] ^= 0xff;
      u[15] ^= 0xff;
      break;
    case 'dup':
      id = (id + 1) % channels;
      break;
    case 'id':
      id = f.n ?? channels;
      break;
    case 'id-big':
      id = channels >= 200 ? 255 : 200;
      break;
    case 'magic':
      magic = 0xdeadbeef;
      break;
    case 'version':
      version = 7;
      break;
  }
  const hs = encodeHandshake({ uuid: u, id: id & 0xff, magic, version });
  if (f?.kind === 'truncate') return hs.subarray(0, Math.min(f.n ?? 20, hs.length));
  return hs;
}
