/**
 * What the CLI prints. `--events ndjson`: one JSON event per line on stdout. Otherwise
 * human output on stderr: a live progress display on a terminal, event lines elsewhere.
 */
import type { MigrationEvent, MigrationSnapshot } from '../../lib/contracts';
import { formatBytes } from '../../lib/guest';

export interface Output {
  event(e: MigrationEvent): void;
  /** CLI-level lines (listening, summaries); JSON objects in ndjson mode. */
  info(obj: Record<string, unknown> & { type: string }, human: string): void;
  close(): void;
}

export function makeOutput(mode: 'ndjson' | 'human'): Output {
  return mode === 'ndjson' ? new NdjsonOutput() : new HumanOutput(process.stderr);
}

class NdjsonOutput implements Output {
  event(e: MigrationEvent): void {
    process.stdout.write(`${JSON.stringify(e)}\n`);
  }
  info(obj: Record<string, unknown> & { type: string }): void {
    process.stdout.write(`${JSON.stringify({ time: Date.now(), ...obj })}\n`);
  }
  close(): void {}
}

/**
 * The command's last line, just before it returns: this process's peak RSS and CPU time
 * (`{"type":"process",...}` in ndjson mode), which is what `npm run bench` reads.
 */
export function reportProcess(out: Output): void {
  const u = process.resourceUsage();
  const maxRssBytes = u.maxRSS * 1024;
  const cpuUserMs = Math.round(u.userCPUTime / 1000);
  const cpuSystemMs = Math.round(u.systemCPUTime / 1000);
  out.info(
    { type: 'process', maxRssBytes, cpuUserMs, cpuSystemMs },
    `process: peak RSS ${formatBytes(maxRssBytes)}, CPU ${cpuUserMs} ms user + ${cpuSystemMs} ms system`,
  );
}

const rate = (bps: number) => `${formatBytes(bps)}/s`;

function bar(fraction: number, width: number): string {
  const f = Math.max(0, Math.min(1, fraction));
  const full = Math.round(f * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`;
}

/** Off a terminal, a progress line at most this often (a log, not a display). */
const LOG_PROGRESS_MS = 2000;

/** "42%, ETA 3 s": how far a migration is and, at its current rate, how long it has left. */
export function progressFigures(s: MigrationSnapshot): { fraction: number; text: string } {
  const fraction = Math.max(0, Math.min(1, s.pageBytes / Math.max(1, s.ramSize)));
  // The source knows what is left to send (dirty pages included); a destination, what it has not seen.
  const left = s.role === 'source' ? s.remaining : Math.max(0, s.ramSize - s.pageBytes);
  const live = !['completed', 'failed', 'cancelled'].includes(s.state);
  const eta = live && s.transferRate > 0 && left > 0 ? `, ETA ${formatSeconds(left / s.transferRate)}` : '';
  return { fraction, text: `${Math.floor(fraction * 100)}%${eta}` };
}

function formatSeconds(sec: number): string {
  if (sec < 1) return '<1 s';
  if (sec < 90) return `${Math.round(sec)} s`;
  if (sec < 5400) return `${Math.round(sec / 60)} min`;
  return `${(sec / 3600).toFixed(1)} h`;
}

function summaryLine(s: MigrationSnapshot, barWidth: number | null): string {
  const p = progressFigures(s);
  return (
    `${s.role} ${s.state.toUpperCase()} round ${s.round} ${barWidth === null ? '' : `${bar(p.fraction, barWidth)} `}${p.text}, ` +
    `${formatBytes(s.transferred)} at ${rate(s.transferRate)}` +
    (s.role === 'source' ? `, ${formatBytes(s.remaining)} dirty, ${rate(s.dirtyRate)} dirty rate` : '')
  );
}

export class HumanOutput implements Output {
  private drawn = 0;
  private readonly tty: boolean;
  private last: MigrationSnapshot | null = null;
  private loggedAt = 0;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly now: () => number = Date.now,
  ) {
    this.tty = Boolean(out.isTTY);
  }

  event(e: MigrationEvent): void {
    if (e.type === 'progress') {
      this.last = e.snapshot;
      if (this.tty) this.draw(e.snapshot);
      else if (this.now() - this.loggedAt >= LOG_PROGRESS_MS && !['completed', 'failed', 'cancelled'].includes(e.snapshot.state)) {
        // A log (a pipe, a file, journald): a plain line now and then, never cursor moves.
        this.loggedAt = this.now();
        this.out.write(`${summaryLine(e.snapshot, null)}\n`);
      }
      return;
    }
    const line = describe(e);
    if (line) this.print(line);
  }

  info(_obj: unknown, human: string): void {
    this.print(human);
  }

  close(): void {
    if (this.tty && this.last) this.clear();
  }

  private print(line: string): void {
    if (this.tty) this.clear();
    this.out.write(`${line}\n`);
    if (this.tty && this.last && !['completed', 'failed', 'cancelled'].includes(this.last.state)) this.draw(this.last);
  }

  private clear(): void {
    if (this.drawn > 0) this.out.write(`\x1b[${this.drawn}A\x1b[0J`);
    this.drawn = 0;
  }

  private draw(s: MigrationSnapshot): void {
    this.clear();
    const lines = [summaryLine(s, 30)];
    const cols = Math.max(1, Math.floor(((this.out.columns ?? 100) - 2) / 34));
    let row = '';
    s.channels.forEach((c, i) => {
      row += `  #${String(c.id).padStart(3)} ${c.state.padEnd(10)} ${rate(c.throughput).padStart(12)}`;
      if ((i + 1) % cols === 0) {
        lines.push(row);
        row = '';
      }
    });
    if (row) lines.push(row);
    // A terminal may report 0 rows (a serial console, some multiplexers): not a size.
    const rows = this.out.rows && this.out.rows > 0 ? this.out.rows : 40;
    let shown = lines.slice(0, Math.max(2, rows - 4));
    if (shown.length < lines.length) {
      shown = [...shown.slice(0, -1), `  ... ${s.channels.length} channels, ${lines.length - shown.length + 1} rows not shown (a taller terminal shows them)`];
    }
    this.out.write(`${shown.join('\n')}\n`);
    this.drawn = shown.length;
  }
}

