/**
 * QEMU mode: the console drives a migration between two running QEMUs over QMP and watches
 * it per channel through its relay (lib/qemu/relay.ts).
 *
 *   1. connect to both QMP sockets; the source's UUID from query-uuid;
 *   2. on both: the multifd capability and channel count, read back; the destination first,
 *      before its migrate-incoming (QEMU requires it); on the source max-bandwidth (0 asks for
 *      no cap: QEMU's default of 128 MiB/s would be what the operator sees) and downtime-limit;
 *   3. the destination's migrate-incoming on tcp:migrationHost:0 (the kernel picks the port);
 *   4. a relay on relayHost:0 toward it (recording and faults as asked); the source's
 *      migrate to the relay;
 *   5. query-migrate on both, every pollMs, as 'qemu' events when anything changed; the
 *      relay's per-channel events, re-stamped with this migration's id;
 *   6. the end: the source's terminal status, the destination's (QEMU 7.2's destination can
 *      linger after a failure: at most destinationWaitMs), and the relay's session. Completed
 *      only when both QEMUs say completed; otherwise failed with the relay's diagnosis when it
 *      has one (it names the channel), else QEMU's own error-desc, verbatim.
 *
 * Cancel is `migrate_cancel` on the source. Errors from QEMU are QEMU's words (QmpError desc).
 * Everything opened is closed on every way out.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { MigrationSnapshot, MigrationState, QemuFigures } from '../lib/contracts';
import type { StartQemuMigration } from '../lib/contracts/console';
import { MigrationEmitter } from '../lib/engine/emitter';
import type { Fault } from '../lib/engine/faults';
import { CancelledError, ConfigInvalidError, MigrationError, RemoteFailedError, type SerializedError } from '../lib/errors';
import { configureMultifd, num, startIncoming, type QueryMigrate } from '../lib/qemu/migrate';
import { QmpClient, QmpConnectionError, QmpError } from '../lib/qemu/qmp';
import { QemuRelay, type RelaySessionSummary } from '../lib/qemu/relay';

export interface QemuMigrationOptions {
  /** query-migrate period. Default 500 ms. */
  pollMs?: number;
  /** After the source ended, how long the destination may take to say so. Default 5 s. */
  destinationWaitMs?: number;
  /** QMP connect and command timeouts. Default 10 s. */
  qmpTimeoutMs?: number;
  /** Where recordings go (QEMU mode `record: true`): <dir>/<migration id>/. */
  recordRoot?: string | null;
}

const NO_CAP = 1024 ** 4; // 1 TiB/s: no cap in practice
const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

export class QemuMigration {
  readonly id = randomUUID();
  readonly events: MigrationEmitter;
  readonly done: Promise<MigrationState>;
  #resolveDone!: (s: MigrationState) => void;
  #state: MigrationState = 'setup';
  #error: SerializedError | null = null;
  #src: QmpClient | null = null;
  #dst: QmpClient | null = null;
  #relay: QemuRelay | null = null;
  #offRelay: (() => void) | null = null;
  #relayAddress: string | null = null;
  #recordDir: string | null = null;
  #session: RelaySessionSummary | null = null;
  /** The relay's first finding (a refused handshake, a broken channel), as it happened. */
  #relayError: SerializedError | null = null;
  /** When the relay found the migration's fault (a refused channel). */
  #relayErrorAt: number | null = null;
  /** migrate_cancel sent because the source would not end by itself. */
  #cancelRequested = false;
  #last: MigrationSnapshot | null = null;
  #figures: { source: QemuFigures | null; destination: QemuFigures | null } = { source: null, destination: null };
  #cancelled = false;
  readonly #startedAt = Date.now();
  #endedAt: number | null = null;
  readonly #opts: Required<QemuMigrationOptions>;

