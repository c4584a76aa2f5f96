/**
 * A TCP relay that makes a short link look like a long one: a fixed round-trip time and a
 * bounded window of bytes in flight per connection, as TCP has over a WAN. For bench/wan.ts,
 * where the kernel has no netem (tc knows tbf and htb, not netem, fq or cake).
 *
 *   node --import tsx bench/delay-relay.ts --listen 127.0.0.1:0 --to 10.77.0.2:4444 --rtt-ms 50 --window 4MiB
 *
 * stdout (ndjson): {"type":"listening","address":"HOST:PORT"} once listening; on SIGTERM or
 * SIGINT a {"type":"stats",...} line (connections, bytes, CPU, how late deliveries and timers ran), then exit 0.
 *
 * Per accepted connection the relay opens one connection to --to and forwards both directions,
 * byte for byte: it never looks into or changes what it relays. Each direction is a delay line:
 *
 *   - a byte read from one side is written to the other RTT/2 after it was read (one-way delay,
 *     the same in both directions, so a request/response exchange costs one RTT as on the real
 *     link, whichever side speaks first; a full RTT one way and none the other would give the
 *     same round trip but would make one-way latencies, e.g. the destination's replies to sync
 *     requests vs. the source's pages, asymmetric for no reason);
 *   - it counts against the direction's WINDOW until RTT after it was read: the moment its ACK
 *     would come back to the sender. At most WINDOW bytes are "in flight"; bytes read beyond it
 *     wait (unclocked) until credit returns, and reading from that side is paused meanwhile, so
 *     the sender's own socket buffers fill and it blocks, as a real sender with a full window
 *     does. Steady state: WINDOW bytes per RTT per connection (4 MiB / 50 ms = 80 MiB/s).
 *
 * What this models of a real long link: window-limited throughput (window/RTT per connection);
 * windows independent per connection, so N connections get N times as much until something
 * else (a tbf rate cap on the veth, in bench/wan.ts) binds; latency on every round trip of the
 * protocol (handshakes, sync requests and their replies), since both directions are delayed.
 *
 * What it does not model: loss and retransmission; slow start and congestion control (the
 * window is full-size from the first byte, never shrinks, and is not shared: there is no
 * bottleneck queue other than a tc cap); the TCP three-way handshake (the source's connect
 * completes locally at once, about one RTT cheaper than on a real link); per-hop propagation
 * (the whole delay is applied once, here); ACK clocking is local (window credit returns on a
 * timer, not on ACKs from the far end, so a slow receiver shows up as backpressure on the
 * relay's write, not as a smaller advertised window). And it costs CPU: every byte is read and
 * written once more by this single-threaded Node process, on the same machine as both ends.
 *
 * Bounds: per direction, WINDOW bytes in the delay line, plus at most one read chunk waiting
 * for window, plus one chunk in Node's write buffer when the receiving side pushes back (the
 * line stops delivering until 'drain'). One timer per connection, armed for the earliest
 * deadline of either direction (FIFOs are in arrival order, so the heads are the deadlines).
 * A FIN is relayed as a FIN after the bytes held before it (half-close works). Once one side's
 * socket has closed (both ways done, an error, a reset), what is held for the other side is
 * delivered, then it gets a FIN and is closed; what it sends meanwhile is discarded. At the
 * latest LINGER_MS after the first close both sockets are destroyed, whatever is left.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { parseSize } from '../lib/guest/units';

export interface DelayRelayOptions {
  /** Round-trip time: RTT/2 each way, window credit back RTT after a byte was read. */
  rttMs: number;
  /** Bytes in flight per direction of each connection. */
  windowBytes: number;
  /** Where each accepted connection is relayed to. */
  target: { host: string; port: number };
}

export interface RelayStats {
  connections: number;
  open: number;
  /** Bytes delivered client→target and target→client, all connections. */
  bytesForward: number;
  bytesReverse: number;
  /** Largest number of bytes in flight (window-counted) seen in one direction of one connection. */
  peakInFlight: number;
  /** Deliveries: how late they were written compared to their due time (timer slack, CPU load, backpressure). */
  deliveries: number;
  lateMsMax: number;
  lateMsMean: number;
  /**
   * How late the connection timers fired (the relay's own event-loop delay: CPU starvation,
   * GC), as opposed to deliveries held up by a receiver that pushes back.
   */
  timerLateMsMax: number;
  timerLateMsMean: number;
}

/** After one side has gone, how long the other gets to take what was held for it. */
const LINGER_MS = 5000;

interface Held {
  chunk: Buffer;
  deliverAt: number;
  creditAt: number;
}

