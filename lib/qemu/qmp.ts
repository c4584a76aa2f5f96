/**
 * A small QMP (QEMU Machine Protocol) client, server-side only.
 *
 *   const qmp = await QmpClient.connect('/tmp/x/src.qmp', { commandTimeoutMs: 10_000 });
 *   const status = await qmp.execute<{ status: string }>('query-status');
 *   await qmp.close();
 *
 * The wire: QEMU writes one JSON object per line (greeting, replies, events); we write one
 * JSON command per line. After the greeting the server accepts nothing but
 * `qmp_capabilities`, which `connect` sends before it resolves.
 *
 * Every command carries an `id` that QEMU echoes in its reply, so replies are matched by id
 * and several commands may be in flight. Every wait has a timeout; a reply that arrives
 * after its command timed out is dropped. Events are kept (the last `maxEvents`) and emitted
 * as 'event'.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';

export type QmpValue = null | boolean | number | string | QmpValue[] | { [key: string]: QmpValue };
export type QmpObject = { [key: string]: QmpValue };

export interface QmpGreeting {
  version: { qemu: { major: number; minor: number; micro: number }; package: string };
  capabilities: string[];
}

export interface QmpEvent {
  event: string;
  data: QmpObject;
  /** QEMU's own timestamp, when it sent one (seconds + microseconds since the epoch). */
  timestamp: { seconds: number; microseconds: number } | null;
  /** Date.now() when this client read the event. */
  receivedAt: number;
}

/** QEMU answered a command with an error: `errorClass` and `desc` are QEMU's, verbatim. */
export class QmpError extends Error {
  override readonly name = 'QmpError';
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super(`QMP ${command}: ${errorClass}: ${desc}`);
  }
}

export type QmpFailure = 'connect' | 'timeout' | 'closed' | 'protocol';

/** The conversation itself failed (no answer in time, socket gone, not QMP). */
export class QmpConnectionError extends Error {
  override readonly name = 'QmpConnectionError';
  constructor(
    readonly reason: QmpFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface QmpOptions {
  /** Connect + greeting + qmp_capabilities. Default 10 s. */
  connectTimeoutMs?: number;
  /** Default wait for a command's reply. Default 30 s. */
  commandTimeoutMs?: number;
  /** Default wait in waitForEvent. Default 30 s. */
  eventTimeoutMs?: number;
  /** Events kept in `events` (oldest dropped first). Default 1000. */
  maxEvents?: number;
  /** Longest line accepted from QEMU; a longer one is a protocol error. Default 16 MiB. */
  maxLineBytes?: number;
}

export type QmpAddress = { path: string } | { host: string; port: number };

/**
 * 'HOST:PORT', '[::1]:PORT', 'tcp:HOST:PORT' → TCP; 'unix:PATH' or anything else → a unix
 * socket path (QEMU's own `-qmp` spellings are accepted, `,server=on...` suffixes are not).
 */
export function parseQmpAddress(s: string): QmpAddress {
  if (s.startsWith('unix:')) return { path: s.slice(5) };
  const rest = s.startsWith('tcp:') ? s.slice(4) : s;
  const m = /^(\[[^\]]+\]|[^/:]+):(\d{1,5})$/.exec(rest);
  if (m) {
    const port = Number(m[2]);
    if (port < 1 || port > 65535) throw new RangeError(`QMP address ${s}: port must be 1..65535`);
    return { host: m[1].replace(/^\[|\]$/g, ''), port };
  }
  if (s.startsWith('tcp:')) throw new RangeError(`QMP address ${s}: expected tcp:HOST:PORT`);
  if (!rest) throw new RangeError('QMP address is empty');
  return { path: rest };
}

const describeAddress = (a: QmpAddress) => ('path' in a ? a.path : `${a.host}:${a.port}`);

interface Pending {
  command: string;
  resolve: (v: QmpValue) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

const isObject = (v: unknown): v is QmpObject => typeof v === 'object' && v !== null && !Array.isArray(v);

export class QmpClient extends EventEmitter<{ event: [QmpEvent]; close: [Error | null] }> {
  /** Events received so far, oldest first (at most `maxEvents`). */
  readonly events: QmpEvent[] = [];
  greeting: QmpGreeting | null = null;

  private readonly socket: net.Socket;
  private readonly pending = new Map<string, Pending>();
  private readonly eventWaiters = new Set<(e: QmpEvent) => void>();
  private readonly opts: Required<QmpOptions>;
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  private nextId = 1;
  private closedWith: Error | null = null;
  private closed = false;
  private readonly closedPromise: Promise<void>;
  private greetingWaiter: ((g: QmpGreeting) => void) | null = null;

