/**
 * `npm run bench:wan -- [--quick] [--ram 512MiB] [--channels 1,2,4,8,16] [--rtt-ms 50] [--window 4MiB]
 *                      [--rate 1gbit|none] [--baseline-channels 4] [--repeats 1] [--json FILE]`
 *
 * Two hosts on one machine: two network namespaces joined by a veth pair, as root,
 *
 *   mfd-src  10.77.0.1/24 (veth mfd-s)  ──veth──  (veth mfd-d) 10.77.0.2/24  mfd-dst
 *   migrate ─lo─> delay relay ─────────────────────────────────────────────> dest
 *
 * and a long link between them. This kernel has no netem (tc knows tbf and htb, not netem,
 * fq or cake), so the delay comes from bench/delay-relay.ts in the source namespace: RTT/2
 * each way and at most WINDOW bytes in flight per connection and direction, i.e. WINDOW/RTT
 * per connection (4 MiB / 50 ms = 80 MiB/s), as TCP gets over a real WAN when the window,
 * not the link, is the limit. A tbf rate cap on the source's veth (--rate) plays the link.
 *
 * Rows: one baseline straight over the veth (no relay, no delay); the engine through the
 * relay with each channel count; the same with the tbf cap. Each run migrates an idle guest
 * of --ram random bytes (`multifd migrate ... --fill random --workload idle`) to a fresh
 * `multifd dest --once` and measures wall time from the source's first event to its
 * `completed` event (the guest's fill is not counted), MiB/s = RAM / wall, next to the ideal
 * min(N × WINDOW/RTT, link cap).
 *
 * The namespaces are created at start (stale ones from a crashed run removed first) and
 * deleted on every way out: normal end, error, SIGINT/SIGTERM/SIGHUP, process exit.
 * Not root, or `ip netns add` failing: a message saying why, exit 1; nothing is skipped.
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { formatBytes, parseSize } from '../lib/guest/units';
import { countList, helpRequested, ramOption } from './options';
import { Children, describeExit, type Child, type Json } from './children';
import { IP_DST, IP_SRC, NS_DST, NS_SRC, Netns, TBF_BURST, TBF_LATENCY, VETH_DST, VETH_SRC, onPath, spawnIn, type TbfStats } from './netns';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'bin', 'multifd.mjs');
const RELAY = path.join(ROOT, 'bench', 'delay-relay.ts');
const MiB = 1024 ** 2;

/**
 * TCP payload per byte tbf counts on the veth: tbf meters whole Ethernet frames (1514 bytes
 * for a 1500-byte MTU) of which 1448 are payload (IPv4 20 + TCP 20 + timestamps 12 bytes).
 */
const PAYLOAD_PER_FRAME_BYTE = 1448 / 1514;

// ---- options ------------------------------------------------------------------------------

interface Options {
  ramBytes: number;
  channels: number[];
  rttMs: number;
  windowBytes: number;
  /** tc rate as given (e.g. "2gbit"), or null: no capped rows. */
  rate: string | null;
  rateBytesPerS: number | null;
  baselineChannels: number;
  repeats: number;
  json: string | null;
  quick: boolean;
}

const USAGE = `usage: npm run bench:wan -- [--quick] [--ram 512MiB] [--channels 1,2,4,8,16] [--rtt-ms 50]
                          [--window 4MiB] [--rate 1gbit|none] [--baseline-channels 4] [--repeats 1] [--json FILE]

Needs root: creates network namespaces ${NS_SRC} and ${NS_DST} joined by a veth pair.

  --quick                128 MiB guest, channels 1,4,16 (flags given explicitly still win)
  --ram SIZE             guest RAM (default 512MiB)
  --channels LIST        channel counts through the relay (default 1,2,4,8,16)
  --rtt-ms MS            round-trip time the relay adds (default 50)
  --window SIZE          bytes in flight per connection and direction (default 4MiB)
  --rate RATE            tbf cap on the source's veth for the capped rows, in tc's units
                         (bit, kbit, mbit, gbit, bps = bytes/s, kbps, mbps, gbps); 'none': no
                         capped rows (default 1gbit = 125 MB/s, 114 MiB/s of TCP payload)
  --baseline-channels N  channels of the no-relay baseline row (default 4)
  --repeats N            runs per row; the row shows the run with the median wall time (default 1)
  --json FILE            also write every run as JSON
`;

