/**
 * Sizes and rates as operators type them (DESIGN 7.1), and back.
 *
 *   size  := NUMBER [UNIT]            '4096', '256MiB', '1GiB', '2G', '1.5GiB'
 *   rate  := NUMBER [UNIT] ['/s']     '64MiB/s', '64M', '1048576B/s'
 *   UNIT  := B | K | KB | KiB | M | MB | MiB | G | GB | GiB | T | TB | TiB   (case-insensitive)
 *
 * Every unit is binary (K = KiB = 1024, as DESIGN says for '2G'); 'KB' is accepted as
 * KiB, not 1000, so that one spelling never means two things.
 *
 * A bare number (no unit) means different things in two places, so there are two parsers:
 *   - parseRate           (workload rates)      bare number = MiB/s, 'max' = 0 (as fast as it can)
 *   - parseBytesPerSecond (--max-bandwidth)     bare number = bytes/s
 * Sizes: a bare number is bytes.
 */
import { ConfigInvalidError } from '../errors/index';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;
export const TiB = 1024 * GiB;

const UNITS: Record<string, number> = {
  b: 1,
  k: KiB, kb: KiB, kib: KiB,
  m: MiB, mb: MiB, mib: MiB,
  g: GiB, gb: GiB, gib: GiB,
  t: TiB, tb: TiB, tib: TiB,
};

const QUANTITY = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-zA-Z]*)\s*$/;

/** NUMBER [UNIT] → { value, unit multiplier or null when bare }; null when malformed. */
function splitQuantity(s: string): { value: number; multiplier: number | null } | null {
  const m = QUANTITY.exec(s);
  if (!m) return null;
  const value = Number(m[1]);
  if (!Number.isFinite(value)) return null;
  if (m[2] === '') return { value, multiplier: null };
  const multiplier = UNITS[m[2].toLowerCase()];
  return multiplier === undefined ? null : { value, multiplier };
}

const SIZE_EXPECTED = "a size such as '4096', '256MiB', '1GiB' or '2G' (binary units B, K/KiB, M/MiB, G/GiB, T/TiB)";

/** '256MiB' '1GiB' '2G' '4096' → bytes (a non-negative safe integer). */
export function parseSize(s: string): number {
  const q = typeof s === 'string' ? splitQuantity(s) : null;
  if (!q) throw invalid(`expected ${SIZE_EXPECTED}, received '${String(s)}'`, SIZE_EXPECTED, s);
  const bytes = q.value * (q.multiplier ?? 1);
  if (!Number.isSafeInteger(bytes)) {
    throw invalid(`size '${s}' is not a whole number of bytes below 2^53`, 'a whole number of bytes', s);
  }
  return bytes;
}

const RATE_EXPECTED =
  "a rate such as '64MiB/s', '512KiB/s', '1048576B/s', a bare number of MiB/s such as '64', or 'max'";
const BPS_EXPECTED = "a rate such as '64MiB/s', '1GiB/s' or a bare number of bytes per second such as '1048576'";

function parseRateWith(s: string, bareMultiplier: number, allowMax: boolean, expected: string): number {
  if (typeof s !== 'string') throw invalid(`expected ${expected}, received '${String(s)}'`, expected, String(s));
  const trimmed = s.trim();
  if (allowMax && trimmed.toLowerCase() === 'max') return 0;
  const body = trimmed.replace(/\s*\/\s*s$/i, '');
  const q = splitQuantity(body);
  if (!q) throw invalid(`expected ${expected}, received '${s}'`, expected, s);
  const bytesPerSecond = Math.round(q.value * (q.multiplier ?? bareMultiplier));
  if (!Number.isSafeInteger(bytesPerSecond)) throw invalid(`rate '${s}' is too large`, expected, s);
  // '0.0001' MiB/s rounds to 0, which would silently mean "as fast as it can".
  if (bytesPerSecond === 0 && q.value !== 0) {
    throw invalid(`rate '${s}' is below 1 byte per second`, expected, s);
  }
  return bytesPerSecond;
}

/**
 * Workload rate → bytes per second, rounded to a whole byte. A bare number is MiB/s
 * (DESIGN 7.1); '0' and 'max' both give 0, which workloads read as "as fast as it can".
 */
export function parseRate(s: string): number {
  return parseRateWith(s, MiB, true, RATE_EXPECTED);
}

/** Bandwidth (e.g. --max-bandwidth) → bytes per second. A bare number is bytes/s. */
export function parseBytesPerSecond(s: string): number {
  return parseRateWith(s, 1, false, BPS_EXPECTED);
}

/** Exact, parseable form: the largest binary unit that divides n, e.g. '256MiB', '4097B'. */
export function formatSizeExact(n: number): string {
  for (const [unit, m] of [['TiB', TiB], ['GiB', GiB], ['MiB', MiB], ['KiB', KiB]] as const) {
    if (n >= m && n % m === 0) return `${n / m}${unit}`;
  }
  return `${n}B`;
}

/** Exact, parseable rate: '64MiB/s', '100B/s'; 0 is 'max'. */
export function formatRateExact(bytesPerSecond: number): string {
  return bytesPerSecond === 0 ? 'max' : `${formatSizeExact(bytesPerSecond)}/s`;
}

/** Human form: '0 B', '100 B', '512 KiB', '1.50 GiB'. Whole values print without decimals. */
export function formatBytes(n: number): string {
  const sign = n < 0 ? '-' : '';
  const a = Math.abs(n);
  if (!Number.isFinite(a)) return String(n);
  if (a < KiB) return `${sign}${Math.round(a)} B`;
  const units = [['KiB', KiB], ['MiB', MiB], ['GiB', GiB], ['TiB', TiB]] as const;
  let i = 0;
  while (i < units.length - 1 && a >= units[i + 1][1]) i++;
  const v = a / units[i][1];
  return `${sign}${Number.isInteger(v) ? v : v.toFixed(2)} ${units[i][0]}`;
}

function invalid(message: string, expected: string, received: string): ConfigInvalidError {
  return new ConfigInvalidError(message, { expected, received: String(received) });
}
