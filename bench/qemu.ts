/**
 * Real QEMU's multifd migration, for comparison with the engine: two `qemu-system-x86_64`
 * processes on loopback, each a paused guest (`-S`, `-machine none`) whose only memory is
 * a shared RAM file in /dev/shm, driven over QMP.
 *
 *   node --import tsx bench/qemu.ts --channels 4 --ram 256MiB [--binary PATH] [--json]
 *
 * Both sides: capabilities multifd + events, multifd-channels N; the source also
 * max-bandwidth 1 TiB/s (QEMU's default of 128 MiB/s would be what we measured). Then
 * `migrate-incoming tcp:127.0.0.1:0` on the destination, `migrate` on the source, and the
 * wall time from sending `migrate` to the source's MIGRATION event `completed` (query-migrate
 * polled too, in case). QEMU's own figures (total-time, ram.transferred, multifd-bytes...)
 * are kept, and once the destination is done too, its RAM file is compared byte for byte
 * with the source's.
 *
 * The source RAM is fresh random bytes: no zero page (QEMU sends those as a flag, not over
 * multifd), no two pages alike. Every QEMU, RAM file and QMP socket is removed on every way
 * out; the CLI also on SIGINT/SIGTERM (a caller embedding runQemu calls cleanupAllNow).
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  QEMU_X86_64, QemuProcess, cleanupAllNow, createRamFile, describeQemuExit, findExecutable,
  makeTempDir, pausedGuestArgs, removePath, waitForSocket, type ProcessStats,
} from '../lib/qemu/process';
import { QmpClient } from '../lib/qemu/qmp';
import { compareFiles, configureMultifd, num, startIncoming, waitTerminal } from '../lib/qemu/migrate';
import { QemuRelay, type RelaySessionSummary } from '../lib/qemu/relay';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const TiB = 1024 ** 4;

export interface QemuRunOptions {
  /** qemu-system-x86_64 to run; default: the one on PATH. */
  binary?: string;
  /**
   * A RAM file of exactly ramBytes random bytes to migrate (reused across runs: filling
   * 2 GiB takes seconds). Default: one created for this run and removed after it.
   */
  sourceRamFile?: string;
  /** Where RAM files go (tmpfs). Default /dev/shm. */
  shmDir?: string;
  /** The migration itself (migrate → both sides completed). Default 60 s + 60 s per GiB. */
  timeoutMs?: number;
  /** Source max-bandwidth, bytes/s. Default 1 TiB/s: no limit in practice. */
  maxBandwidth?: number;
  /** Migrate through `multifd relay` (in this process), recording into `record` when given. */
  relay?: { record?: string | null } | null;
  log?: (s: string) => void;
}

export interface QemuRun {
  channels: number;
  ramBytes: number;
  qemuVersion: string;
  /** Sending `migrate` → the source's `completed` seen over QMP (event or poll). */
  wallMs: number;
  gibPerS: number;
  /** Sending `migrate` → the destination's `completed` seen over QMP. */
  destDoneMs: number;
  /** QEMU's own figures, from the source's query-migrate at completion. */
  totalTimeMs: number | null;
  setupTimeMs: number | null;
  downtimeMs: number | null;
  /** RAM / total-time. */
  qemuGibPerS: number | null;
  transferredBytes: number | null;
  multifdBytes: number | null;
  normalBytes: number | null;
  normalPages: number | null;
  duplicatePages: number | null;
  dirtySyncCount: number | null;
  mbps: number | null;
  /** As read back from the source before `migrate`: proof of what was measured. */
  settings: { multifd: boolean; multifdChannels: number; maxBandwidth: number; destMultifd: boolean; destChannels: number };
  /** Destination RAM file byte-identical to the source's after the migration. */
  ramEqual: boolean;
  /** Offset of the first differing byte, or null. */
  firstDifference: number | null;
  compareMs: number;
  /** CPU and peak RSS of each QEMU, read just before it was stopped. */
  source: ProcessStats | null;
  destination: ProcessStats | null;
  loadAvg1: number;
  /** Through the relay: its verdict and per-channel bytes; null without. */
  relay: { state: string; transferred: number; channels: Array<{ id: number; bytes: number; pages: number }>; files: string[] } | null;
}

const START_TIMEOUT_MS = 15_000;