/** tc's rate units → bytes/s (tc: "bit" is bits/s, "bps" is bytes/s, k/m/g/t are powers of 1000). */
function parseTcRate(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit|tbit|bps|kbps|mbps|gbps|tbps)$/i.exec(s.trim());
  if (!m) throw new Error(`--rate: expected a tc rate such as 200mbit, 2gbit or 250mbps, got "${s}"`);
  const unit = m[2].toLowerCase();
  const scale = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12 }[unit.replace(/(bit|bps)$/, '') as '' | 'k' | 'm' | 'g' | 't'];
  const bytesPerS = Number(m[1]) * scale * (unit.endsWith('bit') ? 1 / 8 : 1);
  if (!(bytesPerS > 0)) throw new Error(`--rate must be positive, got "${s}"`);
  return bytesPerS;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      quick: { type: 'boolean' },
      ram: { type: 'string' },
      channels: { type: 'string' },
      'rtt-ms': { type: 'string' },
      window: { type: 'string' },
      rate: { type: 'string' },
      'baseline-channels': { type: 'string' },
      repeats: { type: 'string' },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  helpRequested(values.help, USAGE);
  const quick = values.quick ?? false;
  const ramBytes = ramOption(values.ram, quick ? '128MiB' : '512MiB');
  const rttMs = Number(values['rtt-ms'] ?? 50);
  if (!Number.isFinite(rttMs) || rttMs <= 0 || rttMs > 10_000) throw new Error(`--rtt-ms must be 0 < ms <= 10000, got "${values['rtt-ms']}"`);
  const windowBytes = parseSize(values.window ?? '4MiB');
  if (windowBytes < 1) throw new Error('--window must be at least 1 byte');
  // 1gbit, not more: on this 2-CPU machine source, destination and relay together top out
  // near 200 MiB/s, so a cap above that would never be what binds.
  const rateArg = values.rate ?? '1gbit';
  const rate = rateArg === 'none' ? null : rateArg;
  const [baselineChannels] = countList(values['baseline-channels'] ?? '4', '--baseline-channels');
  const repeats = Number(values.repeats ?? 1);
  if (!Number.isInteger(repeats) || repeats < 1 || repeats > 20) throw new Error(`--repeats must be 1..20, got "${values.repeats}"`);
  return {
    ramBytes,
    channels: countList(values.channels ?? (quick ? '1,4,16' : '1,2,4,8,16'), '--channels'),
    rttMs,
    windowBytes,
    rate,
    rateBytesPerS: rate === null ? null : parseTcRate(rate),
    baselineChannels,
    repeats,
    json: values.json ?? null,
    quick,
  };
}

const log = (s: string) => process.stderr.write(`[bench:wan] ${s}\n`);

// ---- one run --------------------------------------------------------------------------------

type Link = 'direct' | 'relay' | 'relay+tbf';

interface ProcessFigures {
  maxRssBytes: number;
  cpuUserMs: number;
  cpuSystemMs: number;
}

interface RelayFigures {
  connections: number;
  bytesForward: number;
  bytesReverse: number;
  peakInFlight: number;
  lateMsMean: number;
  lateMsMax: number;
  timerLateMsMean: number;
  timerLateMsMax: number;
  cpuUserMs: number;
  cpuSystemMs: number;
}

interface WanRun {
  link: Link;
  channels: number;
  ramBytes: number;
  /** Source: first event → `completed` event, from their `time` fields. */
  wallMs: number;
  mibPerS: number;
  /** Round 1 (every page once) as the source reports it, MiB/s. */
  round1MibPerS: number | null;
  /** min(N × window/RTT, link payload rate) in MiB/s; null for the direct baseline. */
  idealMibPerS: number | null;
  totalTimeMs: number;
  setupTimeMs: number | null;
  downtimeMs: number | null;
  rounds: number;
  transferredBytes: number;
  source: ProcessFigures | null;
  destination: ProcessFigures | null;
  relay: RelayFigures | null;
  /** The tbf's counters for this run (capped rows; the qdisc is added afresh before each). */
  tbf: TbfStats | null;
  loadAvg1: number;
}

const LISTEN_TIMEOUT_MS = 30_000;
/** Generous: 2 min plus the RAM at 5 MiB/s, far below the slowest row's window/RTT. */
const runTimeoutMs = (bytes: number) => 120_000 + Math.ceil((bytes / (5 * MiB)) * 1000);