  private constructor(
    readonly address: QmpAddress,
    opts: QmpOptions,
  ) {
    super();
    this.opts = {
      connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
      commandTimeoutMs: opts.commandTimeoutMs ?? 30_000,
      eventTimeoutMs: opts.eventTimeoutMs ?? 30_000,
      maxEvents: opts.maxEvents ?? 1000,
      maxLineBytes: opts.maxLineBytes ?? 16 * 1024 * 1024,
    };
    this.socket = 'path' in address ? net.createConnection({ path: address.path }) : net.createConnection({ host: address.host, port: address.port });
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    // 'error' is always followed by 'close'; keep the first reason for the rejections.
    this.socket.on('error', (err) => {
      this.closedWith ??= new QmpConnectionError('closed', `QMP ${describeAddress(address)}: ${err.message}`, { cause: err });
    });
    this.closedPromise = new Promise((resolve) => {
      this.socket.once('close', () => {
        this.closed = true;
        const err = this.closedWith ?? new QmpConnectionError('closed', `QMP ${describeAddress(address)}: connection closed`);
        this.closedWith = err;
        for (const p of this.pending.values()) {
          clearTimeout(p.timer);
          p.reject(new QmpConnectionError('closed', `QMP ${p.command}: ${err.message}`, { cause: err }));
        }
        this.pending.clear();
        this.emit('close', err);
        resolve();
      });
    });
  }