/** A fresh RAM file of `bytes` random bytes in shmDir; remove it with removePath (or cleanupAllNow). */
export async function makeSourceRam(bytes: number, shmDir = '/dev/shm'): Promise<string> {
  const file = path.join(shmDir, `multifd-bench-${process.pid}-${randomUUID().slice(0, 8)}-src.ram`);
  await createRamFile(file, bytes, 'random');
  return file;
}

export async function runQemu(channels: number, ramBytes: number, opts: QemuRunOptions = {}): Promise<QemuRun> {
  const log = opts.log ?? (() => undefined);
  const binary = opts.binary ?? findExecutable(QEMU_X86_64);
  if (!binary) throw new Error(`${QEMU_X86_64} is not on PATH (Debian package qemu-system-x86)`);
  if (!Number.isInteger(channels) || channels < 1 || channels > 255) throw new RangeError(`channels must be 1..255, got ${channels}`);
  if (ramBytes % MiB !== 0 || ramBytes <= 0) throw new RangeError(`QEMU RAM must be a positive whole number of MiB, got ${ramBytes}`);
  const shmDir = opts.shmDir ?? '/dev/shm';
  const timeoutMs = opts.timeoutMs ?? 60_000 + Math.ceil((60_000 * ramBytes) / GiB);
  const maxBandwidth = opts.maxBandwidth ?? TiB;

  const uuid = randomUUID();
  const tag = `multifd-bench-${process.pid}-${uuid.slice(0, 8)}`;
  const dir = makeTempDir(`${tag}-`);
  const ownSource = !opts.sourceRamFile;
  const srcRam = opts.sourceRamFile ?? path.join(shmDir, `${tag}-src.ram`);
  const dstRam = path.join(shmDir, `${tag}-dst.ram`);
  const procs: QemuProcess[] = [];
  const clients: QmpClient[] = [];
  let relay: QemuRelay | null = null;
  try {
    if (ownSource) await createRamFile(srcRam, ramBytes, 'random');
    await createRamFile(dstRam, ramBytes, 'zero');

    const start = async (name: 'src' | 'dst') => {
      const socket = path.join(dir, `${name}.qmp`);
      const args = pausedGuestArgs({ ramPath: name === 'src' ? srcRam : dstRam, ramBytes, qmpSocket: socket, uuid, name, incoming: name === 'dst' ? 'defer' : undefined });
      const proc = QemuProcess.spawn(`qemu ${name}`, binary, args);
      procs.push(proc);
      await waitForSocket(socket, START_TIMEOUT_MS, proc);
      const qmp = await QmpClient.connect(socket, { connectTimeoutMs: START_TIMEOUT_MS, commandTimeoutMs: 30_000, eventTimeoutMs: timeoutMs });
      clients.push(qmp);
      return { proc, qmp };
    };
    // allSettled: when one side fails, the other has finished starting (and is tracked in
    // procs/clients) before the cleanup below runs.
    const started = await Promise.allSettled([start('dst'), start('src')]);
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const [dst, src] = started.map((r) => (r as PromiseFulfilledResult<Awaited<ReturnType<typeof start>>>).value);
    const v = src.qmp.greeting?.version;
    const qemuVersion = v ? `${v.qemu.major}.${v.qemu.minor}.${v.qemu.micro}${v.package ? ` (${v.package.trim()})` : ''}` : '?';

    // The destination must know the capabilities and channel count before migrate-incoming.
    const rd = await configureMultifd(dst.qmp, channels);
    const rs = await configureMultifd(src.qmp, channels, maxBandwidth);
    const settings = { multifd: rs.multifd, multifdChannels: rs.channels, maxBandwidth: rs.maxBandwidth, destMultifd: rd.multifd, destChannels: rd.channels };

    // Port 0: the kernel picks a free one, which the destination reports in query-migrate.
    const port = await startIncoming(dst.qmp);
    let uri = `tcp:127.0.0.1:${port}`;
    let relayDone: Promise<RelaySessionSummary> | null = null;
    if (opts.relay) {
      relay = new QemuRelay({ listenHost: '127.0.0.1', listenPort: 0, toHost: '127.0.0.1', toPort: port, record: opts.relay.record ?? null, channels });
      relayDone = new Promise((resolve) => relay!.onSession(resolve));
      uri = `tcp:127.0.0.1:${(await relay.listen()).port}`;
    }

    const loadAvg1 = os.loadavg()[0];
    log(`qemu ${channels} ch: migrating ${ramBytes / MiB} MiB to ${uri}`);
    const t0 = Date.now();
    await src.qmp.execute('migrate', { uri });
    const done = await waitTerminal(src.qmp, 'src', timeoutMs, true);
    const destDone = await waitTerminal(dst.qmp, 'dst', Math.max(5000, timeoutMs - (Date.now() - t0)), false);
    const wallMs = done.at - t0;
    const info = done.info;
    const ram = info.ram ?? {};

    const relayed = relayDone ? await relayDone : null;
    const source = src.proc.stats();
    const destination = dst.proc.stats();
    await Promise.all(clients.map((c) => c.close()));
    for (const p of [src.proc, dst.proc]) {
      const exit = await p.stop();
      if (exit.code !== 0 && exit.signal !== 'SIGTERM') log(`${p.name} ended with ${describeQemuExit(exit)}`);
    }

    // share=on: the destination's file holds what QEMU wrote into guest RAM.
    const c0 = Date.now();
    const firstDifference = await compareFiles(srcRam, dstRam, ramBytes);
    const compareMs = Date.now() - c0;

    const totalTimeMs = num(info['total-time']);
    return {
      channels,
      ramBytes,
      qemuVersion,
      wallMs,
      gibPerS: ramBytes / GiB / (Math.max(1, wallMs) / 1000),
      destDoneMs: destDone.at - t0,
      totalTimeMs,
      setupTimeMs: num(info['setup-time']),
      downtimeMs: num(info.downtime),
      qemuGibPerS: totalTimeMs ? ramBytes / GiB / (Math.max(1, totalTimeMs) / 1000) : null,
      transferredBytes: num(ram.transferred),
      multifdBytes: num(ram['multifd-bytes']),
      normalBytes: num(ram['normal-bytes']),
      normalPages: num(ram.normal),
      duplicatePages: num(ram.duplicate),
      dirtySyncCount: num(ram['dirty-sync-count']),
      mbps: num(ram.mbps),
      settings,
      ramEqual: firstDifference === null,
      firstDifference,
      compareMs,
      source,
      destination,
      loadAvg1,
      relay: relayed && {
        state: relayed.state,
        transferred: relayed.snapshot.transferred,
        channels: relayed.snapshot.channels.map((c) => ({ id: c.id, bytes: c.bytes, pages: c.pages })),
        files: relayed.files,
      },
    };
  } catch (err) {
    // Say which QEMU said what: the QMP error alone rarely tells why.
    const dead = procs.filter((p) => !p.alive);
    if (dead.length) throw new Error(`${(err as Error).message}\n${dead.map((p) => `${p.describe()} exited with ${describeQemuExit(p.exit!)}`).join('\n')}`, { cause: err });
    throw err;
  } finally {
    await relay?.close();
    await Promise.all(clients.map((c) => c.close()));
    for (const p of procs) await p.stop(1000).catch((e: unknown) => log(`qemu cleanup: ${(e as Error).message}`));
    removePath(dstRam);
    if (ownSource) removePath(srcRam);
    removePath(dir);
  }
}