function figures(c: Child): ProcessFigures | null {
  const p = [...c.lines].reverse().find((o) => o.type === 'process');
  return p ? { maxRssBytes: Number(p.maxRssBytes), cpuUserMs: Number(p.cpuUserMs), cpuSystemMs: Number(p.cpuSystemMs) } : null;
}

const isEvent = (o: Json) => typeof o.time === 'number' && 'role' in o && 'migration' in o;

async function runOnce(kids: Children, ip: string, opts: Options, link: Link, channels: number): Promise<WanRun> {
  const ram = opts.ramBytes;
  const tag = `${link}, ${channels} ch`;
  const loadAvg1 = os.loadavg()[0];
  try {
    // Generous timeouts: every setup step costs round trips over the long link.
    const dest = spawnIn(kids, ip, NS_DST, `dest (${tag})`, [
      CLI, 'dest', '--listen', `${IP_DST}:0`, '--once', '--events', 'ndjson', '--timeout-ms', '60000', '--no-progress-timeout-ms', '60000',
    ]);
    const destAddr = String((await dest.waitFor((o) => o.type === 'listening', LISTEN_TIMEOUT_MS, 'listening line')).address);
    let to = destAddr;
    let relay: Child | null = null;
    if (link !== 'direct') {
      relay = spawnIn(kids, ip, NS_SRC, `delay-relay (${tag})`, [
        '--import', 'tsx', RELAY, '--listen', '127.0.0.1:0', '--to', destAddr, '--rtt-ms', String(opts.rttMs), '--window', String(opts.windowBytes),
      ]);
      to = String((await relay.waitFor((o) => o.type === 'listening', LISTEN_TIMEOUT_MS, 'listening line')).address);
    }
    const src = spawnIn(kids, ip, NS_SRC, `migrate (${tag})`, [
      CLI, 'migrate', '--to', to, '--channels', String(channels), '--ram-size', String(ram), '--fill', 'random', '--workload', 'idle',
      '--events', 'ndjson', '--timeout-ms', '60000', '--connect-timeout-ms', '30000', '--no-progress-timeout-ms', '60000', '--verify-timeout-ms', '300000',
    ]);
    const srcExit = await src.exit(runTimeoutMs(ram));
    const dstExit = await dest.exit(30_000);
    let relayFigures: RelayFigures | null = null;
    if (relay) {
      // The relay reports its totals and CPU on SIGTERM, then exits.
      relay.kill('SIGTERM');
      await relay.exit(10_000);
      const s = relay.lines.find((o) => o.type === 'stats');
      if (s) {
        relayFigures = {
          connections: Number(s.connections), bytesForward: Number(s.bytesForward), bytesReverse: Number(s.bytesReverse),
          peakInFlight: Number(s.peakInFlight), lateMsMean: Number(s.lateMsMean), lateMsMax: Number(s.lateMsMax),
          timerLateMsMean: Number(s.timerLateMsMean), timerLateMsMax: Number(s.timerLateMsMax),
          cpuUserMs: Number(s.cpuUserMs), cpuSystemMs: Number(s.cpuSystemMs),
        };
      }
    }
    if (srcExit.code !== 0 || dstExit.code !== 0) {
      const failed = [...src.lines, ...dest.lines].find((o) => o.type === 'failed' || o.type === 'cancelled');
      throw new Error(
        `run (${tag}) failed: migrate ${describeExit(srcExit)}, dest ${describeExit(dstExit)}` +
          (failed ? `: ${String(failed.code)}: ${String(failed.message)}` : '') + src.stderrSuffix() + dest.stderrSuffix() + (relay?.stderrSuffix() ?? ''),
      );
    }
    const events = src.lines.filter(isEvent);
    const first = events[0];
    const completed = events.find((o) => o.type === 'completed' && o.role === 'source');
    if (!first || !completed) throw new Error(`run (${tag}): no ${first ? 'completed' : 'first'} event from the source${src.stderrSuffix()}`);
    const round1 = events.find((o) => o.type === 'round' && o.round === 1);
    const wallMs = Number(completed.time) - Number(first.time);
    const windowMibPerS = opts.windowBytes / MiB / (opts.rttMs / 1000);
    const capMibPerS = link === 'relay+tbf' && opts.rateBytesPerS !== null ? (opts.rateBytesPerS * PAYLOAD_PER_FRAME_BYTE) / MiB : Infinity;
    return {
      link,
      channels,
      ramBytes: ram,
      wallMs,
      mibPerS: ram / MiB / (Math.max(1, wallMs) / 1000),
      round1MibPerS: round1 ? Number(round1.bandwidth) / MiB : null,
      idealMibPerS: link === 'direct' ? null : Math.min(channels * windowMibPerS, capMibPerS),
      totalTimeMs: Number(completed.totalTimeMs),
      setupTimeMs: completed.setupTimeMs == null ? null : Number(completed.setupTimeMs),
      downtimeMs: completed.downtimeMs == null ? null : Number(completed.downtimeMs),
      rounds: Number(completed.rounds),
      transferredBytes: Number(completed.transferred),
      source: figures(src),
      destination: figures(dest),
      relay: relayFigures,
      tbf: null,
      loadAvg1,
    };
  } finally {
    await kids.stopAll();
  }
}

