/**
 * The delay relay on real loopback sockets: it delays (a round trip costs at least the RTT),
 * bounds one connection near window/RTT, forwards bytes unchanged both ways, and closes the
 * pair when one side closes. Small numbers (RTT 100 ms, 256 KiB window → 2.5 MiB/s) so the
 * whole file takes a couple of seconds; timing bands are wide, this machine is shared.
 */
import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { after, describe, it } from 'node:test';
import { DelayRelay } from './delay-relay';

const KiB = 1024;
const MiB = 1024 * KiB;

/** A loopback server with `onConn` per connection; closed after the file's tests. */
async function server(onConn: (s: net.Socket) => void): Promise<{ port: number; srv: net.Server }> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    onConn(s);
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        // Half-open leftovers (a test server that never ends its side) would keep close() waiting.
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  );
  return { port: (srv.address() as net.AddressInfo).port, srv };
}

async function relayTo(port: number, rttMs: number, windowBytes: number): Promise<{ relay: DelayRelay; port: number }> {
  const relay = new DelayRelay({ rttMs, windowBytes, target: { host: '127.0.0.1', port } });
  const addr = await relay.listen('127.0.0.1', 0);
  cleanups.push(() => relay.close());
  return { relay, port: addr.port };
}

async function connect(port: number): Promise<net.Socket> {
  const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  await once(s, 'connect');
  return s;
}

/** Every byte `s` sends until it ends. */
function readAll(s: net.Socket): Promise<Buffer> {
  const parts: Buffer[] = [];
  s.on('data', (d: Buffer) => parts.push(d));
  return new Promise((resolve, reject) => {
    s.once('end', () => resolve(Buffer.concat(parts)));
    s.once('error', reject);
  });
}

/** Resolves when `cond` holds (polled), rejects after `ms`. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe('delay relay', () => {
  it('a request/response round trip takes at least the RTT', async () => {
    const { port: echo } = await server((s) => s.on('data', (d: Buffer) => s.write(d)));
    const { port } = await relayTo(echo, 100, 256 * KiB);
    const c = await connect(port);
    for (let i = 0; i < 2; i++) {
      const t0 = performance.now();
      c.write('ping');
      const [reply] = (await once(c, 'data')) as [Buffer];
      const rtt = performance.now() - t0;
      assert.equal(reply.toString(), 'ping');
      // RTT/2 each way; the relay writes a chunk no earlier than its due time.
      assert.ok(rtt >= 99.5, `round trip ${rtt.toFixed(1)} ms < 100 ms`);
      assert.ok(rtt < 600, `round trip ${rtt.toFixed(1)} ms: far more than the 100 ms RTT`);
    }
    c.destroy();
  });

  it('bounds one connection near window/RTT and forwards its bytes unchanged', async () => {
    const rttMs = 100;
    const windowBytes = 256 * KiB; // → 2.5 MiB/s
    let received: Promise<Buffer> = Promise.resolve(Buffer.alloc(0));
    const { port: sink } = await server((s) => {
      received = readAll(s);
      void received.then(() => s.end());
    });
    const { relay, port } = await relayTo(sink, rttMs, windowBytes);
    const data = randomBytes(10 * windowBytes);
    const c = await connect(port);
    const t0 = performance.now();
    c.end(data);
    await until(() => relay.stats().bytesForward === data.length, 5000, 'all bytes through the relay');
    const got = await received;
    const seconds = (performance.now() - t0) / 1000;
    const rate = data.length / MiB / seconds;
    // Ideal: (10 windows - 1) × RTT + RTT/2 ≈ 0.95 s → 2.6 MiB/s; wide band for a shared machine.
    assert.ok(rate > 1.2 && rate < 3.5, `${rate.toFixed(2)} MiB/s, expected about ${(windowBytes / MiB / (rttMs / 1000)).toFixed(1)} MiB/s`);
    assert.ok(relay.stats().peakInFlight <= windowBytes, `peak in flight ${relay.stats().peakInFlight} > window ${windowBytes}`);
    assert.equal(got.length, data.length);
    assert.equal(sha(got), sha(data));
    c.destroy();
  });

  it('forwards both directions unchanged, each with its FIN after its last byte', async () => {
    const toServer = randomBytes(300 * KiB + 7);
    const toClient = randomBytes(200 * KiB + 3);
    let serverGot: Promise<Buffer> = Promise.resolve(Buffer.alloc(0));
    const { port: peer } = await server((s) => {
      serverGot = readAll(s);
      s.end(toClient);
    });
    const { relay, port } = await relayTo(peer, 20, 64 * KiB);
    const c = await connect(port);
    const clientGot = readAll(c);
    // Small writes too, so chunk boundaries differ from the relay's reads.
    for (let off = 0; off < toServer.length; off += 4099) c.write(toServer.subarray(off, off + 4099));
    c.end();
    assert.equal(sha(await clientGot), sha(toClient));
    await until(() => relay.stats().bytesForward === toServer.length, 3000, 'forward bytes');
    assert.equal(sha(await serverGot), sha(toServer));
    // Both sides ended: the relay's pair is gone.
    await until(() => relay.stats().open === 0, 3000, 'the relayed pair to close');
  });

  it('closes the other side when one side closes or resets, after what was held for it', async () => {
    const serverSide: net.Socket[] = [];
    const { port: peer } = await server((s) => {
      s.on('error', () => {});
      serverSide.push(s);
    });
    const { relay, port } = await relayTo(peer, 40, 64 * KiB);
    // Well under the relay's 5 s linger: closing follows the first close, it does not wait it out.
    const prompt = 1500;

    // The client resets: the server's socket ends, the relay forgets the pair.
    const a = await connect(port);
    await until(() => serverSide.length === 1, 2000, 'first server connection');
    const aEnded = once(serverSide[0], 'end');
    serverSide[0].resume();
    a.resetAndDestroy();
    await aEnded;
    await until(() => relay.stats().open === 0, prompt, 'the relay to drop the reset pair');

    // The server sends its last bytes and closes: the client gets them, then the close.
    const b = net.connect({ host: '127.0.0.1', port }); // allowHalfOpen false: it ends when it sees the FIN
    b.on('error', () => {});
    const bGot = readAll(b);
    const bClosed = once(b, 'close');
    await until(() => serverSide.length === 2, 2000, 'second server connection');
    serverSide[1].end('bye');
    setTimeout(() => serverSide[1].destroy(), 5);
    assert.equal((await bGot).toString(), 'bye');
    await bClosed;
    await until(() => relay.stats().open === 0, prompt, 'the relay to drop the closed pair');

    // The server resets an idle connection: the client is closed too.
    const c = net.connect({ host: '127.0.0.1', port });
    await once(c, 'connect');
    c.on('error', () => {});
    const cClosed = once(c, 'close');
    await until(() => serverSide.length === 3, 2000, 'third server connection');
    serverSide[2].resetAndDestroy();
    await cClosed;
    await until(() => relay.stats().open === 0, prompt, 'the relay to drop the second reset pair');
  });
});
