/**
 * Test fixture: two real, paused QEMU 7.2 processes (`-machine none`, file-backed RAM in
 * /dev/shm with a pattern of index, random and zero pages, the same `-uuid`), the
 * destination waiting with `-incoming defer`. Everything is stopped and removed when the
 * test ends, however it ends.
 */
import { createHash, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { configureMultifd, startIncoming } from './migrate';
import { QEMU_X86_64, QemuProcess, createRamFile, findExecutable, makeTempDir, pausedGuestArgs, removePath, waitForSocket } from './process';
import { QmpClient } from './qmp';

export const qemuBinary = findExecutable(QEMU_X86_64);
/** For `describe(..., { skip })`: false, or why the QEMU tests cannot run. */
export const skipWithoutQemu: string | false = qemuBinary ? false : `${QEMU_X86_64} is not on PATH (Debian package qemu-system-x86)`;

const MiB = 1024 * 1024;
export const PAIR_RAM = 64 * MiB;
const RAM = PAIR_RAM;
const PAGE = 4096;
const TIMEOUT = 30_000;

/**
 * Page i: i % 8 == 3 holds its index (u64 LE, repeated); i % 61 == 7 random bytes; the
 * rest zero (QEMU 7.2 sends those on the main stream, the others on multifd channels).
 */
export function writePatternRam(file: string): string {
  const buf = Buffer.alloc(RAM);
  const rnd = createHash('sha256');
  for (let i = 0; i < RAM / PAGE; i++) {
    const page = buf.subarray(i * PAGE, (i + 1) * PAGE);
    if (i % 8 === 3) for (let w = 0; w < PAGE; w += 8) page.writeBigUInt64LE(BigInt(i), w);
    else if (i % 61 === 7) {
      for (let w = 0; w < PAGE; w += 32) page.set(rnd.copy().update(`${i}:${w}`).digest(), w);
    }
  }
  writeFileSync(file, buf);
  return createHash('sha256').update(buf).digest('hex');
}

export interface Pair {
  src: { proc: QemuProcess; qmp: QmpClient };
  dst: { proc: QemuProcess; qmp: QmpClient };
  srcRam: string;
  dstRam: string;
  sha256: string;
  /** The destination's migrate-incoming port; null with `incoming: false`. */
  port: number | null;
  uuid: string;
  /** The QMP socket paths. */
  srcQmp: string;
  dstQmp: string;
}

/**
 * Two paused QEMUs set up for multifd with `channels` (0: multifd off), the destination
 * listening (`incoming: false`: not yet; `configure: false`: neither set up nor listening,
 * and the fixture's QMP connections closed, for a caller that drives QMP itself: a QMP
 * socket serves one client at a time); all of it undone when the test ends.
 */
export async function startPair(
  t: TestContext,
  channels = 4,
  opts: { incoming?: boolean; configure?: boolean; machine?: string; extra?: readonly string[]; compression?: 'none' | 'zlib' | 'zstd' } = {},
): Promise<Pair> {
  const dir = makeTempDir('relay-test-');
  const uuid = randomUUID();
  const srcRam = `/dev/shm/multifd-relay-test-${process.pid}-${uuid.slice(0, 8)}-src.ram`;
  const dstRam = srcRam.replace(/-src\.ram$/, '-dst.ram');
  await createRamFile(srcRam, RAM, 'zero');
  await createRamFile(dstRam, RAM, 'zero');
  const sha256 = writePatternRam(srcRam);
  const started: Array<{ proc: QemuProcess; qmp: QmpClient | null }> = [];
  t.after(async () => {
    for (const s of started) await s.qmp?.close();
    for (const s of started) await s.proc.stop(1000);
    removePath(srcRam);
    removePath(dstRam);
    removePath(dir);
  });
  const start = async (name: 'src' | 'dst') => {
    const socket = path.join(dir, `${name}.qmp`);
    const proc = QemuProcess.spawn(`qemu ${name}`, qemuBinary!, pausedGuestArgs({ ramPath: name === 'src' ? srcRam : dstRam, ramBytes: RAM, qmpSocket: socket, uuid, name, incoming: name === 'dst' ? 'defer' : undefined, machine: opts.machine, extra: opts.extra }));
    const entry: { proc: QemuProcess; qmp: QmpClient | null } = { proc, qmp: null };
    started.push(entry);
    await waitForSocket(socket, 15_000, proc);
    entry.qmp = await QmpClient.connect(socket, { connectTimeoutMs: 15_000, commandTimeoutMs: 15_000, eventTimeoutMs: TIMEOUT });
    return { proc, qmp: entry.qmp };
  };
  const dst = await start('dst');
  const src = await start('src');
  const srcQmp = path.join(dir, 'src.qmp');
  const dstQmp = path.join(dir, 'dst.qmp');
  if (opts.configure === false) {
    // A QMP socket serves one client at a time: hand both over to whoever drives them.
    for (const s of started) {
      await s.qmp?.close();
      s.qmp = null;
    }
    return { src, dst, srcRam, dstRam, sha256, port: null, uuid, srcQmp, dstQmp };
  }
  if (channels > 0) {
    await configureMultifd(dst.qmp, channels, null, opts.compression);
    await configureMultifd(src.qmp, channels, 1024 ** 4, opts.compression);
  } else {
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 1024 ** 4 });
  }
  const port = opts.incoming === false ? null : await startIncoming(dst.qmp);
  return { src, dst, srcRam, dstRam, sha256, port, uuid, srcQmp, dstQmp };
}

