/**
 * `npm run bench -- [--quick] [--ram 2GiB] [--channels 1,2,4,8] [--repeats N] [--json out.json]`
 *
 * For each channel count, migrates an idle guest of --ram random bytes between two
 * processes on loopback, as on two hosts:
 *
 *   node bin/multifd.mjs dest --listen 127.0.0.1:0 --once --events ndjson
 *   node bin/multifd.mjs migrate --to ADDR --channels N --ram-size BYTES --fill random --workload idle --events ndjson
 *
 * and measures: wall time from the source's first event to its `completed` event (event
 * `time` fields; the guest's fill happens before the first event and is not counted), GiB/s
 * = RAM / wall, bytes on the wire (`transferred` of `completed`) and their overhead over
 * the RAM size, and the peak RSS of both processes (their last `process` line).
 *
 * Next to it, the "ceiling": bench/ceiling-send.ts and bench/ceiling-recv.ts, a bare Node
 * sender and receiver in two processes moving the same bytes over N loopback connections
 * (receiver: net.Socket `onread` into a fresh RamBlock that the destination's populating
 * worker faults in as it fills, as the engine does; sender: one pre-filled
 * random buffer). And `iperf3 -P N` (3.12 in Debian 12: one thread for all streams).
 *
 * And real QEMU (bench/qemu.ts): two `qemu-system-x86_64` processes, paused guests whose RAM
 * is a file in /dev/shm of the same kind of random bytes, multifd with N channels on both
 * sides, driven over QMP; wall = `migrate` sent → `completed` seen, and the destination's
 * RAM file compared byte for byte with the source's afterwards.
 *
 * iperf3 and qemu-system-x86 are installed with apt-get when missing and this runs as root;
 * otherwise their rows are absent and the output says why. --no-iperf / --no-qemu skip them.
 *
 * --quick: 256 MiB, channels 1,4, 1 repeat. Default: 2 GiB, channels 1,2,4,8, 3 repeats; a
 * row shows the run with the median wall time, the JSON has every run.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { formatBytes } from '../lib/guest/units';
import { QEMU_X86_64, cleanupAllNow, createRamFile, removePath } from '../lib/qemu/process';
import { helpRequested, ramOption } from './options';
import { Children, describeExit, type Child, type Json } from './children';
import { makeSourceRam, runQemu, type QemuRun } from './qemu';
import { ensureDebianPackage } from './tools';
import { parseSecureOptions, runSecureBench } from './secure';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'bin', 'multifd.mjs');
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

// ---- options ------------------------------------------------------------------------------

interface Options {
  ramBytes: number;
  channels: number[];
  repeats: number;
  json: string | null;
  quick: boolean;
  qemu: boolean;
  iperf: boolean;
  /** Arguments for the TLS and compression rows (bench/secure.ts), or null: --no-secure. */
  secure: string[] | null;
}

const USAGE = `usage: npm run bench -- [--quick] [--ram 2GiB] [--channels 1,2,4,8] [--repeats N] [--json out.json] [--no-qemu] [--no-iperf]
                        [--no-secure] [--secure "ARGS"]

  --quick          256 MiB guest, channels 1,4, 1 repeat (flags given explicitly still win)
  --ram SIZE       guest RAM (default 2GiB)
  --channels LIST  comma-separated channel counts (default 1,2,4,8)
  --repeats N      runs per channel count; rows show the median run (default 3)
  --json FILE      also write every run and the medians as JSON
  --no-qemu        no real-QEMU rows (default: run them; apt-get install qemu-system-x86 if missing and root)
  --no-iperf       no iperf3 rows (default: run them; apt-get install iperf3 if missing and root)
  --no-secure      no TLS and compression rows (default: run them, as npm run bench:secure -- --ram 512MiB)
  --secure ARGS    arguments for those rows instead (see npm run bench:secure -- --help)
`;

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      quick: { type: 'boolean' },
      ram: { type: 'string' },
      channels: { type: 'string' },
      repeats: { type: 'string' },
      json: { type: 'string' },
      'no-qemu': { type: 'boolean' },
      'no-iperf': { type: 'boolean' },
      'no-secure': { type: 'boolean' },
      secure: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  helpRequested(values.help, USAGE);
  const quick = values.quick ?? false;
  const ramBytes = ramOption(values.ram, quick ? '256MiB' : '2GiB');
  const channels = (values.channels ?? (quick ? '1,4' : '1,2,4,8')).split(',').map((s) => {
    const n = Number(s.trim());
    if (!Number.isInteger(n) || n < 1 || n > 255) throw new Error(`--channels: each count must be 1..255, got "${s}"`);
    return n;
  });
  const repeats = Number(values.repeats ?? (quick ? 1 : 3));
  if (!Number.isInteger(repeats) || repeats < 1 || repeats > 100) throw new Error(`--repeats must be 1..100, got "${values.repeats}"`);
  const secure = values['no-secure'] ? null : values.secure !== undefined ? values.secure.split(/\s+/).filter(Boolean) : quick ? ['--quick'] : ['--ram', '512MiB'];
  if (secure) parseSecureOptions(secure); // refused now, not after an hour of rows
  return { ramBytes, channels, repeats, json: values.json ?? null, quick, qemu: !values['no-qemu'], iperf: !values['no-iperf'], secure };
}