/** One direction of one connection: bytes read from `from`, written to `to` RTT/2 later. */
class Line {
  /** Read, not yet admitted to the window (the part of a chunk beyond it); at most about one chunk. */
  private waiting: Buffer[] = [];
  private waitingBytes = 0;
  /** Admitted, not yet written: arrival order, so deliverAt ascends. */
  private queue: Held[] = [];
  private queueHead = 0;
  /** Written, window credit not yet back: creditAt ascends. */
  private credits: Held[] = [];
  private creditsHead = 0;
  /** Window-counted bytes: admitted and not yet credited back. */
  private inFlight = 0;
  /** `from` has ended (FIN) or gone: nothing more will be read from it. */
  private fromDone = false;
  /** When the FIN (or the close) of `from` reaches `to`: it travels RTT/2 like the bytes. */
  private finAt = Infinity;
  /** `to` has gone: what is held for it is dropped, what arrives for it is discarded. */
  toDead = false;
  /** to.end() called: the FIN follows the last byte. */
  private ended = false;
  /** to.write() returned false: nothing more is written until 'drain'. */
  private blocked = false;
  private paused = false;

  constructor(
    private readonly conn: Conn,
    readonly from: net.Socket,
    readonly to: net.Socket,
    private readonly forward: boolean,
  ) {
    from.on('data', (chunk: Buffer) => this.onData(chunk));
    from.on('end', () => this.fromEnded(performance.now()));
    to.on('drain', () => {
      this.blocked = false;
      this.conn.pump();
    });
  }

  /** `from` sent its FIN or went away at `now`: after what is held, `to` gets a FIN RTT/2 later. */
  fromEnded(now: number): void {
    if (this.fromDone) return;
    this.fromDone = true;
    this.finAt = now + this.conn.relay.options.rttMs / 2;
    this.conn.pump();
  }

  private onData(chunk: Buffer): void {
    // Nobody to deliver to: discard, but keep reading so the sender is not left stuck.
    if (this.toDead) return;
    this.waiting.push(chunk);
    this.waitingBytes += chunk.length;
    this.admit(performance.now());
    this.conn.arm();
  }

  /** Moves waiting bytes into the window while there is room; reading pauses while some wait. */
  private admit(now: number): void {
    const { rttMs, windowBytes } = this.conn.relay.options;
    while (this.waitingBytes > 0 && this.inFlight < windowBytes) {
      const head = this.waiting[0];
      const n = Math.min(head.length, windowBytes - this.inFlight);
      if (n === head.length) this.waiting.shift();
      else this.waiting[0] = head.subarray(n);
      this.waitingBytes -= n;
      this.inFlight += n;
      // The clock starts when bytes enter the window: bytes beyond it have not been "sent" yet.
      this.queue.push({ chunk: n === head.length ? head : head.subarray(0, n), deliverAt: now + rttMs / 2, creditAt: now + rttMs });
    }
    this.conn.relay.notePeak(this.inFlight);
    const shouldPause = this.waitingBytes > 0 && !this.fromDone && !this.toDead;
    if (shouldPause !== this.paused) {
      this.paused = shouldPause;
      if (shouldPause) this.from.pause();
      else this.from.resume();
    }
  }

  private get ready(): boolean {
    return !this.to.connecting && !this.to.destroyed;
  }

  /** Delivers what is due, takes back credit that is due, sends the FIN after the last byte. */
  pump(now: number): void {
    if (this.toDead) return this.drop();
    while (this.ready && !this.blocked && this.queueHead < this.queue.length && this.queue[this.queueHead].deliverAt <= now) {
      const h = this.queue[this.queueHead++];
      this.conn.relay.noteDelivery(h.chunk.length, now - h.deliverAt, this.forward);
      this.credits.push(h);
      if (!this.to.write(h.chunk)) this.blocked = true;
    }
    while (this.creditsHead < this.credits.length && this.credits[this.creditsHead].creditAt <= now) {
      this.inFlight -= this.credits[this.creditsHead++].chunk.length;
    }
    this.compact();
    this.admit(now);
    if (this.fromDone && now >= this.finAt && this.waitingBytes === 0 && this.queueHead === this.queue.length && !this.ended && this.ready) {
      this.ended = true;
      this.to.end();
    }
  }

  /** The earliest time pump() has something to do (O(1): the FIFO heads), or Infinity. */
  get deadline(): number {
    let next = Infinity;
    // Not while the target is still connecting or pushing back: 'connect' and 'drain' pump.
    if (this.ready && !this.blocked && this.queueHead < this.queue.length) next = this.queue[this.queueHead].deliverAt;
    if (this.creditsHead < this.credits.length) next = Math.min(next, this.credits[this.creditsHead].creditAt);
    // The FIN only once nothing is held before it (else a past finAt would spin the timer).
    if (this.fromDone && !this.ended && !this.toDead && this.ready && this.waitingBytes === 0 && this.queueHead === this.queue.length) {
      next = Math.min(next, this.finAt);
    }
    return next;
  }

