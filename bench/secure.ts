/**
 * `npm run bench:secure -- [--quick] [--ram 1GiB] [--tls-channels 1,8] [--fills random,mixed,text]
 *                         [--methods none,zlib,zstd] [--channels 4] [--rates 1gbit,200mbit|none]
 *                         [--repeats 1] [--json FILE] [--no-tls] [--no-compression] [--no-link]`
 *
 * What channel security and compression cost, and where compression pays. Every run is two
 * processes, as on two hosts:
 *
 *   node bin/multifd.mjs dest --listen ADDR --once --events ndjson [--tls-...]
 *   node bin/multifd.mjs migrate --to ADDR --channels N --ram-size BYTES --fill F --workload idle
 *                                [--compression M] [--tls-...] --events ndjson
 *
 * timed from the source's first event to its `completed` event (the guest's fill is not
 * counted), GiB/s = RAM / wall.
 *
 * 1. TLS cost on loopback: in clear, TLS x509 (with a client certificate) and TLS PSK, at
 *    each --tls-channels count, random RAM. Certificates are made for the run with openssl.
 * 2. Compression on loopback: each --fills pattern (random: incompressible; mixed: runs of 16
 *    random and 16 text pages; text: every page text-like) with each --methods method.
 * 3. The same over a shaped link, as root: namespaces mfd-src and mfd-dst joined by a veth
 *    pair with a tbf cap on the source's end, at each --rates rate.
 *
 * Where compression pays: from the loopback rows, a method moving the pattern's RAM at R
 * (CPU-bound) and shrinking it r times takes max(RAM/R, RAM/(r·L)) over a link of L; sent as
 * is it takes max(RAM/R₀, RAM/L). So it pays on links slower than R (when r > 1), and the
 * shaped rows check that model against a real capped link.
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { formatBytes } from '../lib/guest/units';
import { Children, describeExit, type Child, type Json } from './children';
import { IP_DST, NS_DST, NS_SRC, Netns, onPath, spawnIn } from './netns';
import { makeTestPki, type TestPki } from '../lib/engine/tls-test-support';
import { countList, helpRequested, ramOption } from './options';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'bin', 'multifd.mjs');
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const log = (s: string) => process.stderr.write(`[bench:secure] ${s}\n`);

type Fill = 'random' | 'mixed' | 'text';
type Method = 'none' | 'zlib' | 'zstd';
type Security = 'clear' | 'x509' | 'psk';

export interface SecureOptions {
  ramBytes: number;
  tlsChannels: number[];
  fills: Fill[];
  methods: Method[];
  channels: number;
  /** tc rates for the shaped rows (e.g. "1gbit"); empty: none. */
  rates: string[];
  repeats: number;
  json: string | null;
  tls: boolean;
  compression: boolean;
  link: boolean;
}

export const SECURE_USAGE = `usage: npm run bench:secure -- [--quick] [--ram 1GiB] [--tls-channels 1,8] [--fills random,mixed,text]
                             [--methods none,zlib,zstd] [--channels 4] [--rates 1gbit,200mbit|none]
                             [--repeats 1] [--json FILE] [--no-tls] [--no-compression] [--no-link]

  --quick              256 MiB guest, 1 repeat (flags given explicitly still win)
  --ram SIZE           guest RAM (default 1GiB)
  --tls-channels LIST  channel counts of the TLS rows (default 1,8)
  --fills LIST         RAM patterns of the compression rows (default random,mixed,text)
  --methods LIST       compression methods (default none,zlib,zstd)
  --channels N         channels of the compression rows (default 4)
  --rates LIST         tbf caps of the shaped-link rows, tc units (default 1gbit,200mbit); none: no such rows
  --repeats N          runs per row; rows show the median by wall time (default 1)
  --json FILE          also write every run as JSON
  --no-tls, --no-compression, --no-link   leave those rows out
`;

function list<T extends string>(name: string, s: string, allowed: readonly T[]): T[] {
  return s.split(',').map((x) => {
    const v = x.trim() as T;
    if (!allowed.includes(v)) throw new Error(`--${name}: each must be one of ${allowed.join(', ')}, got "${x}"`);
    return v;
  });
}

