/**
 * Driving a QEMU migration over QMP: multifd settings read back after they are set, the
 * destination's migrate-incoming on a port the kernel picks, waiting for the outcome, and
 * comparing two RAM files. Used by the benchmark, the relay's tests and the console's
 * QEMU mode.
 */
import { open } from 'node:fs/promises';
import type { QmpClient, QmpObject } from './qmp';

const MiB = 1024 ** 2;

export type QueryMigrate = {
  status?: string;
  'error-desc'?: string;
  'total-time'?: number;
  'setup-time'?: number;
  downtime?: number;
  'socket-address'?: Array<{ type?: string; host?: string; port?: string }>;
  ram?: Record<string, number>;
};


const TERMINAL = new Set(['completed', 'failed', 'cancelled']);
const POLL_MS = 250;
const STATS_WAIT_MS = 5000;

export const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

export interface MultifdSettings {
  multifd: boolean;
  channels: number;
  maxBandwidth: number;
  /** multifd-compression as QEMU reports it. */
  compression: string;
}

/**
 * Sets the multifd capability (and QMP migration events) and the channel count, and on a
 * source max-bandwidth; then reads them back, and throws if QEMU did not take them: a
 * silently ignored setting would make every figure after it lie.
 */
export async function configureMultifd(
  qmp: QmpClient,
  channels: number,
  maxBandwidth: number | null = null,
  /** multifd-compression (none, zlib, zstd); both sides must agree. Set always, so a QEMU's earlier choice does not linger. */
  compression = 'none',
): Promise<MultifdSettings> {
  const caps: QmpObject = { capabilities: [{ capability: 'multifd', state: true }, { capability: 'events', state: true }] };
  await qmp.execute('migrate-set-capabilities', caps);
  await qmp.execute('migrate-set-parameters', { 'multifd-channels': channels, 'multifd-compression': compression });
  if (maxBandwidth !== null) await qmp.execute('migrate-set-parameters', { 'max-bandwidth': maxBandwidth });
  const c = await qmp.execute<Array<{ capability: string; state: boolean }>>('query-migrate-capabilities');
  const p = await qmp.execute<Record<string, unknown>>('query-migrate-parameters');
  const got = {
    multifd: c.some((x) => x.capability === 'multifd' && x.state),
    channels: num(p['multifd-channels']) ?? -1,
    maxBandwidth: num(p['max-bandwidth']) ?? -1,
    compression: String(p['multifd-compression'] ?? 'none'),
  };
  if (!got.multifd || got.channels !== channels || got.compression !== compression || (maxBandwidth !== null && got.maxBandwidth !== maxBandwidth)) {
    throw new Error(`QEMU did not take the multifd settings: asked ${JSON.stringify({ channels, maxBandwidth, compression })}, has ${JSON.stringify(got)}`);
  }
  return got;
}

/** migrate-incoming on `host` port 0; returns the port the kernel gave, from query-migrate. */
export async function startIncoming(qmp: QmpClient, host = '127.0.0.1'): Promise<number> {
  await qmp.execute('migrate-incoming', { uri: `tcp:${host}:0` });
  const incoming = await qmp.execute<QueryMigrate>('query-migrate');
  const port = Number(incoming['socket-address']?.find((a) => a.type === 'inet')?.port);
  if (!port) throw new Error(`QEMU: no listening port in query-migrate after migrate-incoming: ${JSON.stringify(incoming)}`);
  return port;
}

/**
 * Resolves when the migration on `qmp` is 'completed', with when that was seen (whichever
 * comes first of the MIGRATION event and a query-migrate poll) and query-migrate's figures.
 * Rejects on 'failed' or 'cancelled' (with QEMU's error-desc), or after timeoutMs.
 */
export async function waitTerminal(qmp: QmpClient, who: string, timeoutMs: number, waitForTotalTime: boolean): Promise<{ status: string; at: number; info: QueryMigrate }> {
  // Ends the loser of the race below: the event wait (its timer) and the poll loop.
  const race = new AbortController();
  const event = qmp
    .waitForEvent('MIGRATION', { match: (e) => TERMINAL.has(String(e.data.status)), timeoutMs, signal: race.signal })
    .then((e) => ({ status: String(e.data.status), at: e.receivedAt }));
  const poll = (async () => {
    const deadline = Date.now() + timeoutMs;
    while (!race.signal.aborted && Date.now() < deadline) {
      const info = await qmp.execute<QueryMigrate>('query-migrate');
      if (info.status && TERMINAL.has(info.status)) return { status: info.status, at: Date.now() };
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    // Out of time (or lost the race): the event's wait rejects with the clear message.
    return new Promise<never>(() => undefined);
  })();
  try {
    const first = await Promise.race([event, poll]);
    let info = await qmp.execute<QueryMigrate>('query-migrate');
    if (first.status !== 'completed') throw new Error(`QEMU ${who}: migration ${first.status}${info['error-desc'] ? `: ${info['error-desc']}` : ''}`);
    // The source announces 'completed' a moment before it works out its final figures
    // (query-migrate then shows total-time 0): ask again until they are there.
    for (const until = Date.now() + STATS_WAIT_MS; waitForTotalTime && !(num(info['total-time']) ?? 0) && Date.now() < until; ) {
      await new Promise((r) => setTimeout(r, 10));
      info = await qmp.execute<QueryMigrate>('query-migrate');
    }
    return { ...first, info };
  } finally {
    race.abort();
    // The loser settles later (or never); its rejection is expected and handled here.
    event.catch(() => undefined);
    poll.catch(() => undefined);
  }
}

/** First differing byte of two files of `bytes` bytes, or null when identical. */
export async function compareFiles(a: string, b: string, bytes: number): Promise<number | null> {
  const CHUNK = 16 * MiB;
  const [fa, fb] = await Promise.all([open(a, 'r'), open(b, 'r')]);
  try {
    const [sa, sb] = await Promise.all([fa.stat(), fb.stat()]);
    if (sa.size !== bytes || sb.size !== bytes) return Math.min(sa.size, sb.size, bytes);
    const ba = Buffer.allocUnsafe(CHUNK);
    const bb = Buffer.allocUnsafe(CHUNK);
    for (let off = 0; off < bytes; off += CHUNK) {
      const n = Math.min(CHUNK, bytes - off);
      const [ra, rb] = await Promise.all([fa.read(ba, 0, n, off), fb.read(bb, 0, n, off)]);
      if (ra.bytesRead !== n || rb.bytesRead !== n) return off + Math.min(ra.bytesRead, rb.bytesRead);
      if (!ba.subarray(0, n).equals(bb.subarray(0, n))) {
        for (let i = 0; i < n; i++) if (ba[i] !== bb[i]) return off + i;
      }
    }
    return null;
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

