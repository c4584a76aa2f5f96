/**
 * Shared by the two halves of the "ceiling" measurement (ceiling-send.ts, ceiling-recv.ts):
 * a bare Node sender/receiver pair moving the same bytes as a migration over N loopback
 * connections, with none of the engine's framing, hashing or bookkeeping.
 */

/** Connection `i` of `n` carries bytes [start, end) of the `total`: whole pages, the last takes the rest. */
export function sliceOf(i: number, n: number, total: number): { start: number; end: number } {
  const share = Math.ceil(total / n / 4096) * 4096;
  const start = Math.min(total, i * share);
  const end = i === n - 1 ? total : Math.min(total, start + share);
  return { start, end };
}

/** One ndjson line on stdout, with a time, like the CLI's. */
export function emit(obj: Record<string, unknown> & { type: string }): void {
  process.stdout.write(`${JSON.stringify({ time: Date.now(), ...obj })}\n`);
}

/** The same `process` line the CLI prints last: peak RSS and CPU time of this process. */
export function emitProcess(): void {
  const u = process.resourceUsage();
  emit({
    type: 'process',
    maxRssBytes: u.maxRSS * 1024,
    cpuUserMs: Math.round(u.userCPUTime / 1000),
    cpuSystemMs: Math.round(u.systemCPUTime / 1000),
  });
}

export function positiveInt(name: string, v: string | undefined, fallback?: number): number {
  if (v === undefined) {
    if (fallback !== undefined) return fallback;
    throw new Error(`--${name} is required`);
  }
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`--${name} must be a positive whole number, got "${v}"`);
  return n;
}

export function hostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  const host = s.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(s.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`expected HOST:PORT, got "${s}"`);
  return { host, port };
}
