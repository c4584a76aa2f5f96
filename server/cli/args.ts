/**
 * Small helpers shared by the CLI commands: typed option parsing with usage errors
 * (exit 2) and the event sink (ndjson on stdout, or human output on stderr).
 */
import { COMPRESSION_METHODS, type Compression } from '../../lib/contracts';
import { ConfigInvalidError } from '../../lib/errors';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** A bad command line: printed with the command's usage, exit 2. */
export class UsageError extends ConfigInvalidError {}

export function int(name: string, v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got "${v}"`);
  return n;
}

export function ms(name: string, v: string | undefined): number | undefined {
  return int(name, v, 1, 86_400_000);
}

/** Runs a parser from lib (which throws ConfigInvalidError) and names the flag. */
export function parsed<T>(name: string, v: string | undefined, parse: (s: string) => T): T | undefined {
  if (v === undefined) return undefined;
  try {
    return parse(v);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    // Parsers that already name the flag ("--inject ch9:uuid: ...") are not prefixed twice.
    throw new UsageError(msg.startsWith(`--${name}`) ? msg : `--${name}: ${msg}`);
  }
}

/** A comma-separated list of compression methods (`--compression-allow zlib,zstd`). */
export function compressionList(name: string, v: string | undefined): Compression[] | undefined {
  if (v === undefined) return undefined;
  const items = v.split(',').map((x) => x.trim()).filter((x) => x !== '');
  if (items.length === 0) throw new UsageError(`--${name} must list at least one of ${COMPRESSION_METHODS.join(', ')}`);
  return items.map((x) => oneOf(name, x, COMPRESSION_METHODS)!);
}

export function oneOf<T extends string>(name: string, v: string | undefined, values: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  if (!(values as readonly string[]).includes(v)) throw new UsageError(`--${name} must be one of ${values.join(', ')}, got "${v}"`);
  return v as T;
}