// ---- output ---------------------------------------------------------------------------------

const f0 = (n: number | null | undefined) => (n == null || !Number.isFinite(n) ? '-' : n.toFixed(0));
const f1 = (n: number | null | undefined) => (n == null || !Number.isFinite(n) ? '-' : n.toFixed(1));
const f2 = (n: number | null | undefined) => (n == null || !Number.isFinite(n) ? '-' : n.toFixed(2));
const cpuS = (p: { cpuUserMs: number; cpuSystemMs: number } | null) => (p ? ((p.cpuUserMs + p.cpuSystemMs) / 1000).toFixed(1) : '?');

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  const sep = `|${widths.map((w, i) => (i === 0 ? ':' : '-') + '-'.repeat(w) + (i === 0 ? '-' : ':')).join('|')}|`;
  return [line(header), sep, ...rows.map(line)].join('\n');
}

function linkLabel(link: Link, opts: Options): string {
  const delay = `${opts.rttMs} ms RTT, ${formatBytes(opts.windowBytes)} window`;
  if (link === 'direct') return 'veth, no relay';
  if (link === 'relay') return delay;
  return `${delay}, tbf ${opts.rate}`;
}

function modelText(opts: Options): string {
  const per = opts.windowBytes / MiB / (opts.rttMs / 1000);
  return [
    `How the link is modelled (bench/delay-relay.ts, a Node TCP relay in ${NS_SRC}, between the source and the veth):`,
    `  - every byte reaches the other side ${opts.rttMs / 2} ms after the relay read it, in both directions, so each`,
    `    request/response exchange of the protocol (handshakes, sync rounds, the verdict) costs one ${opts.rttMs} ms RTT;`,
    `  - each connection and direction has at most ${formatBytes(opts.windowBytes)} in flight, credited back ${opts.rttMs} ms after it was read`,
    `    (when its ACK would return): ${formatBytes(opts.windowBytes)} / ${opts.rttMs} ms = ${per.toFixed(0)} MiB/s per connection, as a TCP window over a`,
    `    long path; windows are independent, so N channels get N times that until the link cap binds;`,
    `  - the link cap: tbf on ${VETH_SRC} (source -> destination), ${opts.rate ?? 'none'}; ideal payload = rate x 1448/1514 (TCP/IP + Ethernet headers);`,
    `  - the relay is byte-transparent: it changes no byte of any connection. The addresses it changes are the engine's`,
    `    own business (HelloAck tells the source the main connection's address as the destination saw it; when that is`,
    `    not the source's own, the source accepts channels by id), as through any NAT or proxy.`,
    `Where it differs from a real WAN: no loss or retransmission; no slow start or congestion control (the window is`,
    `  full-size at once and never shrinks); no shared bottleneck queue but the tbf; the TCP handshake is not delayed`,
    `  (about one RTT cheaper per connection setup); the delay is applied once, at the relay, not per hop; window credit`,
    `  returns on a timer, not on ACKs from the far end (a slow receiver shows as backpressure on the relay, not as a`,
    `  smaller window); and the relay is one more single-threaded process copying every byte on this ${os.cpus().length}-CPU machine,`,
    `  beside the source and the destination: its CPU and how late it delivered (late ms) are in the table.`,
  ].join('\n');
}