  /** All that was held for `to` went out with a FIN after it, or `to` is gone. */
  get finished(): boolean {
    return this.toDead || this.ended;
  }

  private drop(): void {
    this.waiting = [];
    this.waitingBytes = 0;
    this.queue = [];
    this.queueHead = 0;
    this.credits = [];
    this.creditsHead = 0;
    this.inFlight = 0;
    if (this.paused) {
      this.paused = false;
      this.from.resume();
    }
  }

  /** Drops consumed FIFO heads in batches, so that taking a head is O(1), not an O(n) shift(). */
  private compact(): void {
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
    if (this.creditsHead > 1024 && this.creditsHead * 2 > this.credits.length) {
      this.credits.splice(0, this.creditsHead);
      this.creditsHead = 0;
    }
  }
}

/** One relayed connection: the accepted socket, the one to the target, a line each way, one timer. */
class Conn {
  private readonly forward: Line;
  private readonly reverse: Line;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  /** Set once a side has gone: by then the pair is destroyed, whatever is left. */
  private lingerUntil = Infinity;
  private closedSockets = 0;
  private done = false;

  constructor(
    readonly relay: DelayRelay,
    readonly client: net.Socket,
    readonly upstream: net.Socket,
  ) {
    this.forward = new Line(this, client, upstream, true);
    this.reverse = new Line(this, upstream, client, false);
    upstream.on('connect', () => this.pump());
    for (const s of [client, upstream]) {
      // An 'error' is followed by 'close', handled there; a listener keeps it from being uncaught.
      s.on('error', () => {});
      s.on('close', () => this.onClose(s));
      // After end(): all that was held for s is in the kernel; a survivor can now be closed.
      s.on('finish', () => this.pump());
    }
  }

  private onClose(s: net.Socket): void {
    this.closedSockets++;
    const now = performance.now();
    // Nothing more can be written to s, and nothing more comes from it.
    for (const line of [this.forward, this.reverse]) if (line.to === s) line.toDead = true;
    this.lingerUntil = Math.min(this.lingerUntil, now + this.relay.options.rttMs + LINGER_MS);
    for (const line of [this.forward, this.reverse]) if (line.from === s) line.fromEnded(now);
    this.pump();
  }

  /** After a read: make sure the timer wakes by the new earliest deadline. */
  arm(): void {
    if (!this.done) this.schedule(Math.min(this.forward.deadline, this.reverse.deadline, this.lingerUntil));
  }

  private schedule(at: number): void {
    if (this.timer && this.timerAt <= at) return; // an earlier wake-up is set; its pump() re-arms
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
    if (at === Infinity) return;
    this.timerAt = at;
    // 1 ms timer granularity: a wake-up a little early finds nothing due and re-arms.
    this.timer = setTimeout(() => {
      this.relay.noteTimer(performance.now() - at);
      this.timer = null;
      this.timerAt = Infinity;
      this.pump();
    }, Math.max(0, Math.ceil(at - performance.now())));
  }

  pump(): void {
    if (this.done) return;
    const now = performance.now();
    this.forward.pump(now);
    this.reverse.pump(now);
    if (this.closedSockets === 2) return this.finish();
    if (now >= this.lingerUntil) return this.finish();
    if (this.closedSockets === 1 && this.forward.finished && this.reverse.finished) {
      // One side has gone and everything held for the other went out, FIN last: close the
      // survivor as soon as its write side has flushed, rather than leaving it half-open
      // until its own peer ends (what arrives from it meanwhile is discarded, so closing
      // does not reset over unread bytes). Its 'close' then finishes the pair.
      for (const s of [this.client, this.upstream]) if (!s.destroyed && s.writableFinished) s.destroy();
    }
    this.schedule(Math.min(this.forward.deadline, this.reverse.deadline, this.lingerUntil));
  }

  /** Destroys both sockets (a no-op for a closed one) and the timer; idempotent. */
  finish(): void {
    if (this.done) return;
    this.done = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.client.destroy();
    this.upstream.destroy();
    this.relay.forget(this);
  }
}

export class DelayRelay {
  private readonly server: net.Server;
  private readonly conns = new Set<Conn>();
  private connections = 0;
  private bytesForward = 0;
  private bytesReverse = 0;
  private peakInFlight = 0;
  private deliveries = 0;
  private lateMsMax = 0;
  private lateMsSum = 0;
  private timers = 0;
  private timerLateMsSum = 0;
  private timerLateMsMax = 0;

