/**
 * What the guest does to its RAM (DESIGN 5), and its CLI spelling (DESIGN 7.1):
 *
 *   idle
 *   random:RATE[:WORKING_SET]     uniform over the first WORKING_SET bytes (default all RAM)
 *   random:max[:WORKING_SET]      as fast as it can write
 *   hotset:SIZE[:RATE]            uniform over the first SIZE bytes; RATE default max
 *   sweep[:RATE]                  every page in order, wrapping; RATE default max
 *
 * RATE is parsed by parseRate (a bare number is MiB/s, 'max' or 0 = as fast as it can);
 * sizes by parseSize. Rates are dirtied bytes per second = pages touched per second × 4096.
 */
import { ConfigInvalidError } from '../errors/index';
import { formatRateExact, formatSizeExact, parseRate, parseSize } from './units';

export type Workload =
  | { kind: 'idle' }
  /** rate: dirtied bytes per second, 0 = as fast as it can; workingSet: bytes, default whole RAM. */
  | { kind: 'random'; rate: number; workingSet?: number }
  /** size: bytes at the start of guest RAM (across blocks in order); rate 0 = max. */
  | { kind: 'hotset'; size: number; rate: number }
  /** rate 0 = max. */
  | { kind: 'sweep'; rate: number };

export type WorkloadKind = Workload['kind'];

export const WORKLOAD_SYNTAX = 'idle, random:RATE[:WORKING_SET], random:max, hotset:SIZE[:RATE] or sweep[:RATE]';

export const IDLE: Workload = Object.freeze({ kind: 'idle' });

/** Parses the CLI form. Throws ConfigInvalidError saying what was expected. */
export function parseWorkload(s: string): Workload {
  if (typeof s !== 'string') throw bad(`expected a workload (${WORKLOAD_SYNTAX})`, String(s));
  const parts = s.trim().split(':');
  const kind = parts[0].toLowerCase();
  const args = parts.slice(1);
  const arity = (min: number, max: number, usage: string): void => {
    if (args.length < min || args.length > max) throw bad(`workload '${s}': expected ${usage}`, s);
  };
  switch (kind) {
    case 'idle':
      arity(0, 0, "'idle' with no arguments");
      return { kind: 'idle' };
    case 'random': {
      arity(1, 2, "'random:RATE[:WORKING_SET]' or 'random:max'");
      const rate = field(s, 'rate', () => parseRate(args[0]));
      if (args.length === 1) return { kind: 'random', rate };
      const workingSet = positiveSize(s, 'working set', args[1]);
      return { kind: 'random', rate, workingSet };
    }
    case 'hotset': {
      arity(1, 2, "'hotset:SIZE[:RATE]'");
      const size = positiveSize(s, 'hotset size', args[0]);
      const rate = args.length === 2 ? field(s, 'rate', () => parseRate(args[1])) : 0;
      return { kind: 'hotset', size, rate };
    }
    case 'sweep': {
      arity(0, 1, "'sweep[:RATE]'");
      const rate = args.length === 1 ? field(s, 'rate', () => parseRate(args[0])) : 0;
      return { kind: 'sweep', rate };
    }
    default:
      throw bad(`unknown workload '${s}': expected ${WORKLOAD_SYNTAX}`, s);
  }
}

/** Canonical CLI form; parseWorkload(formatWorkload(w)) deep-equals w for any valid w. */
export function formatWorkload(w: Workload): string {
  switch (w.kind) {
    case 'idle':
      return 'idle';
    case 'random':
      return w.workingSet === undefined
        ? `random:${formatRateExact(w.rate)}`
        : `random:${formatRateExact(w.rate)}:${formatSizeExact(w.workingSet)}`;
    case 'hotset':
      return `hotset:${formatSizeExact(w.size)}:${formatRateExact(w.rate)}`;
    case 'sweep':
      return w.rate === 0 ? 'sweep' : `sweep:${formatRateExact(w.rate)}`;
  }
}

/**
 * Checks a Workload built in code (not parsed), optionally against the guest's RAM size.
 * Rates are whole bytes per second >= 0; sizes whole bytes > 0 and at most ramSize.
 */
export function validateWorkload(w: Workload, ramSize?: number): Workload {
  const text = safeText(w);
  if (!w || typeof w !== 'object') throw bad(`expected a workload (${WORKLOAD_SYNTAX})`, text);
  const rateOk = (r: unknown): boolean => typeof r === 'number' && Number.isSafeInteger(r) && r >= 0;
  const sizeOk = (n: unknown): boolean => typeof n === 'number' && Number.isSafeInteger(n) && n > 0;
  const fits = (what: string, n: number): void => {
    if (ramSize !== undefined && n > ramSize) {
      throw new ConfigInvalidError(`workload ${what} ${n} bytes is larger than guest RAM (${ramSize} bytes)`, {
        expected: `at most ${ramSize} bytes`,
        received: String(n),
      });
    }
  };
  switch (w.kind) {
    case 'idle':
      return { kind: 'idle' };
    case 'random':
      if (!rateOk(w.rate)) break;
      if (w.workingSet === undefined) return { kind: 'random', rate: w.rate };
      if (!sizeOk(w.workingSet)) break;
      fits('working set', w.workingSet);
      return { kind: 'random', rate: w.rate, workingSet: w.workingSet };
    case 'hotset':
      if (!rateOk(w.rate) || !sizeOk(w.size)) break;
      fits('hotset size', w.size);
      return { kind: 'hotset', size: w.size, rate: w.rate };
    case 'sweep':
      if (!rateOk(w.rate)) break;
      return { kind: 'sweep', rate: w.rate };
  }
  throw bad(
    `invalid workload ${text}: expected ${WORKLOAD_SYNTAX} with whole byte rates >= 0 and sizes > 0`,
    text,
  );
}

function positiveSize(s: string, what: string, arg: string): number {
  const n = field(s, what, () => parseSize(arg));
  if (n <= 0) throw bad(`workload '${s}': ${what} must be more than 0 bytes`, s);
  return n;
}

/** Re-throws a unit parse error with the workload and the field named. */
function field<T>(s: string, what: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof ConfigInvalidError) {
      throw new ConfigInvalidError(`workload '${s}': ${what}: ${err.message}`, {
        expected: err.expected,
        received: err.received,
        cause: err,
      });
    }
    throw err;
  }
}

function bad(message: string, received: string): ConfigInvalidError {
  return new ConfigInvalidError(message, { expected: WORKLOAD_SYNTAX, received });
}

function safeText(w: unknown): string {
  try {
    return JSON.stringify(w) ?? String(w);
  } catch {
    return String(w);
  }
}
