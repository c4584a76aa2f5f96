/**
 * Pure formatting for the console: sizes and rates in binary units, durations, counts.
 * No imports: safe on server and client alike, and the same output on both (no locale).
 */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;
export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

const DASH = '—';

function finite(n: number | null | undefined): n is number {
  return typeof n === 'number' && Number.isFinite(n);
}

/** Three significant digits at most: `312 MiB`, `21.5 MiB`, `1.42 GiB`, `512 B`. */
export function formatBytes(n: number | null | undefined): string {
  if (!finite(n)) return DASH;
  const sign = n < 0 ? '-' : '';
  let v = Math.abs(n);
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  // 1023.7 KiB would print as "1024 KiB": carry it into the next unit instead.
  if (i > 0 && v >= 999.5 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  const digits = i === 0 || v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return `${sign}${v.toFixed(digits)} ${UNITS[i]}`;
}

/** Bytes per second: `1.42 GiB/s`. */
export function formatRate(bytesPerSecond: number | null | undefined): string {
  if (!finite(bytesPerSecond)) return DASH;
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** `340 ms`, `1.25 s`, `12.5 s`, `4 min 05 s`, `2 h 03 min`. */
export function formatDuration(ms: number | null | undefined): string {
  if (!finite(ms)) return DASH;
  if (ms < 0) return `-${formatDuration(-ms)}`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(2)} s`;
  if (s < 60) return `${s.toFixed(1)} s`;
  const total = Math.round(s);
  if (total < 3600) return `${Math.floor(total / 60)} min ${String(total % 60).padStart(2, '0')} s`;
  const minutes = Math.round(total / 60);
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} min`;
}

/** A time relative to a start: `+12 ms`, `+1.25 s`. */
export function formatOffset(ms: number | null | undefined): string {
  if (!finite(ms)) return DASH;
  return ms < 0 ? formatDuration(ms) : `+${formatDuration(ms)}`;
}

/** An ETA: whole seconds once past ten, `< 1 s` under one. */
export function formatEta(ms: number | null | undefined): string {
  if (!finite(ms)) return DASH;
  if (ms < 1000) return '< 1 s';
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  return formatDuration(Math.round(ms / 1000) * 1000);
}

/** `812`, `79.9k`, `1.25M`. */
export function formatCount(n: number | null | undefined): string {
  if (!finite(n)) return DASH;
  const a = Math.abs(n);
  if (a < 1000) return String(Math.round(n));
  if (a < 1_000_000) return `${(n / 1000).toFixed(a < 10_000 ? 2 : 1)}k`;
  return `${(n / 1_000_000).toFixed(2)}M`;
}

export function formatRatio(r: number | null | undefined): string {
  if (!finite(r)) return DASH;
  return r.toFixed(2);
}

/** `0%`, `9.4%`, `99.9%`, `100%`: rounded down, so only what is done reads 100%. */
export function formatPercent(fraction: number | null | undefined): string {
  if (!finite(fraction)) return DASH;
  const f = Math.min(1, Math.max(0, fraction));
  if (f === 0 || f === 1) return `${f * 100}%`;
  return `${(Math.floor(f * 1000) / 10).toFixed(1)}%`;
}

/** Local wall-clock `HH:MM:SS` (client components only: the server's zone may differ). */
export function formatClock(epochMs: number | null | undefined): string {
  if (!finite(epochMs)) return DASH;
  const d = new Date(epochMs);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** Local `YYYY-MM-DD HH:MM:SS`. */
export function formatDateTime(epochMs: number | null | undefined): string {
  if (!finite(epochMs)) return DASH;
  const d = new Date(epochMs);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${formatClock(epochMs)}`;
}

/** `7c9e6679-…-e07fc1f90ae7` → `7c9e…0ae7`, as the live view's header shows ids. */
export function shortId(id: string | null | undefined, head = 4, tail = 4): string {
  if (!id) return DASH;
  return id.length <= head + tail + 1 ? id : `${id.slice(0, head)}…${id.slice(-tail)}`;
}
