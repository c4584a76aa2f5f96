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

class HumanOutput implements Output {
  private drawn = 0;
  private readonly tty: boolean;
  private last: MigrationSnapshot | null = null;

  constructor(private readonly out: NodeJS.WriteStream) {
    this.tty = Boolean(out.isTTY);
  }

  event(e: MigrationEvent): void {
    if (e.type === 'progress') {
      this.last = e.snapshot;
      if (this.tty) this.draw(e.snapshot);
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
    const done = s.role === 'source' ? s.pageBytes / Math.max(1, s.ramSize) : s.pageBytes / Math.max(1, s.ramSize);
    const lines = [
      `${s.role} ${s.state.toUpperCase()} round ${s.round} ${bar(done, 30)} ${formatBytes(s.transferred)} at ${rate(s.transferRate)}` +
        (s.role === 'source' ? `, ${formatBytes(s.remaining)} dirty, ${rate(s.dirtyRate)} dirty rate` : ''),
    ];
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
    const shown = lines.slice(0, Math.max(2, (this.out.rows ?? 40) - 4));
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