/** One line per event worth a line. */
export function describe(e: MigrationEvent): string | null {
  const who = e.migration ? `[${e.role} ${e.migration.id.slice(0, 8)}]` : `[${e.role}]`;
  switch (e.type) {
    case 'state':
      return `${who} ${e.state}`;
    case 'hello':
      return `${who} incoming guest of ${formatBytes(e.ramSize)} over ${e.channels} channels`;
    case 'channel':
      return null;
    case 'channel-rejected':
      return `${who} refused: ${e.code}: ${e.message}`;
    case 'round':
      return `${who} round ${e.round}: ${formatBytes(e.bytes)} in ${e.durationMs} ms (${rate(e.bandwidth)}), ${formatBytes(e.dirtyPages * 4096)} dirtied at ${rate(e.dirtyRate)}, expected downtime ${e.expectedDowntimeMs.toFixed(0)} ms${e.throttlePct != null ? `, throttle ${e.throttlePct.toFixed(1)}%` : ''}`;
    case 'switchover':
      return `${who} switchover after round ${e.round}: ${e.reason === 'downtime' ? `expected downtime ${e.expectedDowntimeMs.toFixed(0)} ms <= limit ${e.downtimeLimitMs} ms` : 'round limit reached'}`;
    case 'completed':
      return `${who} completed and verified: digest ${e.digest}, ${formatBytes(e.transferred)} in ${e.totalTimeMs} ms, downtime ${e.downtimeMs ?? '?'} ms`;
    case 'failed':
    case 'cancelled':
      return `${who} ${e.type}: ${e.code}${e.channel !== null ? ` (channel ${e.channel})` : ''}: ${e.message}`;
    case 'progress':
      return null;
    case 'qemu':
      return `${who} QEMU ${e.side}: ${e.figures.status}${e.figures.errorDesc ? `: ${e.figures.errorDesc}` : ''}`;
  }
}