// ---- timeouts -------------------------------------------------------------------------------

/** Generous but finite: 2 min plus 90 s per GiB (this VM pays up to ~4.6 s/GiB in page faults alone). */
function runTimeoutMs(bytes: number): number {
  return 120_000 + Math.ceil((90_000 * bytes) / GiB);
}
const LISTEN_TIMEOUT_MS = 30_000;

// ---- what else this host did meanwhile ------------------------------------------------------

/** Jiffies of the aggregate `cpu` line of /proc/stat (Linux; null elsewhere). USER_HZ is 100 on Linux. */
interface CpuTicks {
  busy: number;
  softirq: number;
  steal: number;
}
const USER_HZ = 100;

function cpuTicks(): CpuTicks | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
    const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
    return { busy: user + nice + system + irq + softirq, softirq, steal };
  } catch {
    return null;
  }
}

/**
 * CPU the whole host spent during a run, next to what the run's own two processes report:
 * `otherMs` (host busy − softirq − ours) is what anything else took (the benchmark itself
 * included, a few ms), the best sign here that a run was disturbed. `stealMs`: time the
 * hypervisor took from this VM.
 */
interface HostCpu {
  busyMs: number;
  softirqMs: number;
  stealMs: number;
  oursMs: number;
  otherMs: number;
}

function hostCpu(before: CpuTicks | null, ours: Array<ProcessFigures | null>): HostCpu | null {
  const after = cpuTicks();
  if (!before || !after) return null;
  const ms = (t: number) => (t * 1000) / USER_HZ;
  const busyMs = ms(after.busy - before.busy);
  const softirqMs = ms(after.softirq - before.softirq);
  const oursMs = ours.reduce((n, p) => n + (p ? p.cpuUserMs + p.cpuSystemMs : 0), 0);
  return { busyMs, softirqMs, stealMs: ms(after.steal - before.steal), oursMs, otherMs: Math.max(0, busyMs - softirqMs - oursMs) };
}

const hostNote = (h: HostCpu | null) => (h ? `host: ours ${h.oursMs} ms, other ${Math.round(h.otherMs)} ms, softirq ${h.softirqMs} ms, steal ${h.stealMs} ms` : 'host CPU n/a');

// ---- fresh-memory probe ----------------------------------------------------------------------

const PROBE_BYTES = 256 * MiB;

/** s/GiB that first-touch of fresh memory costs now (bench/memprobe.ts); null if the probe failed. */
async function freshMemoryCost(kids: Children): Promise<number | null> {
  const p = kids.spawn('memprobe', ['--import', 'tsx', path.join(ROOT, 'bench', 'memprobe.ts'), '--bytes', String(PROBE_BYTES)]);
  try {
    await p.exit(60_000);
    const line = p.lines.find((o) => o.type === 'memprobe');
    return line ? Number(line.sPerGiB) : null;
  } catch {
    return null;
  } finally {
    await kids.stopAll();
  }
}

// ---- one engine run ---------------------------------------------------------------------------

interface ProcessFigures {
  maxRssBytes: number;
  cpuUserMs: number;
  cpuSystemMs: number;
}

interface EngineRun {
  channels: number;
  ramBytes: number;
  /** Source: first event → `completed` event, from their `time` fields. */
  wallMs: number;
  gibPerS: number;
  /** `totalTimeMs` of the source's `completed` event (the engine's own figure). */
  totalTimeMs: number;
  destTotalTimeMs: number | null;
  setupTimeMs: number | null;
  downtimeMs: number | null;
  rounds: number;
  transferredBytes: number;
  wireOverheadPct: number;
  /** Bandwidth the source reported for round 1 (all pages), bytes/s. */
  round1Bandwidth: number | null;
  source: ProcessFigures | null;
  destination: ProcessFigures | null;
  /** Whole source process, spawn to exit (guest fill and startup included). */
  sourceProcessMs: number;
  /** os.loadavg()[0] when the run started: others' work on this host skews the figures. */
  loadAvg1: number;
  host: HostCpu | null;
  /** s/GiB first-touch of fresh memory cost just before this run (bench/memprobe.ts). */
  freshMemSPerGiB: number | null;
}

function figures(c: Child): ProcessFigures | null {
  const p = [...c.lines].reverse().find((o) => o.type === 'process');
  if (!p) return null;
  return { maxRssBytes: Number(p.maxRssBytes), cpuUserMs: Number(p.cpuUserMs), cpuSystemMs: Number(p.cpuSystemMs) };
}