  /**
   * Connects, reads the greeting and negotiates (`qmp_capabilities`); all of it within
   * `connectTimeoutMs`, or the socket is released and the promise rejects.
   */
  static async connect(address: string | QmpAddress, opts: QmpOptions = {}): Promise<QmpClient> {
    const addr = typeof address === 'string' ? parseQmpAddress(address) : address;
    const client = new QmpClient(addr, opts);
    let timer: NodeJS.Timeout | undefined;
    let onClose: ((err: Error | null) => void) | undefined;
    try {
      const greeting = new Promise<QmpGreeting>((resolve, reject) => {
        client.greetingWaiter = resolve;
        onClose = (err) => reject(new QmpConnectionError('connect', `QMP ${describeAddress(addr)}: closed before the greeting: ${err?.message ?? 'closed'}`, { cause: err }));
        client.once('close', onClose);
      });
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new QmpConnectionError('timeout', `QMP ${describeAddress(addr)}: no greeting and capabilities within ${client.opts.connectTimeoutMs} ms`)),
          client.opts.connectTimeoutMs,
        );
      });
      client.greeting = await Promise.race([greeting, timeout]);
      await Promise.race([client.execute('qmp_capabilities', undefined, { timeoutMs: client.opts.connectTimeoutMs }), timeout]);
      return client;
    } catch (err) {
      await client.close();
      throw err;
    } finally {
      clearTimeout(timer);
      if (onClose) client.off('close', onClose);
    }
  }

  /**
   * Runs `command` and resolves with QEMU's `return` value. Rejects with QmpError (QEMU's
   * error class and description) or QmpConnectionError (timeout, closed). `T` is what the
   * caller expects; it is not checked.
   */
  execute<T = QmpValue>(command: string, args?: QmpObject, opts: { timeoutMs?: number } = {}): Promise<T> {
    if (this.closed || this.socket.destroyed) {
      return Promise.reject(new QmpConnectionError('closed', `QMP ${command}: the connection is closed${this.closedWith ? ` (${this.closedWith.message})` : ''}`));
    }
    const id = `c${this.nextId++}`;
    const timeoutMs = opts.timeoutMs ?? this.opts.commandTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new QmpConnectionError('timeout', `QMP ${command}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: QmpValue) => void, reject, timer });
      const msg: QmpObject = { execute: command, id };
      if (args) msg.arguments = args;
      this.socket.write(`${JSON.stringify(msg)}\n`);
    });
  }

  /**
   * The first event named `name` (and matching `match`, if given), among those already
   * received or still to come. Rejects after `timeoutMs` (default `eventTimeoutMs`), when
   * the connection closes, or when `signal` aborts (the wait is then forgotten, its timer
   * cleared).
   */
  waitForEvent(name: string, opts: { match?: (e: QmpEvent) => boolean; timeoutMs?: number; signal?: AbortSignal } = {}): Promise<QmpEvent> {
    const { match, signal } = opts;
    const timeoutMs = opts.timeoutMs ?? this.opts.eventTimeoutMs;
    const ok = (e: QmpEvent) => e.event === name && (!match || match(e));
    const past = this.events.find(ok);
    if (past) return Promise.resolve(past);
    if (this.closed) return Promise.reject(new QmpConnectionError('closed', `QMP: closed while waiting for event ${name}`));
    if (signal?.aborted) return Promise.reject(new QmpConnectionError('timeout', `QMP: wait for event ${name} aborted`));
    return new Promise<QmpEvent>((resolve, reject) => {
      const finish = (f: () => void) => {
        clearTimeout(timer);
        this.eventWaiters.delete(onEvent);
        this.off('close', onClose);
        signal?.removeEventListener('abort', onAbort);
        f();
      };
      const onEvent = (e: QmpEvent) => {
        if (ok(e)) finish(() => resolve(e));
      };
      const onClose = () => finish(() => reject(new QmpConnectionError('closed', `QMP: closed while waiting for event ${name}`)));
      const onAbort = () => finish(() => reject(new QmpConnectionError('timeout', `QMP: wait for event ${name} aborted`)));
      const timer = setTimeout(() => finish(() => reject(new QmpConnectionError('timeout', `QMP: no event ${name} within ${timeoutMs} ms`))), timeoutMs);
      this.eventWaiters.add(onEvent);
      this.once('close', onClose);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Releases the socket; pending commands reject with 'closed'. Safe to call twice. */
  async close(): Promise<void> {
    if (!this.closed) {
      this.closedWith ??= new QmpConnectionError('closed', `QMP ${describeAddress(this.address)}: closed by the client`);
      this.socket.destroy();
    }
    await this.closedPromise;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  // ---- reading ------------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
      this.buffered.push(chunk.subarray(start, nl));
      const line = Buffer.concat(this.buffered).toString('utf8').trim();
      this.buffered = [];
      this.bufferedBytes = 0;
      start = nl + 1;
      if (line) this.onLine(line);
      if (this.closed || this.socket.destroyed) return;
    }
    if (start < chunk.length) {
      this.buffered.push(chunk.subarray(start));
      this.bufferedBytes += chunk.length - start;
      if (this.bufferedBytes > this.opts.maxLineBytes) this.fail(`a line longer than ${this.opts.maxLineBytes} bytes`);
    }
  }

  private fail(what: string): void {
    this.closedWith ??= new QmpConnectionError('protocol', `QMP ${describeAddress(this.address)}: ${what}`);
    this.socket.destroy();
  }

  private onLine(line: string): void {
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      return this.fail(`not JSON: ${line.slice(0, 200)}`);
    }
    if (!isObject(msg)) return this.fail(`not a JSON object: ${line.slice(0, 200)}`);

    if (isObject(msg.QMP)) {
      const g = msg.QMP as unknown as QmpGreeting;
      this.greetingWaiter?.(g);
      this.greetingWaiter = null;
      return;
    }
    if (typeof msg.event === 'string') {
      const ts = msg.timestamp;
      const e: QmpEvent = {
        event: msg.event,
        data: isObject(msg.data) ? msg.data : {},
        timestamp: isObject(ts) && typeof ts.seconds === 'number' && typeof ts.microseconds === 'number' ? { seconds: ts.seconds, microseconds: ts.microseconds } : null,
        receivedAt: Date.now(),
      };
      this.events.push(e);
      if (this.events.length > this.opts.maxEvents) this.events.splice(0, this.events.length - this.opts.maxEvents);
      for (const w of [...this.eventWaiters]) w(e);
      this.emit('event', e);
      return;
    }
    if ('return' in msg || 'error' in msg) {
      // QEMU echoes our id. A reply without one (QEMU could not parse a command) goes to the
      // oldest command in flight, since QEMU answers in order.
      const id = typeof msg.id === 'string' ? msg.id : msg.id === undefined ? this.pending.keys().next().value : undefined;
      const p = id === undefined ? undefined : this.pending.get(id);
      if (!p || id === undefined) return; // its command timed out already
      this.pending.delete(id);
      clearTimeout(p.timer);
      if ('error' in msg) {
        const err = isObject(msg.error) ? msg.error : {};
        p.reject(new QmpError(p.command, String(err.class ?? 'GenericError'), String(err.desc ?? JSON.stringify(msg.error))));
      } else {
        p.resolve(msg.return ?? null);
      }
      return;
    }
    this.fail(`unexpected message: ${line.slice(0, 200)}`);
  }
}
