/**
 * Faults the source can inject per channel (DESIGN 7.2): `chK:KIND[:ARG]`.
 */
import { ConfigInvalidError } from '../errors';

export type FaultKind =
  | 'uuid' | 'dup' | 'id' | 'id-big' | 'magic' | 'version' | 'truncate' | 'stall'
  | 'drop' | 'bad-header' | 'slow';

export interface Fault {
  channel: number;
  kind: FaultKind;
  /** id for `id-N`, bytes for truncate/drop, bytes/s for slow. */
  n?: number;
  /** field for bad-header. */
  field?: 'normal_pages' | 'offset' | 'ramblock' | 'short-payload';
}

const HEADER_FIELDS = ['normal_pages', 'offset', 'ramblock', 'short-payload'] as const;

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
  const bytes = (what: string, dflt?: number): number => {
    if (arg === undefined && dflt !== undefined) return dflt;
    const v = Number(arg);
    if (!Number.isInteger(v) || v < 0) throw new ConfigInvalidError(`--inject ${spec}: ${what} must be a whole number`);
    return v;
  };
  switch (kind) {
    case 'id':
      if (num === undefined) break;
      return { channel, kind: 'id', n: Number(num) };
    case 'uuid':
    case 'dup':
    case 'magic':
    case 'version':
    case 'stall':
      if (num !== undefined || arg !== undefined) break;
      return { channel, kind };
    case 'id-big':
      return { channel, kind };
    case 'truncate':
      return { channel, kind, n: bytes('BYTES', 20) };
    case 'drop':
      return { channel, kind, n: bytes('BYTES') };
    case 'slow':
      return { channel, kind, n: Math.max(1, bytes('RATE (bytes/s)')) };
    case 'bad-header': {
      const f = HEADER_FIELDS.find((x) => x === arg);
      if (!f) throw new ConfigInvalidError(`--inject ${spec}: bad-header takes one of ${HEADER_FIELDS.join(', ')}`);
      return { channel, kind, field: f };
    }
  }
  throw new ConfigInvalidError(
    `--inject ${spec}: unknown fault; expected uuid, dup, id-N, id-big, magic, version, truncate[:BYTES], stall, drop:BYTES, bad-header:FIELD or slow:RATE`,
  );
}