function isEvent(o: Json): boolean {
  return typeof o.time === 'number' && 'role' in o && 'migration' in o;
}

async function runEngine(kids: Children, channels: number, ramBytes: number): Promise<EngineRun> {
  const freshMemSPerGiB = await freshMemoryCost(kids);
  const timeout = runTimeoutMs(ramBytes);
  const loadAvg1 = os.loadavg()[0];
  const ticks = cpuTicks();
  const dest = kids.spawn(`dest (${channels} ch)`, [CLI, 'dest', '--listen', '127.0.0.1:0', '--once', '--events', 'ndjson']);
  try {
    const listening = await dest.waitFor((o) => o.type === 'listening', LISTEN_TIMEOUT_MS, 'listening line');
    const address = String(listening.address);
    const spawnedAt = Date.now();
    const src = kids.spawn(`migrate (${channels} ch)`, [
      CLI, 'migrate', '--to', address, '--channels', String(channels), '--ram-size', String(ramBytes),
      '--fill', 'random', '--workload', 'idle', '--events', 'ndjson',
    ]);
    const srcExit = await src.exit(timeout);
    const sourceProcessMs = Date.now() - spawnedAt;
    const dstExit = await dest.exit(30_000);
    if (srcExit.code !== 0 || dstExit.code !== 0) {
      const failed = [...src.lines, ...dest.lines].find((o) => o.type === 'failed' || o.type === 'cancelled');
      throw new Error(
        `engine run (${channels} ch) failed: migrate ${describeExit(srcExit)}, dest ${describeExit(dstExit)}` +
          (failed ? `: ${String(failed.code)}: ${String(failed.message)}` : '') +
          src.stderrSuffix() +
          dest.stderrSuffix(),
      );
    }
    const events = src.lines.filter(isEvent);
    const first = events[0];
    const completed = events.find((o) => o.type === 'completed' && o.role === 'source');
    if (!first || !completed) throw new Error(`engine run (${channels} ch): no ${first ? 'completed' : 'first'} event from the source${src.stderrSuffix()}`);
    const destCompleted = dest.lines.find((o) => o.type === 'completed' && o.role === 'destination');
    const round1 = events.find((o) => o.type === 'round' && o.round === 1);
    const wallMs = Number(completed.time) - Number(first.time);
    const transferred = Number(completed.transferred);
    return {
      channels,
      ramBytes,
      wallMs,
      gibPerS: ramBytes / GiB / (Math.max(1, wallMs) / 1000),
      totalTimeMs: Number(completed.totalTimeMs),
      destTotalTimeMs: destCompleted ? Number(destCompleted.totalTimeMs) : null,
      setupTimeMs: completed.setupTimeMs == null ? null : Number(completed.setupTimeMs),
      downtimeMs: completed.downtimeMs == null ? null : Number(completed.downtimeMs),
      rounds: Number(completed.rounds),
      transferredBytes: transferred,
      wireOverheadPct: ((transferred - ramBytes) / ramBytes) * 100,
      round1Bandwidth: round1 ? Number(round1.bandwidth) : null,
      source: figures(src),
      destination: figures(dest),
      sourceProcessMs,
      loadAvg1,
      host: hostCpu(ticks, [figures(src), figures(dest)]),
      freshMemSPerGiB,
    };
  } finally {
    await kids.stopAll();
  }
}

// ---- one ceiling run ----------------------------------------------------------------------------

interface CeilingRun {
  channels: number;
  bytes: number;
  /** Receiver: before its buffer allocation and connects → last byte. */
  wallMs: number;
  gibPerS: number;
  firstByteMs: number;
  sender: ProcessFigures | null;
  receiver: ProcessFigures | null;
  loadAvg1: number;
  host: HostCpu | null;
  /** s/GiB first-touch of fresh memory cost just before this run (bench/memprobe.ts). */
  freshMemSPerGiB: number | null;
}