  constructor(readonly options: DelayRelayOptions) {
    if (!(options.rttMs >= 0) || !Number.isFinite(options.rttMs)) throw new Error(`rttMs must be a finite number >= 0, got ${options.rttMs}`);
    if (!Number.isSafeInteger(options.windowBytes) || options.windowBytes < 1) throw new Error(`windowBytes must be a positive integer, got ${options.windowBytes}`);
    // allowHalfOpen: a FIN from one side is relayed (after the bytes held before it) as a FIN,
    // not turned into a full close; the other direction keeps flowing until it ends too.
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => this.accept(client));
  }

  private accept(client: net.Socket): void {
    this.connections++;
    const upstream = net.connect({ host: this.options.target.host, port: this.options.target.port, allowHalfOpen: true, noDelay: true });
    this.conns.add(new Conn(this, client, upstream));
  }

  listen(host: string, port: number): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as net.AddressInfo);
      });
    });
  }

  /** Stops listening and destroys every connection at once (held bytes are dropped). */
  close(): Promise<void> {
    for (const c of [...this.conns]) c.finish();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  forget(c: Conn): void {
    this.conns.delete(c);
  }

  noteTimer(lateMs: number): void {
    const late = Math.max(0, lateMs);
    this.timers++;
    this.timerLateMsSum += late;
    if (late > this.timerLateMsMax) this.timerLateMsMax = late;
  }

  notePeak(inFlight: number): void {
    if (inFlight > this.peakInFlight) this.peakInFlight = inFlight;
  }

  noteDelivery(bytes: number, lateMs: number, forward: boolean): void {
    if (forward) this.bytesForward += bytes;
    else this.bytesReverse += bytes;
    this.deliveries++;
    this.lateMsSum += lateMs;
    if (lateMs > this.lateMsMax) this.lateMsMax = lateMs;
  }

  stats(): RelayStats {
    return {
      connections: this.connections,
      open: this.conns.size,
      bytesForward: this.bytesForward,
      bytesReverse: this.bytesReverse,
      peakInFlight: this.peakInFlight,
      deliveries: this.deliveries,
      lateMsMax: Math.round(this.lateMsMax * 10) / 10,
      lateMsMean: this.deliveries ? Math.round((this.lateMsSum / this.deliveries) * 100) / 100 : 0,
      timerLateMsMax: Math.round(this.timerLateMsMax * 10) / 10,
      timerLateMsMean: this.timers ? Math.round((this.timerLateMsSum / this.timers) * 100) / 100 : 0,
    };
  }
}

// ---- command line ----------------------------------------------------------------------------

const USAGE = `usage: node --import tsx bench/delay-relay.ts --listen HOST:PORT --to HOST:PORT [--rtt-ms 50] [--window 4MiB]

  --listen HOST:PORT  where to accept connections (port 0: any; the address is printed)
  --to HOST:PORT      where each accepted connection is relayed
  --rtt-ms MS         round-trip time: RTT/2 each way, window credit back after RTT (default 50)
  --window SIZE       bytes in flight per direction of each connection (default 4MiB)
`;

function hostPort(s: string, what: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  const port = Number(s.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`${what}: expected HOST:PORT, got "${s}"`);
  return { host: s.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port };
}

async function main(argv: string[]): Promise<number> {
  let listen: { host: string; port: number };
  let options: DelayRelayOptions;
  try {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        listen: { type: 'string' },
        to: { type: 'string' },
        'rtt-ms': { type: 'string' },
        window: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    if (!values.listen || !values.to) throw new Error('--listen and --to are required');
    listen = hostPort(values.listen, '--listen');
    const target = hostPort(values.to, '--to');
    if (target.port === 0) throw new Error('--to: port 0 is not a destination');
    const rttMs = Number(values['rtt-ms'] ?? 50);
    if (!Number.isFinite(rttMs) || rttMs < 0) throw new Error(`--rtt-ms: expected a number of ms >= 0, got "${values['rtt-ms']}"`);
    options = { rttMs, windowBytes: parseSize(values.window ?? '4MiB'), target };
  } catch (err) {
    process.stderr.write(`delay-relay: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const relay = new DelayRelay(options);
  const addr = await relay.listen(listen.host, listen.port);
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  process.stdout.write(`${JSON.stringify({ type: 'listening', address: `${host}:${addr.port}`, rttMs: options.rttMs, windowBytes: options.windowBytes })}\n`);
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      const cpu = process.cpuUsage();
      const line = { type: 'stats', ...relay.stats(), cpuUserMs: Math.round(cpu.user / 1000), cpuSystemMs: Math.round(cpu.system / 1000), maxRssBytes: process.resourceUsage().maxRSS * 1024 };
      process.stdout.write(`${JSON.stringify(line)}\n`);
      void relay.close().then(() => resolve(0));
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
