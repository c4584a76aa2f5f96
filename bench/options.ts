/**
 * What every benchmark's command line shares: --help, and a RAM size that must be whole
 * pages.
 */
import { parseSize } from '../lib/guest/units';

/** Prints `usage` and exits 0 when --help was given. */
export function helpRequested(help: boolean | undefined, usage: string): void {
  if (!help) return;
  process.stdout.write(usage);
  process.exit(0);
}

/** --ram as bytes (`fallback` when absent): a positive multiple of 4 KiB, or a clear error. */
export function ramOption(value: string | undefined, fallback: string): number {
  const bytes = parseSize(value ?? fallback);
  if (bytes < 4096 || bytes % 4096 !== 0) throw new Error(`--ram must be a positive multiple of 4 KiB, got ${value}`);
  return bytes;
}

/** A comma-separated list of channel counts, each 1..255 (`what` names the option in errors). */
export function countList(s: string, what: string): number[] {
  return s.split(',').map((x) => {
    const n = Number(x.trim());
    if (!Number.isInteger(n) || n < 1 || n > 255) throw new Error(`${what}: each count must be 1..255, got "${x}"`);
    return n;
  });
}