async function runCeiling(kids: Children, channels: number, bytes: number): Promise<CeilingRun> {
  const freshMemSPerGiB = await freshMemoryCost(kids);
  const timeout = runTimeoutMs(bytes);
  const loadAvg1 = os.loadavg()[0];
  const ticks = cpuTicks();
  const tsx = ['--import', 'tsx'];
  const args = ['--bytes', String(bytes), '--channels', String(channels), '--timeout-ms', String(timeout)];
  const sender = kids.spawn(`ceiling-send (${channels} ch)`, [...tsx, path.join(ROOT, 'bench', 'ceiling-send.ts'), '--listen', '127.0.0.1:0', ...args]);
  try {
    // The sender fills its buffer before it listens.
    const listening = await sender.waitFor((o) => o.type === 'listening', LISTEN_TIMEOUT_MS + Math.ceil((30_000 * bytes) / GiB), 'listening line');
    const recv = kids.spawn(`ceiling-recv (${channels} ch)`, [...tsx, path.join(ROOT, 'bench', 'ceiling-recv.ts'), '--connect', String(listening.address), ...args]);
    const rExit = await recv.exit(timeout);
    const sExit = await sender.exit(30_000);
    const result = recv.lines.find((o) => o.type === 'result');
    if (rExit.code !== 0 || sExit.code !== 0 || !result) {
      throw new Error(
        `ceiling run (${channels} ch) failed: receiver ${describeExit(rExit)}, sender ${describeExit(sExit)}${recv.stderrSuffix()}${sender.stderrSuffix()}`,
      );
    }
    const wallMs = Number(result.wallMs);
    return {
      channels,
      bytes,
      wallMs,
      gibPerS: bytes / GiB / (Math.max(1, wallMs) / 1000),
      firstByteMs: Number(result.firstByteAt) - Number(result.startAt),
      sender: figures(sender),
      receiver: figures(recv),
      loadAvg1,
      host: hostCpu(ticks, [figures(sender), figures(recv)]),
      freshMemSPerGiB,
    };
  } finally {
    await kids.stopAll();
  }
}

// ---- iperf3 ------------------------------------------------------------------

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

interface IperfRun {
  channels: number;
  bytes: number;
  gibPerS: number;
  seconds: number;
}

/** `iperf3 -c 127.0.0.1 -P N -n BYTES -J` against a one-off `iperf3 -s -1`; both killed on any way out. */
async function runIperf(bin: string, channels: number, bytes: number, track: Set<import('node:child_process').ChildProcess>): Promise<IperfRun> {
  const port = await freePort();
  const timeout = runTimeoutMs(bytes);
  // --forceflush: iperf3 block-buffers stdout into a pipe, so its "listening" line would
  // only arrive at exit.
  const server = spawn(bin, ['-s', '-1', '--forceflush', '-B', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  track.add(server);
  server.once('exit', () => track.delete(server));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('iperf3 server did not start within 10 s')), 10_000);
      server.stdout!.on('data', (d: Buffer) => {
        if (/listening/i.test(d.toString())) {
          clearTimeout(timer);
          resolve();
        }
      });
      server.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`iperf3 server exited (${code})`));
      });
    });
    const client = spawn(bin, ['-c', '127.0.0.1', '-p', String(port), '-P', String(channels), '-n', String(bytes), '-J'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    track.add(client);
    let out = '';
    client.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => {
        client.kill('SIGKILL');
        reject(new Error(`iperf3 client not done within ${timeout} ms`));
      }, timeout);
      client.once('exit', (c) => {
        clearTimeout(timer);
        track.delete(client);
        resolve(c);
      });
    });
    if (code !== 0) throw new Error(`iperf3 client exited ${code}: ${out.slice(0, 500)}`);
    const j = JSON.parse(out) as { end?: { sum_received?: { bits_per_second?: number; seconds?: number; bytes?: number } } };
    const r = j.end?.sum_received;
    if (!r?.bits_per_second) throw new Error('iperf3 JSON has no end.sum_received');
    return { channels, bytes: r.bytes ?? bytes, gibPerS: r.bits_per_second / 8 / GiB, seconds: r.seconds ?? 0 };
  } finally {
    if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
  }
}

// ---- one QEMU run ------------------------------------------------------------------------------

type QemuBenchRun = QemuRun & {
  /** s/GiB first-touch of fresh memory cost just before this run (the destination's file pays it). */
  freshMemSPerGiB: number | null;
};

async function runQemuMeasured(kids: Children, channels: number, ramBytes: number, binary: string, sourceRamFile: string): Promise<QemuBenchRun> {
  const freshMemSPerGiB = await freshMemoryCost(kids);
  // Fresh random RAM for every run, as the engine's source fills its guest for every run:
  // on this VM the memory a destination then gets depends on what was just allocated and
  // freed (the first migration after 2 GiB were written took up to 3x the system time),
  // and a source file kept from run to run would spare QEMU's destination that.
  await createRamFile(sourceRamFile, ramBytes, 'random');
  const r = await runQemu(channels, ramBytes, { binary, sourceRamFile, timeoutMs: runTimeoutMs(ramBytes) });
  return { ...r, freshMemSPerGiB };
}

// ---- summary --------------------------------------------------------------------------------

/** The run with the median of `key` (the lower middle for an even count). */
function medianRun<T>(runs: T[], key: (r: T) => number): T {
  const sorted = [...runs].sort((a, b) => key(a) - key(b));
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

const f2 = (n: number | null | undefined) => (n == null || !Number.isFinite(n) ? '-' : n.toFixed(2));
const mib = (n: number | null | undefined) => (n == null ? '-' : `${Math.round(n / MiB)} MiB`);
const ratio = (a: number, b: number | null | undefined) => (b == null || !(b > 0) ? null : a / b);
const fx = (n: number | null) => (n == null ? '-' : `${n.toFixed(2)}x`);

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  const sep = `|${widths.map((w, i) => (i === 0 ? ':' : '-') + '-'.repeat(w) + (i === 0 ? '-' : ':')).join('|')}|`;
  return [line(header), sep, ...rows.map(line)].join('\n');
}