  constructor(
    readonly config: StartQemuMigration,
    readonly faults: readonly Fault[],
    opts: QemuMigrationOptions = {},
  ) {
    this.events = new MigrationEmitter('relay', this.id, null);
    this.#opts = { pollMs: opts.pollMs ?? 500, destinationWaitMs: opts.destinationWaitMs ?? 5000, qmpTimeoutMs: opts.qmpTimeoutMs ?? 10_000, recordRoot: opts.recordRoot ?? null };
    this.done = new Promise((resolve) => (this.#resolveDone = resolve));
  }

  get state(): MigrationState {
    return this.#state;
  }

  get relayAddress(): string | null {
    return this.#relayAddress;
  }

  get recordDir(): string | null {
    return this.#recordDir;
  }

  get figures(): { source: QemuFigures | null; destination: QemuFigures | null } {
    return this.#figures;
  }

  /**
   * Steps 1-4. Resolves once the source QEMU accepted `migrate`; the rest runs on. Throws
   * ConfigInvalidError (field sourceQmp/destinationQmp) when a QMP socket cannot be reached,
   * RemoteFailedError with QEMU's words when QEMU refuses a command; nothing stays open then.
   */
  async start(): Promise<void> {
    this.events.emit('state', { state: 'setup', previous: null });
    try {
      this.#src = await this.#connect(this.config.sourceQmp, 'sourceQmp');
      this.#dst = await this.#connect(this.config.destinationQmp, 'destinationQmp');
      const uuid = await this.#qemu('source', () => this.#src!.execute<{ UUID: string }>('query-uuid'));
      this.events.uuid = uuid.UUID && uuid.UUID !== '00000000-0000-0000-0000-000000000000' ? uuid.UUID : null;
      await this.#qemu('destination', () => configureMultifd(this.#dst!, this.config.channels, null, this.config.compression));
      await this.#qemu('source', () => configureMultifd(this.#src!, this.config.channels, this.config.maxBandwidth || NO_CAP, this.config.compression));
      if (this.config.downtimeLimitMs !== undefined) {
        await this.#qemu('source', () => this.#src!.execute('migrate-set-parameters', { 'downtime-limit': this.config.downtimeLimitMs! }));
      }
      const port = await this.#qemu('destination', () => startIncoming(this.#dst!, this.config.migrationHost));
      this.#recordDir = this.config.record && this.#opts.recordRoot ? path.join(this.#opts.recordRoot, this.id) : null;
      const relay = new QemuRelay({
        listenHost: this.config.relayHost,
        listenPort: 0,
        toHost: this.config.migrationHost,
        toPort: port,
        channels: this.config.channels,
        uuid: this.events.uuid,
        faults: this.faults,
        record: this.#recordDir,
        tickMs: 250,
      });
      this.#relay = relay;
      this.#offRelay = relay.onEvent((e) => this.#fromRelay(e));
      const sessionDone = new Promise<RelaySessionSummary>((resolve) => relay.onSession(resolve));
      const addr = await relay.listen();
      this.#relayAddress = `${addr.host}:${addr.port}`;
      await this.#qemu('source', () => this.#src!.execute('migrate', { uri: `tcp:${addr.host}:${addr.port}` }));
      void this.#run(sessionDone);
    } catch (err) {
      await this.#closeAll();
      this.#end('failed', err instanceof MigrationError ? err.toJSON() : new RemoteFailedError(String(err)).toJSON());
      throw err;
    }
  }

  /** migrate_cancel on the source; the end is reported as cancelled. */
  async cancel(): Promise<void> {
    if (TERMINAL.has(this.#state)) return;
    this.#cancelled = true;
    this.#setState('cancelling');
    try {
      await this.#src?.execute('migrate_cancel');
    } catch {
      // The end of the run reports what QEMU says; a dead QMP connection ends it too.
    }
  }

  snapshot(): MigrationSnapshot {
    const base: MigrationSnapshot = this.#last ?? {
      id: this.id, uuid: this.events.uuid, role: 'relay', state: this.#state, peer: null, channelCount: this.config.channels,
      round: 0, ramSize: 0, transferred: 0, pageBytes: 0, remaining: 0, dirtyRate: 0, transferRate: 0, convergence: 0,
      expectedDowntimeMs: 0, throttlePct: null, downtimeMs: null, setupTimeMs: null, totalTimeMs: null,
      startedAt: this.#startedAt, endedAt: null, switchoverReason: null, digest: null, verified: false, channels: [], error: null,
    };
    const src = this.#figures.source;
    return {
      ...base,
      id: this.id,
      uuid: this.events.uuid,
      state: this.#state,
      ramSize: base.ramSize || (src?.ramTotal ?? 0),
      remaining: src?.remaining ?? base.remaining,
      downtimeMs: src?.downtimeMs ?? null,
      setupTimeMs: src?.setupTimeMs ?? null,
      totalTimeMs: this.#endedAt !== null ? (src?.totalTimeMs || this.#endedAt - this.#startedAt) : null,
      startedAt: this.#startedAt,
      endedAt: this.#endedAt,
      transferRate: TERMINAL.has(this.#state) ? 0 : base.transferRate,
      error: this.#error,
    };
  }

  // ---------------------------------------------------------------------------------------

  async #run(sessionDone: Promise<RelaySessionSummary>): Promise<void> {
    let srcStatus = '';
    let dstStatus = '';
    let srcEndedAt: number | null = null;
    let end: ['completed' | 'failed' | 'cancelled', SerializedError | null];
    try {
      for (;;) {
        const [s, d] = await Promise.all([this.#poll('source'), this.#poll('destination')]);
        srcStatus = s?.status ?? srcStatus;
        dstStatus = d?.status ?? dstStatus;
        if (this.#state === 'setup' && (srcStatus === 'active' || srcStatus === 'device')) this.#setState('active');
        if (this.#state === 'active' && srcStatus === 'device') this.#setState('switchover');
        if (TERMINAL.has(srcStatus)) srcEndedAt ??= Date.now();
        const srcDone = TERMINAL.has(srcStatus) || s === null;
        const dstDone = TERMINAL.has(dstStatus) || d === null;
        // A source that failed or was cancelled: the destination may never say so (7.2). When the
        // relay saw a channel refused, a second is enough for the destination to put it in words.
        const wait = this.#relayError ? Math.min(1000, this.#opts.destinationWaitMs) : this.#opts.destinationWaitMs;
        if (srcDone && (dstDone || (srcEndedAt !== null && Date.now() - srcEndedAt > wait))) break;
        if (srcDone && srcStatus === 'completed' && dstStatus === 'failed') break;
        // The relay refused a channel and the source does not end: QEMU 7.2's source can wait
        // for that channel's sync for ever. It is cancelled (its guest runs on), and not waited
        // for beyond that.
        const stuck = this.#relayErrorAt !== null && !srcDone ? Date.now() - this.#relayErrorAt : 0;
        if (stuck > wait && !this.#cancelRequested) {
          this.#cancelRequested = true;
          await this.#src?.execute('migrate_cancel').catch(() => {});
        }
        if (stuck > wait + this.#opts.destinationWaitMs) break;
        await new Promise((r) => setTimeout(r, this.#opts.pollMs));
      }
      // The relay's session ends when its connections close; QEMU closes them as it ends.
      // When the relay already knows what went wrong, the session's end adds nothing worth the wait.
      const sessionWait = this.#relayError ? Math.min(500, this.#opts.destinationWaitMs) : this.#opts.destinationWaitMs;
      let timer: NodeJS.Timeout | undefined;
      const session = await Promise.race([sessionDone, new Promise<null>((r) => (timer = setTimeout(() => r(null), sessionWait)))]);
      clearTimeout(timer);
      this.#session = session;
      const ok = srcStatus === 'completed' && dstStatus === 'completed';
      if (ok) end = ['completed', null];
      else if (this.#cancelled) end = ['cancelled', new CancelledError('cancelled by operator (migrate_cancel)').toJSON()];
      else end = ['failed', this.#diagnosis(session, srcStatus, dstStatus)];
    } catch (err) {
      end = ['failed', (err instanceof MigrationError ? err : new RemoteFailedError(String(err))).toJSON()];
    }
    // Let everything go before the verdict: whoever awaits `done` may reuse the QMP sockets
    // (QEMU serves one client each) at once, and what the relay says of the connections it
    // resets while closing must not come after the verdict.
    this.#offRelay?.();
    try {
      await this.#closeAll();
    } finally {
      this.#end(...end);
    }
  }

  /** The relay's finding names a channel; QEMU's words say what QEMU saw. The first wins. */
  #diagnosis(session: RelaySessionSummary | null, srcStatus: string, dstStatus: string): SerializedError {
    // The destination QEMU may linger with its connections open: the session then never ends.
    const relay = session?.snapshot.error ?? this.#relayError;
    if (relay) return relay;
    const why = this.#figures.destination?.errorDesc ?? this.#figures.source?.errorDesc;
    const msg = why
      ? `QEMU: ${why}`
      : `QEMU source ${srcStatus || 'unknown'}, destination ${dstStatus || 'unknown'}${dstStatus && !TERMINAL.has(dstStatus) ? ` (still ${dstStatus} ${this.#opts.destinationWaitMs} ms after the source ended)` : ''}`;
    return new RemoteFailedError(msg, { expected: 'completed on both QEMUs', received: `source ${srcStatus || '?'}, destination ${dstStatus || '?'}` }).toJSON();
  }

  async #poll(side: 'source' | 'destination'): Promise<QemuFigures | null> {
    const qmp = side === 'source' ? this.#src : this.#dst;
    if (!qmp) return null;
    let info: QueryMigrate & Record<string, unknown>;
    try {
      info = await qmp.execute<QueryMigrate & Record<string, unknown>>('query-migrate');
    } catch (err) {
      if (err instanceof QmpConnectionError) return null; // that QEMU is gone
      throw err;
    }
    const ram = info.ram ?? {};
    const figures: QemuFigures = {
      status: info.status ?? 'none',
      errorDesc: typeof info['error-desc'] === 'string' ? info['error-desc'] : null,
      totalTimeMs: num(info['total-time']),
      setupTimeMs: num(info['setup-time']),
      downtimeMs: num(info.downtime),
      expectedDowntimeMs: num(info['expected-downtime']),
      ramTotal: num(ram.total),
      transferred: num(ram.transferred),
      remaining: num(ram.remaining),
      multifdBytes: num(ram['multifd-bytes']),
      normalPages: num(ram.normal),
      zeroPages: num(ram.duplicate),
      dirtySyncCount: num(ram['dirty-sync-count']),
      mbps: num(ram.mbps),
    };
    const before = this.#figures[side];
    this.#figures[side] = figures;
    if (!before || JSON.stringify(before) !== JSON.stringify(figures)) {
      this.events.emit('qemu', {
        side,
        qmp: side === 'source' ? this.config.sourceQmp : this.config.destinationQmp,
        relay: this.#relayAddress,
        recordDir: this.#recordDir,
        figures,
      });
    }
    return figures;
  }

  #fromRelay(e: Parameters<Parameters<QemuRelay['onEvent']>[0]>[0]): void {
    if (e.type === 'channel-rejected' || e.type === 'failed') {
      const { type: _t, time: _ti, role: _r, migration: _m, ...err } = e;
      this.#relayError ??= err;
      this.#relayErrorAt ??= Date.now();
    }
    // This migration's state and verdict are its own (they need both QEMUs' word).
    if (e.type === 'state' || e.type === 'failed' || e.type === 'completed' || e.type === 'cancelled') return;
    if (e.type === 'progress') {
      this.#last = { ...e.snapshot, id: this.id, uuid: e.snapshot.uuid ?? this.events.uuid };
      this.events.emit('progress', { snapshot: this.snapshot() });
      return;
    }
    const { type, time: _t, role: _r, migration: _m, ...body } = e;
    void _t;
    void _r;
    void _m;
    this.events.emit(type, body as never);
  }

  async #connect(address: string, field: 'sourceQmp' | 'destinationQmp'): Promise<QmpClient> {
    try {
      return await QmpClient.connect(address, { connectTimeoutMs: this.#opts.qmpTimeoutMs, commandTimeoutMs: this.#opts.qmpTimeoutMs });
    } catch (err) {
      const which = field === 'sourceQmp' ? 'source' : 'destination';
      // QEMU serves one client per QMP socket: a second one waits for a greeting that never comes.
      const hint = err instanceof QmpConnectionError && err.reason === 'timeout' ? ' (a QMP socket serves one client at a time: is another client, e.g. libvirt, connected to it? Give QEMU a second -qmp socket for the console)' : '';
      throw new ConfigInvalidError(`cannot reach the ${which} QEMU's QMP at ${address}: ${(err as Error).message}${hint}`, { field, received: address });
    }
  }

  /** Runs a QMP step; QEMU's refusal becomes MIGRATION_REMOTE_FAILED in QEMU's words. */
  async #qemu<T>(side: 'source' | 'destination', fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof QmpError) {
        throw new RemoteFailedError(`QEMU ${side}: ${err.command}: ${err.desc}`, { expected: `${err.command} accepted`, received: `${err.errorClass}: ${err.desc}` });
      }
      if (err instanceof MigrationError) throw err;
      throw new RemoteFailedError(`QEMU ${side}: ${(err as Error).message}`);
    }
  }

  #setState(state: MigrationState): void {
    if (this.#state === state) return;
    const previous = this.#state;
    this.#state = state;
    this.events.emit('state', { state, previous });
  }

  #end(state: 'completed' | 'failed' | 'cancelled', error: SerializedError | null): void {
    if (TERMINAL.has(this.#state)) return;
    this.#error = error;
    this.#endedAt = Date.now();
    this.#setState(state);
    if (state === 'failed' && error) this.events.emit('failed', { ...error });
    if (state === 'cancelled' && error) this.events.emit('cancelled', { ...error });
    this.events.emit('progress', { snapshot: this.snapshot() });
    this.#resolveDone(state);
  }

  async #closeAll(): Promise<void> {
    await this.#relay?.close();
    await Promise.all([this.#src?.close(), this.#dst?.close()]);
  }

  /** The relay session's recorded files, once it ended. */
  get files(): string[] {
    return this.#session?.files ?? [];
  }
}