export function parseSecureOptions(argv: string[]): SecureOptions {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      quick: { type: 'boolean' },
      ram: { type: 'string' },
      'tls-channels': { type: 'string' },
      fills: { type: 'string' },
      methods: { type: 'string' },
      channels: { type: 'string' },
      rates: { type: 'string' },
      repeats: { type: 'string' },
      json: { type: 'string' },
      'no-tls': { type: 'boolean' },
      'no-compression': { type: 'boolean' },
      'no-link': { type: 'boolean' },
    },
  });
  const quick = values.quick ?? false;
  const repeats = values.repeats === undefined ? 1 : Number(values.repeats);
  if (!Number.isInteger(repeats) || repeats < 1 || repeats > 20) throw new Error(`--repeats must be 1..20, got "${values.repeats}"`);
  const rates = values.rates === undefined ? ['1gbit', '200mbit'] : values.rates === 'none' ? [] : values.rates.split(',').map((x) => x.trim());
  for (const r of rates) if (!/^\d+(\.\d+)?(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)$/i.test(r)) throw new Error(`--rates: "${r}" is not a tc rate such as 1gbit or 200mbit`);
  return {
    ramBytes: ramOption(values.ram, quick ? '256MiB' : '1GiB'),
    tlsChannels: countList(values['tls-channels'] ?? '1,8', '--tls-channels'),
    fills: list('fills', values.fills ?? 'random,mixed,text', ['random', 'mixed', 'text'] as const),
    methods: list('methods', values.methods ?? 'none,zlib,zstd', ['none', 'zlib', 'zstd'] as const),
    channels: countList(values.channels ?? '4', '--channels')[0],
    rates,
    repeats,
    json: values.json ?? null,
    tls: !values['no-tls'],
    compression: !values['no-compression'],
    link: !values['no-link'],
  };
}

// ---- credentials for the TLS rows ------------------------------------------------------------

interface Creds {
  pki: TestPki;
  dest: { x509: string[]; psk: string[] };
  source: { x509: string[]; psk: string[] };
}

/**
 * Made for the run (lib/engine/tls-test-support.ts, openssl): the destination requires a
 * client certificate; its certificate names 127.0.0.1 and localhost, so over the shaped
 * link (10.77.0.2) the source checks it for "localhost" (--tls-hostname, as QEMU's).
 */
async function makeCreds(): Promise<Creds> {
  const pki = await makeTestPki();
  return {
    pki,
    dest: {
      x509: ['--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--tls-ca', pki.ca, '--tls-require-client-cert'],
      psk: ['--tls-psk', pki.psk],
    },
    source: {
      x509: ['--tls-cert', pki.clientCert, '--tls-key', pki.clientKey, '--tls-ca', pki.ca, '--tls-hostname', 'localhost'],
      psk: ['--tls-psk', pki.psk],
    },
  };
}

// ---- one run ----------------------------------------------------------------------------------

interface Figures {
  maxRssBytes: number;
  cpuS: number;
}

export interface SecureRun {
  section: 'tls' | 'compression' | 'link' | 'link-tls';
  security: Security;
  method: Method;
  fill: Fill;
  channels: number;
  /** tc rate of the shaped link, or null on loopback. */
  rate: string | null;
  ramBytes: number;
  wallMs: number;
  gibPerS: number;
  /** Bytes the source put on the wire (headers included). */
  transferred: number;
  /** Page bytes moved (normal pages × 4096). */
  pageBytes: number;
  /** pageBytes / wire payload bytes (1 without compression). */
  ratio: number;
  rounds: number;
  source: Figures | null;
  destination: Figures | null;
}

const isEvent = (o: Json) => typeof o.time === 'number' && 'role' in o && 'migration' in o;

function figures(c: Child): Figures | null {
  const p = [...c.lines].reverse().find((o) => o.type === 'process');
  return p ? { maxRssBytes: Number(p.maxRssBytes), cpuS: (Number(p.cpuUserMs) + Number(p.cpuSystemMs)) / 1000 } : null;
}

interface Plan {
  section: SecureRun['section'];
  security: Security;
  method: Method;
  fill: Fill;
  channels: number;
  rate: string | null;
}

const label = (p: Plan) =>
  `${p.rate ? `link ${p.rate}` : 'loopback'}, ${p.channels} ch, ${p.security === 'clear' ? 'in clear' : `TLS ${p.security}`}, ${p.method}, ${p.fill} RAM`;