interface Row {
  channels: number;
  engine: { runs: EngineRun[]; median: EngineRun };
  ceiling: { runs: CeilingRun[]; median: CeilingRun };
  /** null: not run (see the notes) or every run failed (`failures` says why). */
  iperf3: { runs: IperfRun[]; median: IperfRun } | null;
  qemu: { runs: QemuBenchRun[]; median: QemuBenchRun } | null;
  failures: string[];
  /** Median engine GiB/s over the others' median GiB/s. */
  ratios: { engineOverQemu: number | null; engineOverCeiling: number | null; engineOverIperf3: number | null };
}

const secs = (p: ProcessFigures | null) => (p ? `${(p.cpuUserMs / 1000).toFixed(1)}+${(p.cpuSystemMs / 1000).toFixed(1)} s` : '?');

function rowNote(r: Row): string {
  const e = r.engine.median;
  const c = r.ceiling.median;
  const q = r.qemu?.median;
  return (
    `  ${String(r.channels).padStart(3)} ch: engine src ${secs(e.source)}, dst ${secs(e.destination)}, fresh memory ${f2(e.freshMemSPerGiB)} s/GiB; ` +
    `ceiling send ${secs(c.sender)}, recv ${secs(c.receiver)}, fresh memory ${f2(c.freshMemSPerGiB)} s/GiB` +
    (q ? `; QEMU src ${secs(q.source)}, dst ${secs(q.destination)}, fresh memory ${f2(q.freshMemSPerGiB)} s/GiB` : '')
  );
}

function otherRange(rows: Row[]): string {
  const all = rows.flatMap((r) => [...r.engine.runs, ...r.ceiling.runs]).flatMap((x) => (x.host ? [x.host.otherMs] : []));
  return all.length ? `${Math.round(Math.min(...all))}..${Math.round(Math.max(...all))} ms per run` : 'n/a';
}

// ---- main -----------------------------------------------------------------------------------