// ---- alone ---------------------------------------------------------------------------------------

const USAGE = `usage: node --import tsx bench/qemu.ts [--channels N] [--ram SIZE] [--binary PATH] [--relay [--record DIR]] [--compare-relay N] [--json]

  --channels N       multifd channels, 1..255 (default 4)
  --ram SIZE         guest RAM, whole MiB: 256MiB, 2GiB (default 256MiB)
  --binary PATH      qemu-system-x86_64 (default: from PATH)
  --relay            migrate through multifd's relay (in this process)
  --record DIR       with --relay: record each connection under DIR (for 'multifd inspect')
  --compare-relay N  N migrations straight and N through the relay, alternating, on one
                     source RAM file; prints the medians and the relay's cost
  --json             print the whole result as JSON
`;

function parseRam(s: string): number {
  const m = /^(\d+)\s*(M|MiB|G|GiB)?$/i.exec(s.trim());
  if (!m) throw new Error(`--ram: expected e.g. 256MiB or 2GiB, got "${s}"`);
  return Number(m[1]) * (m[2] && m[2][0].toLowerCase() === 'g' ? GiB : MiB);
}

async function cli(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        channels: { type: 'string' }, ram: { type: 'string' }, binary: { type: 'string' }, json: { type: 'boolean' },
        relay: { type: 'boolean' }, record: { type: 'string' }, 'compare-relay': { type: 'string' }, help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  process.on('exit', cleanupAllNow);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      process.stderr.write(`[qemu] ${sig}: stopping QEMU and removing its files\n`);
      cleanupAllNow();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
  try {
    const channels = Number(values.channels ?? 4);
    const ramBytes = parseRam(values.ram ?? '256MiB');
    const log = (s: string) => process.stderr.write(`[qemu] ${s}\n`);
    if (values['compare-relay'] !== undefined) return await compareRelay(channels, ramBytes, Number(values['compare-relay']), values.binary, Boolean(values.json), log);
    const relay = values.relay ? { record: values.record ?? null } : null;
    const r = await runQemu(channels, ramBytes, { binary: values.binary, log, relay });
    if (values.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    else {
      process.stdout.write(
        `QEMU ${r.qemuVersion}, ${r.channels} channel(s), ${r.ramBytes / MiB} MiB: ${r.gibPerS.toFixed(2)} GiB/s ` +
          `(wall ${r.wallMs} ms; QEMU total-time ${r.totalTimeMs} ms = ${r.qemuGibPerS?.toFixed(2)} GiB/s, setup ${r.setupTimeMs} ms, downtime ${r.downtimeMs} ms), ` +
          `transferred ${r.transferredBytes} B, multifd ${r.multifdBytes} B, dest done at ${r.destDoneMs} ms, ramEqual ${r.ramEqual}` +
          (r.relay ? `; relay ${r.relay.state}, ${r.relay.channels.map((c) => `ch${c.id} ${c.bytes} B`).join(', ')}${r.relay.files.length ? `, recorded ${r.relay.files.join(' ')}` : ''}` : '') +
          '\n',
      );
    }
    return r.ramEqual ? 0 : 1;
  } catch (err) {
    process.stderr.write(`bench/qemu: ${(err as Error).message}\n`);
    return 1;
  }
}

/** The relay's cost: n straight and n relayed runs, alternating, on the same source RAM. */
async function compareRelay(channels: number, ramBytes: number, n: number, binary: string | undefined, json: boolean, log: (s: string) => void): Promise<number> {
  if (!Number.isInteger(n) || n < 1) throw new Error(`--compare-relay takes a number of runs, got ${n}`);
  const sourceRamFile = await makeSourceRam(ramBytes);
  const runs: { direct: QemuRun[]; relayed: QemuRun[] } = { direct: [], relayed: [] };
  try {
    for (let i = 0; i < n; i++) {
      // Alternate which goes first, so neither always follows the other.
      for (const relayed of i % 2 === 0 ? [false, true] : [true, false]) {
        const r = await runQemu(channels, ramBytes, { binary, log, sourceRamFile, relay: relayed ? {} : null });
        if (!r.ramEqual || (relayed && r.relay?.state !== 'completed')) throw new Error(`run ${i + 1} ${relayed ? 'through the relay' : 'straight'}: RAM equal ${r.ramEqual}, relay ${r.relay?.state}`);
        (relayed ? runs.relayed : runs.direct).push(r);
        log(`${relayed ? 'relayed' : 'straight'} run ${i + 1}/${n}: total-time ${r.totalTimeMs} ms, wall ${r.wallMs} ms`);
      }
    }
  } finally {
    removePath(sourceRamFile);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const d = median(runs.direct.map((r) => r.totalTimeMs ?? r.wallMs));
  const r = median(runs.relayed.map((x) => x.totalTimeMs ?? x.wallMs));
  const summary = {
    channels, ramBytes, runs: n,
    directMs: runs.direct.map((x) => x.totalTimeMs), relayedMs: runs.relayed.map((x) => x.totalTimeMs),
    medianDirectMs: d, medianRelayedMs: r, costPct: ((r - d) / d) * 100,
  };
  if (json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  else {
    process.stdout.write(
      `QEMU ${channels} channel(s), ${ramBytes / MiB} MiB, median of ${n}: straight ${d} ms (${(ramBytes / GiB / (d / 1000)).toFixed(2)} GiB/s), ` +
        `through the relay ${r} ms (${(ramBytes / GiB / (r / 1000)).toFixed(2)} GiB/s): ${summary.costPct >= 0 ? '+' : ''}${summary.costPct.toFixed(1)} %\n` +
        `  straight: ${summary.directMs.join(', ')} ms; relayed: ${summary.relayedMs.join(', ')} ms\n`,
    );
  }
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await cli();
}