async function runOnce(kids: Children, plan: Plan, opts: SecureOptions, creds: Creds | null, ip: string | null): Promise<SecureRun> {
  const ram = opts.ramBytes;
  const sec = plan.security;
  const tlsDest = sec === 'clear' ? [] : creds!.dest[sec];
  const tlsSrc = sec === 'clear' ? [] : creds!.source[sec];
  const timeouts = ['--timeout-ms', '60000', '--no-progress-timeout-ms', '60000'];
  const onLink = plan.rate !== null;
  const destArgs = [CLI, 'dest', '--listen', `${onLink ? IP_DST : '127.0.0.1'}:0`, '--once', '--events', 'ndjson', ...timeouts, ...tlsDest];
  try {
    const dest = onLink ? spawnIn(kids, ip!, NS_DST, 'dest', destArgs) : kids.spawn('dest', destArgs);
    const addr = String((await dest.waitFor((o) => o.type === 'listening', 30_000, 'listening line')).address);
    const srcArgs = [
      CLI, 'migrate', '--to', addr, '--channels', String(plan.channels), '--ram-size', String(ram), '--fill', plan.fill, '--workload', 'idle',
      '--compression', plan.method, '--events', 'ndjson', ...timeouts, '--connect-timeout-ms', '30000', '--verify-timeout-ms', '600000', ...tlsSrc,
    ];
    const src = onLink ? spawnIn(kids, ip!, NS_SRC, 'migrate', srcArgs) : kids.spawn('migrate', srcArgs);
    // Generous: 2 min plus the RAM at 2 MiB/s.
    const srcExit = await src.exit(120_000 + (ram / (2 * MiB)) * 1000);
    const dstExit = await dest.exit(30_000);
    if (srcExit.code !== 0 || dstExit.code !== 0) {
      const failed = [...src.lines, ...dest.lines].find((o) => o.type === 'failed' || o.type === 'cancelled');
      throw new Error(
        `run (${label(plan)}) failed: migrate ${describeExit(srcExit)}, dest ${describeExit(dstExit)}` +
          (failed ? `: ${String(failed.code)}: ${String(failed.message)}` : '') + src.stderrSuffix() + dest.stderrSuffix(),
      );
    }
    const events = src.lines.filter(isEvent);
    const first = events[0];
    const completed = events.find((o) => o.type === 'completed' && o.role === 'source');
    if (!first || !completed) throw new Error(`run (${label(plan)}): no ${first ? 'completed' : 'first'} event from the source${src.stderrSuffix()}`);
    const snap = (src.lastProgress?.snapshot ?? {}) as { pageBytes?: number; channels?: Array<{ payloadBytes?: number; pages: number }> };
    const pageBytes = Number(snap.pageBytes ?? 0);
    const payload = (snap.channels ?? []).reduce((n, c) => n + Number(c.payloadBytes ?? c.pages * 4096), 0);
    const wallMs = Number(completed.time) - Number(first.time);
    return {
      section: plan.section,
      security: sec,
      method: plan.method,
      fill: plan.fill,
      channels: plan.channels,
      rate: plan.rate,
      ramBytes: ram,
      wallMs,
      gibPerS: ram / GiB / (Math.max(1, wallMs) / 1000),
      transferred: Number(completed.transferred),
      pageBytes,
      ratio: payload > 0 ? pageBytes / payload : 1,
      rounds: Number(completed.rounds),
      source: figures(src),
      destination: figures(dest),
    };
  } finally {
    await kids.stopAll();
  }
}

// ---- output -----------------------------------------------------------------------------------

const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '-');
const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '-');