const log = (s: string) => process.stderr.write(`[bench] ${s}\n`);

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const kids = new Children(ROOT);
  const iperfProcs = new Set<import('node:child_process').ChildProcess>();
  const killEverything = () => {
    kids.killAllNow();
    for (const p of iperfProcs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    cleanupAllNow(); // QEMUs, their RAM files in /dev/shm, QMP sockets
  };
  // Every way out ends every child: normal return and errors (finally below), signals, exit.
  process.on('exit', killEverything);
  let interrupted = false;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      if (interrupted) return;
      interrupted = true;
      log(`${sig}: stopping ${kids.running.length + iperfProcs.size} child process(es) and any QEMU`);
      for (const p of iperfProcs) p.kill('SIGKILL');
      cleanupAllNow();
      void kids.stopAll(2000).finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
    });
  }

  const cpus = os.cpus();
  log(
    `${formatBytes(opts.ramBytes)} guest, channels ${opts.channels.join(',')}, ${opts.repeats} repeat(s); ` +
      `${cpus.length} CPU(s) (${cpus[0]?.model ?? '?'}), ${formatBytes(os.totalmem())} RAM, node ${process.version}`,
  );

  // The tools to compare with: found, installed, or why not.
  let iperf: string | null = null;
  let iperfNote = 'iperf3 rows absent: --no-iperf';
  if (opts.iperf) {
    const t = await ensureDebianPackage('iperf3', 'iperf3', log);
    iperf = t.path;
    iperfNote = t.path === null ? `iperf3 rows absent: ${t.reason}` : `iperf3 at ${t.path}${t.installed ? ' (installed now)' : ''}`;
  }
  log(iperfNote);
  let qemu: string | null = null;
  let qemuNote = 'QEMU rows absent: --no-qemu';
  if (opts.qemu && opts.ramBytes % MiB !== 0) {
    qemuNote = `QEMU rows absent: QEMU needs a whole number of MiB, --ram is ${opts.ramBytes} bytes`;
  } else if (opts.qemu) {
    const t = await ensureDebianPackage(QEMU_X86_64, 'qemu-system-x86', log);
    qemu = t.path;
    qemuNote = t.path === null ? `QEMU rows absent: ${t.reason}` : `QEMU at ${t.path}${t.installed ? ' (installed now)' : ''}`;
  }
  let sourceRam: string | null = null;
  if (qemu) {
    // The source's RAM file, written afresh before each QEMU run (runQemuMeasured); here only
    // 1 MiB, to find out now whether /dev/shm takes it, without a large write before phase 1.
    try {
      sourceRam = await makeSourceRam(MiB);
      log(`QEMU source RAM: ${sourceRam}, written with ${formatBytes(opts.ramBytes)} of random bytes before each QEMU run`);
    } catch (err) {
      qemuNote = `QEMU rows absent: cannot create the source RAM file in /dev/shm: ${(err as Error).message}`;
      qemu = null;
    }
  }
  log(qemuNote);

  const startedAt = new Date();
  const rows: Row[] = [];
  try {
    // Phase 1: the engine, the ceiling and iperf3, interleaved. Phase 2: QEMU.
    // On this VM, the first run after a large /dev/shm file is written, as every QEMU run
    // writes its guest's RAM, pays up to 3x the page-fault time (measured for the engine and
    // the ceiling's receiver alike; QEMU, itself writing /dev/shm, is not slowed). Interleaved
    // with QEMU, every engine and ceiling run paid it, so QEMU runs after the others.
    const perChannel = new Map<number, { engine: EngineRun[]; ceiling: CeilingRun[]; iperf: IperfRun[]; qemu: QemuBenchRun[]; failures: string[] }>();
    for (const ch of opts.channels) {
      const engineRuns: EngineRun[] = [];
      const ceilingRuns: CeilingRun[] = [];
      const iperfRuns: IperfRun[] = [];
      const qemuRuns: QemuBenchRun[] = [];
      const failures: string[] = [];
      perChannel.set(ch, { engine: engineRuns, ceiling: ceilingRuns, iperf: iperfRuns, qemu: qemuRuns, failures });
      for (let r = 1; r <= opts.repeats; r++) {
        const tag = `${ch} ch, run ${r}/${opts.repeats}`;
        const runEngineStep = async () => {
          const e = await runEngine(kids, ch, opts.ramBytes);
          engineRuns.push(e);
          log(
            `engine  ${tag}: ${f2(e.gibPerS)} GiB/s, wall ${f2(e.wallMs / 1000)} s (totalTimeMs ${e.totalTimeMs}), ` +
              `wire ${formatBytes(e.transferredBytes)} (+${e.wireOverheadPct.toFixed(3)}%), RSS src ${mib(e.source?.maxRssBytes)} dst ${mib(e.destination?.maxRssBytes)}, ` +
              `CPU src ${e.source?.cpuUserMs ?? '?'}+${e.source?.cpuSystemMs ?? '?'} ms dst ${e.destination?.cpuUserMs ?? '?'}+${e.destination?.cpuSystemMs ?? '?'} ms (user+sys); ${hostNote(e.host)}; fresh memory ${f2(e.freshMemSPerGiB)} s/GiB`,
          );
        };
        const runCeilingStep = async () => {
          const c = await runCeiling(kids, ch, opts.ramBytes);
          ceilingRuns.push(c);
          log(
            `ceiling ${tag}: ${f2(c.gibPerS)} GiB/s, wall ${f2(c.wallMs / 1000)} s, RSS send ${mib(c.sender?.maxRssBytes)} recv ${mib(c.receiver?.maxRssBytes)}, ` +
              `CPU send ${c.sender?.cpuUserMs ?? '?'}+${c.sender?.cpuSystemMs ?? '?'} ms recv ${c.receiver?.cpuUserMs ?? '?'}+${c.receiver?.cpuSystemMs ?? '?'} ms; ${hostNote(c.host)}; fresh memory ${f2(c.freshMemSPerGiB)} s/GiB`,
          );
        };
        const runIperfStep = async () => {
          if (!iperf) return;
          try {
            const i = await runIperf(iperf, ch, opts.ramBytes, iperfProcs);
            iperfRuns.push(i);
            log(`iperf3  ${tag}: ${f2(i.gibPerS)} GiB/s`);
          } catch (err) {
            failures.push(`iperf3 run ${r}: ${(err as Error).message}`);
            log(`iperf3  ${tag}: failed: ${(err as Error).message}`);
          }
        };
        // The order rotates from one repeat (and channel count) to the next, so that each
        // contender runs in each place and inherits the same memory states.
        const steps = [runEngineStep, runCeilingStep, runIperfStep];
        const shift = (r - 1 + opts.channels.indexOf(ch)) % steps.length;
        for (const step of [...steps.slice(shift), ...steps.slice(0, shift)]) await step();
      }
    }
    for (const ch of opts.channels) {
      const { qemu: qemuRuns, failures } = perChannel.get(ch)!;
      for (let r = 1; r <= opts.repeats; r++) {
        const tag = `${ch} ch, run ${r}/${opts.repeats}`;
        if (qemu && sourceRam) {
          try {
            const q = await runQemuMeasured(kids, ch, opts.ramBytes, qemu, sourceRam);
            qemuRuns.push(q);
            log(
              `qemu    ${tag}: ${f2(q.gibPerS)} GiB/s, wall ${f2(q.wallMs / 1000)} s (QEMU total-time ${q.totalTimeMs} ms, setup ${q.setupTimeMs} ms, downtime ${q.downtimeMs} ms), ` +
                `transferred ${formatBytes(q.transferredBytes ?? 0)}, multifd ${formatBytes(q.multifdBytes ?? 0)}, dst done +${q.destDoneMs - q.wallMs} ms, RAM equal ${q.ramEqual}` +
                `${q.firstDifference === null ? '' : ` (first difference at byte ${q.firstDifference})`}, ` +
                `CPU src ${q.source?.cpuUserMs ?? '?'}+${q.source?.cpuSystemMs ?? '?'} ms dst ${q.destination?.cpuUserMs ?? '?'}+${q.destination?.cpuSystemMs ?? '?'} ms; fresh memory ${f2(q.freshMemSPerGiB)} s/GiB`,
            );
          } catch (err) {
            if (interrupted) throw err;
            failures.push(`QEMU run ${r}: ${(err as Error).message}`);
            log(`qemu    ${tag}: failed: ${(err as Error).message}`);
          }
        }
      }
    }
    for (const ch of opts.channels) {
      const { engine: engineRuns, ceiling: ceilingRuns, iperf: iperfRuns, qemu: qemuRuns, failures } = perChannel.get(ch)!;
      const engine = { runs: engineRuns, median: medianRun(engineRuns, (x) => x.wallMs) };
      const ceiling = { runs: ceilingRuns, median: medianRun(ceilingRuns, (x) => x.wallMs) };
      const iperf3 = iperfRuns.length ? { runs: iperfRuns, median: medianRun(iperfRuns, (x) => -x.gibPerS) } : null;
      const qemuRow = qemuRuns.length ? { runs: qemuRuns, median: medianRun(qemuRuns, (x) => x.wallMs) } : null;
      rows.push({
        channels: ch,
        engine,
        ceiling,
        iperf3,
        qemu: qemuRow,
        failures,
        ratios: {
          engineOverQemu: ratio(engine.median.gibPerS, qemuRow?.median.gibPerS),
          engineOverCeiling: ratio(engine.median.gibPerS, ceiling.median.gibPerS),
          engineOverIperf3: ratio(engine.median.gibPerS, iperf3?.median.gibPerS),
        },
      });
    }
  } catch (err) {
    if (interrupted) return 130;
    process.stderr.write(`bench: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await kids.stopAll();
    if (sourceRam) removePath(sourceRam);
  }

  const header = ['channels', 'engine GiB/s', 'wall s', 'wire overhead %', 'src RSS', 'dst RSS', 'ceiling GiB/s'];
  if (iperf) header.push('iperf3 GiB/s');
  if (qemu) header.push('QEMU GiB/s', 'QEMU wall s', 'QEMU total-time s', 'QEMU RAM equal', 'engine/QEMU');
  header.push('engine/ceiling');
  const body = rows.map((r) => {
    const e = r.engine.median;
    const c = r.ceiling.median;
    const cells = [
      String(r.channels),
      f2(e.gibPerS),
      f2(e.wallMs / 1000),
      e.wireOverheadPct.toFixed(3),
      mib(e.source?.maxRssBytes),
      mib(e.destination?.maxRssBytes),
      f2(c.gibPerS),
    ];
    if (iperf) cells.push(r.iperf3 ? f2(r.iperf3.median.gibPerS) : 'failed');
    if (qemu) {
      const q = r.qemu;
      if (!q) cells.push('failed', '-', '-', '-', '-');
      else {
        const equal = q.runs.filter((x) => x.ramEqual).length;
        cells.push(
          f2(q.median.gibPerS),
          f2(q.median.wallMs / 1000),
          q.median.totalTimeMs == null ? '-' : f2(q.median.totalTimeMs / 1000),
          equal === q.runs.length ? (q.runs.length > 1 ? `true (${equal}/${q.runs.length})` : 'true') : `FALSE (${equal}/${q.runs.length})`,
          fx(r.ratios.engineOverQemu),
        );
      }
    }
    cells.push(fx(r.ratios.engineOverCeiling));
    return cells;
  });
  const what = opts.repeats > 1 ? `median of ${opts.repeats} runs (the run with the median wall time)` : '1 run';
  const failures = rows.flatMap((r) => r.failures.map((f) => `  ${r.channels} ch: ${f.split('\n')[0]}`));
  process.stdout.write(
    `\nmultifd loopback benchmark: ${formatBytes(opts.ramBytes)} idle guest, random fill, two processes per run; ${what}\n\n` +
      `${table(header, body)}\n\n` +
      `engine: wall = source's first event -> its 'completed' event (guest fill not counted); GiB/s = RAM / wall.\n` +
      `ceiling: bare Node sender/receiver, N loopback connections, receiver reads with onread into one fresh block of guest RAM, populated by the same worker as the destination.\n` +
      (iperf ? `iperf3: iperf3 -c 127.0.0.1 -P N -n RAM, received rate (iperf3 3.12 serves all streams from one thread).\n` : `${iperfNote}.\n`) +
      (qemu
        ? `QEMU: ${rows.find((r) => r.qemu)?.qemu?.median.qemuVersion ?? '?'}, two paused guests (-machine none, RAM = a file in /dev/shm written afresh with random bytes before each run, as the engine's source fills its guest, share=on), multifd N channels both sides, ` +
          `max-bandwidth 1 TiB/s; wall = QMP 'migrate' sent -> source's MIGRATION 'completed' event; total-time is QEMU's own figure; RAM equal = destination's RAM file byte-identical to the source's.\n` +
          `engine/X = engine GiB/s / X GiB/s (above 1: the engine is faster).\n`
        : `${qemuNote}.\nengine/X = engine GiB/s / X GiB/s (above 1: the engine is faster).\n`) +
      `RSS: peak (maxRSS) of each whole process.\n` +
      `First touch of fresh memory (page fault + kernel zeroing) costs ~0.5-4.6 s per GiB on this VM, varying from minute to minute;\n` +
      `the destination, the ceiling's receiver and QEMU's destination (its fresh /dev/shm file) pay it inside the timed span, the senders before it.\n` +
      `Disturbance: CPU taken by anything but the two processes of a run (their exit included): ${otherRange(rows)} (from /proc/stat; this host has ${cpus.length} CPUs).\n` +
      `Order: engine, ceiling and iperf3 interleaved, rotated by one place per repeat and channel count; QEMU's runs after them all (on this VM the first run after\n` +
      `a large /dev/shm write, as each QEMU run makes, paid up to 3x the page-fault time; QEMU itself was not slowed by it).\n\n` +
      `Per row (the runs shown): CPU user+system of each process, and fresh-memory cost measured just before each run:\n` +
      rows.map(rowNote).join('\n') +
      '\n' +
      (failures.length ? `\nFailed runs:\n${failures.join('\n')}\n` : ''),
  );
  if (opts.json) {
    const doc = {
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      options: opts,
      host: { cpus: cpus.length, cpuModel: cpus[0]?.model ?? null, totalMemBytes: os.totalmem(), node: process.version, platform: `${os.platform()} ${os.release()}` },
      iperf3: iperf ?? null,
      iperf3Note: iperfNote,
      qemu: qemu ?? null,
      qemuNote,
      commands: {
        dest: 'node bin/multifd.mjs dest --listen 127.0.0.1:0 --once --events ndjson',
        migrate: `node bin/multifd.mjs migrate --to ADDR --channels N --ram-size ${opts.ramBytes} --fill random --workload idle --events ndjson`,
        ceilingSend: `node --import tsx bench/ceiling-send.ts --listen 127.0.0.1:0 --bytes ${opts.ramBytes} --channels N`,
        ceilingRecv: `node --import tsx bench/ceiling-recv.ts --connect ADDR --bytes ${opts.ramBytes} --channels N`,
        iperf3: `iperf3 -s -1 --forceflush -B 127.0.0.1 -p PORT; iperf3 -c 127.0.0.1 -p PORT -P N -n ${opts.ramBytes} -J`,
        qemu:
          `qemu-system-x86_64 -nodefaults -display none -S -accel tcg -machine none,memory-backend=mem -m ${Math.floor(opts.ramBytes / MiB)}M ` +
          `-object memory-backend-file,id=mem,size=${opts.ramBytes},mem-path=/dev/shm/...-{src,dst}.ram,share=on -qmp unix:SOCKET,server=on,wait=off -name {src,dst} -uuid UUID [-incoming defer]; ` +
          `QMP both: migrate-set-capabilities multifd+events, migrate-set-parameters multifd-channels N; src: max-bandwidth 2^40; dst: migrate-incoming tcp:127.0.0.1:0; src: migrate tcp:127.0.0.1:PORT`,
      },
      rows,
      secure: null as unknown,
    };
    if (opts.secure && !interrupted) doc.secure = await secureRows(opts.secure, kids, () => interrupted);
    writeFileSync(opts.json, `${JSON.stringify(doc, null, 2)}\n`);
    log(`wrote ${opts.json}`);
  } else if (opts.secure && !interrupted) {
    await secureRows(opts.secure, kids, () => interrupted);
  }
  return 0;
}

/** The TLS and compression rows (bench/secure.ts), printed after the loopback table. */
async function secureRows(args: string[], kids: Children, isInterrupted: () => boolean): Promise<unknown> {
  const o = parseSecureOptions(args);
  log(`TLS and compression rows: npm run bench:secure -- ${args.join(' ')}`);
  try {
    const { text, runs } = await runSecureBench(o, kids, isInterrupted);
    process.stdout.write(`\n${text}\n`);
    return { options: o, report: text, rows: runs };
  } catch (err) {
    process.stderr.write(`bench: TLS and compression rows failed: ${(err as Error).message}\n`);
    return { options: o, error: (err as Error).message };
  }
}

process.exitCode = await main();
