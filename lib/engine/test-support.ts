/**
 * Test helpers for engine tests: a destination on loopback that records its events, a
 * source migration run to its end, and raw connections for hand-crafted bytes.
 */
import net from 'node:net';
import { MigrationConfigSchema, type MigrationConfigInput, type MigrationEvent } from '../contracts';
import { Guest, fullDigest, type GuestOptions } from '../guest';
import { Destination, type DestinationOptions } from './destination';
import type { IncomingResult } from './incoming';
import type { Fault } from './faults';
import { SourceMigration, type MigrationResult } from './source';

export const MiB = 1024 * 1024;

export interface TestDest {
  dest: Destination;
  port: number;
  events: MigrationEvent[];
  results: IncomingResult[];
  /** Resolves with the next migration's result. */
  next(): Promise<IncomingResult>;
  close(): Promise<void>;
}

export async function startDest(opts: DestinationOptions = {}): Promise<TestDest> {
  const dest = new Destination({ handshakeTimeoutMs: 2000, setupTimeoutMs: 2000, tickMs: 50, ...opts, host: '127.0.0.1', port: 0 });
  const events: MigrationEvent[] = [];
  const results: IncomingResult[] = [];
  const waiters: Array<(r: IncomingResult) => void> = [];
  dest.onEvent((e) => events.push(e));
  dest.onMigration((m) =>
    void m.done.then((r) => {
      results.push(r);
      waiters.shift()?.(r);
    }),
  );
  const { port } = await dest.listen();
  return {
    dest,
    port,
    events,
    results,
    next: () => new Promise((resolve) => waiters.push(resolve)),
    async close() {
      await dest.close();
      await Promise.all(results.map((r) => r.guest?.stop()));
    },
  };
}

export async function makeGuest(opts: GuestOptions = {}): Promise<Guest> {
  const g = await Guest.create({ ramSize: 16 * MiB, fill: 'random', workload: { kind: 'idle' }, ...opts });
  await g.start();
  return g;
}

export interface Run {
  result: MigrationResult;
  dest: IncomingResult | null;
  events: MigrationEvent[];
}

/** Migrates `guest` to `port`; waits for both sides when the destination saw a hello. */
export async function migrate(
  guest: Guest,
  port: number,
  cfg: Omit<MigrationConfigInput, 'destination'> = {},
  faults: Fault[] = [],
  td?: TestDest,
  /** Called synchronously with each source event, as it is emitted. */
  onEvent?: (e: MigrationEvent) => void,
): Promise<Run> {
  const config = MigrationConfigSchema.parse({
    setupTimeoutMs: 2000,
    noProgressTimeoutMs: 3000,
    ...cfg,
    destination: `127.0.0.1:${port}`,
  });
  const events: MigrationEvent[] = [];
  const m = new SourceMigration(guest, { config, faults, tickMs: 50 });
  m.events.on((e) => {
    events.push(e);
    onEvent?.(e);
  });
  const destSeen = td ? td.results.length : 0;
  const result = await m.start().done;
  let dest: IncomingResult | null = null;
  if (td) {
    // The destination ends on its own (verdict, abort or timeout); wait until it has.
    const deadline = Date.now() + 5000;
    while (td.results.length === destSeen && td.dest.active.length > 0 && Date.now() < deadline) await sleep(20);
    dest = td.results[destSeen] ?? null;
  }
  return { result, dest, events };
}

/** A 64-byte multifd handshake written field by field (not with the encoder under test). */
export function handshake({ magic = 0x11223344, version = 1, uuid, id }: { magic?: number; version?: number; uuid: string; id: number }): Buffer {
  const b = Buffer.alloc(64);
  b.writeUInt32BE(magic, 0);
  b.writeUInt32BE(version, 4);
  Buffer.from(uuid.replace(/-/g, ''), 'hex').copy(b, 8);
  b[24] = id;
  return b;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Connects and writes `bytes`; `end` closes our side after. Returns the socket. */
export async function rawConnect(port: number, bytes: Uint8Array, end = false): Promise<net.Socket> {
  const s = net.connect({ host: '127.0.0.1', port });
  s.on('error', () => {});
  s.on('data', () => {});
  await new Promise<void>((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
  });
  await new Promise<void>((resolve) => s.write(bytes, () => resolve()));
  if (end) s.end();
  return s;
}

/** Waits until `pred` holds for one of `events` (polling), or fails after `ms`. */
export async function waitFor<T extends MigrationEvent>(events: MigrationEvent[], pred: (e: MigrationEvent) => e is T, ms?: number): Promise<T>;
export async function waitFor(events: MigrationEvent[], pred: (e: MigrationEvent) => boolean, ms?: number): Promise<MigrationEvent>;
export async function waitFor(events: MigrationEvent[], pred: (e: MigrationEvent) => boolean, ms = 5000): Promise<MigrationEvent> {
  const deadline = Date.now() + ms;
  for (;;) {
    const e = events.find(pred);
    if (e) return e;
    if (Date.now() > deadline) throw new Error(`no matching event within ${ms} ms; saw ${events.map((x) => x.type).join(', ')}`);
    await sleep(10);
  }
}

export { fullDigest };