// ---- main -----------------------------------------------------------------------------------

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench:wan: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }

  // Preconditions: say exactly why not, never skip quietly.
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    process.stderr.write(`bench:wan: needs root: it creates network namespaces (ip netns) and a tc qdisc; running as uid ${process.getuid()}.\n`);
    return 1;
  }
  const ip = onPath('ip');
  const tc = onPath('tc');
  if (!ip || !tc) {
    process.stderr.write(`bench:wan: needs iproute2's \`ip\` and \`tc\` on PATH (missing: ${[ip ? null : 'ip', tc ? null : 'tc'].filter(Boolean).join(', ')}).\n`);
    return 1;
  }

  const kids = new Children(ROOT);
  const netns = new Netns(ip, tc);
  // Every way out ends every child, then deletes the namespaces: return and errors (finally
  // below), signals, and process exit (synchronous last resort, e.g. an uncaught exception).
  process.on('exit', () => {
    kids.killAllNow();
    netns.destroy();
  });
  let interrupted = false;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      if (interrupted) return;
      interrupted = true;
      log(`${sig}: stopping ${kids.running.length} child process(es), deleting ${NS_SRC} and ${NS_DST}`);
      void kids.stopAll(2000).finally(() => {
        netns.destroy();
        process.exit(sig === 'SIGINT' ? 130 : 143);
      });
    });
  }

  try {
    netns.create();
  } catch (err) {
    netns.destroy();
    process.stderr.write(`bench:wan: cannot set up the two namespaces: ${(err as Error).message}\n`);
    return 1;
  }

  const cpus = os.cpus();
  log(
    `${formatBytes(opts.ramBytes)} guest; relay ${opts.rttMs} ms RTT, ${formatBytes(opts.windowBytes)} window; channels ${opts.channels.join(',')}; ` +
      `tbf ${opts.rate ?? 'none'}; ${cpus.length} CPU(s), node ${process.version}; load ${os.loadavg()[0].toFixed(2)}`,
  );
  const startedAt = new Date();
  const rows: Array<{ link: Link; channels: number; runs: WanRun[]; median: WanRun }> = [];
  const plan: Array<{ link: Link; channels: number }> = [
    { link: 'direct', channels: opts.baselineChannels },
    ...opts.channels.map((channels) => ({ link: 'relay' as const, channels })),
    ...(opts.rate === null ? [] : opts.channels.map((channels) => ({ link: 'relay+tbf' as const, channels }))),
  ];
  let qdisc = '';
  try {
    for (const { link, channels } of plan) {
      const runs: WanRun[] = [];
      for (let rep = 1; rep <= opts.repeats; rep++) {
        if (interrupted) return 130;
        // Removed and added afresh for each capped run, so that its counters are this run's.
        netns.setRate(null);
        if (link === 'relay+tbf') {
          netns.setRate(opts.rate);
          qdisc ||= netns.qdisc();
        }
        const r = await runOnce(kids, ip, opts, link, channels);
        if (link === 'relay+tbf') r.tbf = netns.qdiscStats();
        runs.push(r);
        log(
          `${linkLabel(link, opts)}, ${channels} ch${opts.repeats > 1 ? `, run ${rep}/${opts.repeats}` : ''}: ${f1(r.mibPerS)} MiB/s (ideal ${f0(r.idealMibPerS)}), wall ${f2(r.wallMs / 1000)} s, ` +
            `round 1 ${f1(r.round1MibPerS)} MiB/s, ${r.rounds} rounds, wire ${formatBytes(r.transferredBytes)}; CPU s src ${cpuS(r.source)} dst ${cpuS(r.destination)}` +
            (r.relay ? ` relay ${cpuS(r.relay)} (${r.relay.connections} conns, peak in flight ${formatBytes(r.relay.peakInFlight)}, late mean ${r.relay.lateMsMean} max ${r.relay.lateMsMax} ms, timers late max ${r.relay.timerLateMsMax} ms)` : '') +
            (r.tbf ? `; tbf sent ${formatBytes(r.tbf.sentBytes)}, dropped ${r.tbf.dropped}, overlimits ${r.tbf.overlimits}` : '') +
            `; load ${r.loadAvg1.toFixed(2)}`,
        );
      }
      // The median run by wall time (the lower middle for an even count).
      const median = [...runs].sort((a, b) => a.wallMs - b.wallMs)[Math.floor((runs.length - 1) / 2)];
      rows.push({ link, channels, runs, median });
    }
  } catch (err) {
    if (interrupted) return 130;
    process.stderr.write(`bench:wan: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await kids.stopAll();
    netns.destroy();
  }

  const header = ['link', 'channels', 'wall s', 'MiB/s', 'ideal MiB/s', 'of ideal', 'round 1 MiB/s', 'CPU s src/dst/relay', 'relay late ms mean/max', 'timer late max', 'tbf drops'];
  const body = rows.map(({ median: r }) => [
    linkLabel(r.link, opts),
    String(r.channels),
    f2(r.wallMs / 1000),
    f1(r.mibPerS),
    f0(r.idealMibPerS),
    r.idealMibPerS ? `${((r.mibPerS / r.idealMibPerS) * 100).toFixed(0)}%` : '-',
    f1(r.round1MibPerS),
    `${cpuS(r.source)}/${cpuS(r.destination)}/${r.relay ? cpuS(r.relay) : '-'}`,
    r.relay ? `${f1(r.relay.lateMsMean)}/${f0(r.relay.lateMsMax)}` : '-',
    r.relay ? f0(r.relay.timerLateMsMax) : '-',
    r.tbf ? String(r.tbf.dropped) : '-',
  ]);
  const capNote = opts.rateBytesPerS
    ? `tbf ${opts.rate} = ${(opts.rateBytesPerS / MiB).toFixed(0)} MiB/s of frames, ${((opts.rateBytesPerS * PAYLOAD_PER_FRAME_BYTE) / MiB).toFixed(0)} MiB/s of payload (burst ${TBF_BURST}, latency ${TBF_LATENCY})`
    : 'no tbf rows (--rate none)';
  process.stdout.write(
    `\nmultifd two-host benchmark: ${NS_SRC} -> ${NS_DST} over a veth pair; ${formatBytes(opts.ramBytes)} idle guest, random fill; ${opts.repeats > 1 ? `median of ${opts.repeats} runs per row (by wall time)` : '1 run per row'}\n\n` +
      `${table(header, body)}\n\n` +
      `wall = source's first event -> its 'completed' event (guest fill not counted); MiB/s = RAM / wall, setup and final sync round trips included.\n` +
      `ideal = min(channels x ${formatBytes(opts.windowBytes)} / ${opts.rttMs} ms, link cap); ${capNote}.\n` +
      `round 1 = the source's own bandwidth figure for the pass over all pages. CPU s = user+system of each whole process.\n` +
      `veth, no relay = the engine's own ceiling on this machine (no delay, no relay process): relay rows cannot beat it, and\n` +
      `the relay's CPU (one more copy of every byte) lowers it further; where a row stalls below its ideal, look there first.\n` +
      `relay late = how long after its due time the relay wrote a chunk (its own delays and receiver backpressure both);\n` +
      `timer late = how late the relay's timers fired, its own delay alone (CPU starvation, GC): large late with small timer\n` +
      `late means the destination side (tbf queue, destination CPU) held the bytes back, not the relay.\n` +
      `tbf drops = packets the cap dropped (the relay itself never loses any). Single runs on a shared machine are noisy: --repeats N.\n\n` +
      `${modelText(opts)}\n`,
  );
  if (opts.json) {
    const doc = {
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      options: opts,
      host: { cpus: cpus.length, cpuModel: cpus[0]?.model ?? null, totalMemBytes: os.totalmem(), node: process.version, platform: `${os.platform()} ${os.release()}` },
      topology: { namespaces: [NS_SRC, NS_DST], veth: [`${VETH_SRC} ${IP_SRC}/24`, `${VETH_DST} ${IP_DST}/24`], qdisc: qdisc || null },
      commands: {
        dest: `ip netns exec ${NS_DST} node bin/multifd.mjs dest --listen ${IP_DST}:0 --once --events ndjson --timeout-ms 60000 --no-progress-timeout-ms 60000`,
        relay: `ip netns exec ${NS_SRC} node --import tsx bench/delay-relay.ts --listen 127.0.0.1:0 --to DEST --rtt-ms ${opts.rttMs} --window ${opts.windowBytes}`,
        migrate: `ip netns exec ${NS_SRC} node bin/multifd.mjs migrate --to RELAY_OR_DEST --channels N --ram-size ${opts.ramBytes} --fill random --workload idle --events ndjson (+ timeouts)`,
        tbf: opts.rate ? `tc -n ${NS_SRC} qdisc replace dev ${VETH_SRC} root tbf rate ${opts.rate} burst ${TBF_BURST} latency ${TBF_LATENCY}` : null,
      },
      model: modelText(opts),
      rows,
    };
    writeFileSync(opts.json, `${JSON.stringify(doc, null, 2)}\n`);
    log(`wrote ${opts.json}`);
  }
  return 0;
}

process.exitCode = await main();