function table(header: string[], rows: string[][]): string {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join(' | ')} |`;
  const rule = `|${w.map((n, i) => (i === 0 ? `:${'-'.repeat(n + 1)}` : `${'-'.repeat(n + 1)}:`)).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** Link payload rate (MiB/s) below which `m` beats sending the pattern as is, by the model above. */
export function breakEvenMiBps(compressed: SecureRun, plain: SecureRun): number | null {
  if (compressed.ratio <= 1.02) return null; // nothing to gain on the wire
  const rc = compressed.pageBytes / MiB / (compressed.wallMs / 1000);
  const rn = plain.pageBytes / MiB / (plain.wallMs / 1000);
  // Below L = rc the uncompressed run is link-bound at L and the compressed one at most at rc·…:
  // exactly, compressed time max(1/rc, 1/(r·L)) < uncompressed max(1/rn, 1/L) ⇔ L < rc (when rc ≤ rn).
  return rc >= rn ? Infinity : rc;
}

export function report(opts: SecureOptions, runs: Array<{ plan: Plan; median: SecureRun }>): string {
  const out: string[] = [];
  const tls = runs.filter((r) => r.plan.section === 'tls').map((r) => r.median);
  if (tls.length) {
    out.push(`TLS cost, loopback, ${formatBytes(opts.ramBytes)} random RAM (median of ${opts.repeats}):\n`);
    const rows = tls.map((r) => {
      const clear = tls.find((x) => x.channels === r.channels && x.security === 'clear');
      return [
        `${r.channels} ch`,
        r.security === 'clear' ? 'in clear' : `TLS ${r.security}`,
        f2(r.gibPerS),
        clear && r !== clear ? `${f1((r.gibPerS / clear.gibPerS - 1) * 100)} %` : '',
        f1(r.source?.cpuS ?? NaN),
        f1(r.destination?.cpuS ?? NaN),
      ];
    });
    out.push(table(['channels', 'channels secured', 'GiB/s', 'vs clear', 'CPU s src', 'CPU s dst'], rows), '');
  }
  const comp = runs.filter((r) => r.plan.section === 'compression').map((r) => r.median);
  const linkRuns = runs.filter((r) => r.plan.section === 'link').map((r) => r.median);
  if (comp.length) {
    out.push(`\nCompression, loopback, ${formatBytes(opts.ramBytes)}, ${opts.channels} channels:\n`);
    const rows = comp.map((r) => {
      const plain = comp.find((x) => x.fill === r.fill && x.method === 'none');
      const be = plain && r.method !== 'none' ? breakEvenMiBps(r, plain) : null;
      return [
        r.fill,
        r.method,
        f2(r.gibPerS),
        f2(r.ratio),
        formatBytes(r.transferred),
        f1(r.source?.cpuS ?? NaN),
        f1(r.destination?.cpuS ?? NaN),
        r.method === 'none' ? '' : be === null ? 'never (no gain)' : be === Infinity ? 'always' : `below ${be.toFixed(0)} MiB/s`,
      ];
    });
    out.push(table(['RAM', 'method', 'GiB/s', 'ratio', 'wire', 'CPU s src', 'CPU s dst', 'pays on links'], rows), '');
  }
  const linkTls = runs.filter((r) => r.plan.section === 'link-tls').map((r) => r.median);
  if (linkTls.length) {
    out.push(`\nTLS cost over the shaped link (${linkTls[0].rate}), ${formatBytes(opts.ramBytes)} random RAM:\n`);
    const rows = linkTls.map((r) => {
      const clear = linkTls.find((x) => x.channels === r.channels && x.security === 'clear');
      return [
        `${r.channels} ch`,
        r.security === 'clear' ? 'in clear' : `TLS ${r.security}`,
        f1((r.gibPerS * GiB) / MiB),
        clear && r !== clear ? `${f1((r.gibPerS / clear.gibPerS - 1) * 100)} %` : '',
        f1(r.source?.cpuS ?? NaN),
        f1(r.destination?.cpuS ?? NaN),
      ];
    });
    out.push(table(['channels', 'channels secured', 'MiB/s', 'vs clear', 'CPU s src', 'CPU s dst'], rows), '');
  }
  if (linkRuns.length) {
    out.push(`\nCompression over a shaped link (veth between two namespaces, tbf cap), ${formatBytes(opts.ramBytes)}, ${opts.channels} channels:\n`);
    const rows = linkRuns.map((r) => {
      const plain = linkRuns.find((x) => x.fill === r.fill && x.method === 'none' && x.rate === r.rate);
      return [
        r.rate!,
        r.fill,
        r.method,
        f1((r.gibPerS * GiB) / MiB),
        f2(r.ratio),
        plain && r !== plain ? `${f2(plain.wallMs / r.wallMs)}x` : '',
      ];
    });
    out.push(table(['link', 'RAM', 'method', 'MiB/s of RAM', 'ratio', 'speed-up vs none'], rows), '');
  }
  return out.join('\n');
}

// ---- main -------------------------------------------------------------------------------------

export async function runSecureBench(opts: SecureOptions, kids: Children, isInterrupted: () => boolean): Promise<{ text: string; runs: Array<{ plan: Plan; runs: SecureRun[]; median: SecureRun }> }> {
  const plans: Plan[] = [];
  if (opts.tls) {
    for (const channels of opts.tlsChannels) {
      for (const security of ['clear', 'x509', 'psk'] as const) plans.push({ section: 'tls', security, method: 'none', fill: 'random', channels, rate: null });
    }
  }
  if (opts.compression) {
    for (const fill of opts.fills) for (const method of opts.methods) plans.push({ section: 'compression', security: 'clear', method, fill, channels: opts.channels, rate: null });
  }
  let netns: Netns | null = null;
  let ip: string | null = null;
  const linkPlans: Plan[] = [];
  if (opts.link && opts.rates.length > 0) {
    const why = linkUnavailable();
    if (why) log(`no shaped-link rows: ${why}`);
    else {
      for (const rate of opts.rates) {
        for (const fill of opts.fills) for (const method of opts.methods) linkPlans.push({ section: 'link', security: 'clear', method, fill, channels: opts.channels, rate });
      }
      // TLS over the first (fastest) cap: does encryption cost anything where the link is the limit?
      if (opts.tls) {
        for (const channels of opts.tlsChannels) {
          for (const security of ['clear', 'x509'] as const) linkPlans.push({ section: 'link-tls', security, method: 'none', fill: 'random', channels, rate: opts.rates[0] });
        }
      }
    }
  }
  const creds = [...plans, ...linkPlans].some((p) => p.security !== 'clear') ? await makeCreds() : null;
  const done: Array<{ plan: Plan; runs: SecureRun[]; median: SecureRun }> = [];
  const runPlan = async (plan: Plan) => {
    const runs: SecureRun[] = [];
    for (let rep = 1; rep <= opts.repeats && !isInterrupted(); rep++) {
      if (plan.rate) netns!.setRate(plan.rate);
      const r = await runOnce(kids, plan, opts, creds, ip);
      runs.push(r);
      log(`${label(plan)}: ${f2(r.gibPerS)} GiB/s, ratio ${f2(r.ratio)}, wire ${formatBytes(r.transferred)}, CPU s src ${f1(r.source?.cpuS ?? NaN)} dst ${f1(r.destination?.cpuS ?? NaN)}`);
    }
    if (runs.length) done.push({ plan, runs, median: [...runs].sort((a, b) => a.wallMs - b.wallMs)[Math.floor((runs.length - 1) / 2)] });
  };
  try {
    for (const plan of plans) {
      if (isInterrupted()) break;
      await runPlan(plan);
    }
    if (linkPlans.length && !isInterrupted()) {
      ip = onPath('ip')!;
      netns = new Netns(ip, onPath('tc')!);
      process.on('exit', () => netns?.destroy());
      netns.create();
      for (const plan of linkPlans) {
        if (isInterrupted()) break;
        await runPlan(plan);
      }
    }
  } finally {
    netns?.destroy();
    await creds?.pki.cleanup();
  }
  return { text: report(opts, done), runs: done };
}

function linkUnavailable(): string | null {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return `needs root for network namespaces (running as uid ${process.getuid()})`;
  const missing = ['ip', 'tc'].filter((c) => !onPath(c));
  return missing.length ? `needs iproute2's ${missing.join(' and ')}` : null;
}

async function main(): Promise<number> {
  helpRequested(process.argv.includes('--help') || process.argv.includes('-h'), SECURE_USAGE);
  let opts: SecureOptions;
  try {
    opts = parseSecureOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench:secure: ${(err as Error).message}\n\n${SECURE_USAGE}`);
    return 2;
  }
  const kids = new Children(ROOT);
  process.on('exit', () => kids.killAllNow());
  let interrupted = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      interrupted = true;
      void kids.stopAll(2000).finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
    });
  }
  const cpus = os.cpus();
  log(`${formatBytes(opts.ramBytes)} guest; ${cpus.length} CPU(s), node ${process.version}; load ${os.loadavg()[0].toFixed(2)}`);
  const startedAt = new Date();
  const { text, runs } = await runSecureBench(opts, kids, () => interrupted);
  process.stdout.write(`${text}\n`);
  if (opts.json) {
    writeFileSync(
      opts.json,
      `${JSON.stringify({ startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), options: opts, host: { cpus: cpus.length, cpuModel: cpus[0]?.model ?? null, node: process.version }, report: text, rows: runs }, null, 2)}\n`,
    );
    log(`wrote ${opts.json}`);
  }
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = await main();
