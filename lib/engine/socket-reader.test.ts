/**
 * Zero-copy reads on accepted sockets: bytes land exactly in the regions consumers name,
 * across consumer changes and pauses.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { FixedReader, HoldReader, SocketReader, type ReadConsumer } from './socket-reader';

async function serve(onSocket: (s: net.Socket) => void): Promise<{ port: number; close: () => Promise<void> }> {
  const srv = net.createServer({ pauseOnConnect: true }, onSocket);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { port: (srv.address() as net.AddressInfo).port, close: () => new Promise((r) => srv.close(() => r())) };
}

describe('SocketReader', () => {
  it('reads straight into consumer regions on Node 20 (zero-copy), across a pause and a consumer change', async () => {
    const payload = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 31 + 7) & 0xff;
    const target = new Uint8Array(payload.length - 16);
    const head = new Uint8Array(16);
    let reader!: SocketReader;
    let server!: net.Socket;
    let srvClose!: () => Promise<void>;
    let regionsOffered = 0;
    const done = new Promise<void>((resolve, reject) => {
      let filled = 0;
      const bulk: ReadConsumer = {
        next: () => {
          regionsOffered++;
          return target.subarray(filled);
        },
        advance: (n) => {
          filled += n;
          if (filled === target.length) resolve();
        },
      };
      void (async () => {
        const srv = await serve((s) => {
          server = s;
          reader = new SocketReader(
            s,
            new FixedReader(head, () => {
              // Hold, then hand over to another consumer after a while: the region armed
              // while paused must not receive the bytes meant for the new consumer.
              reader.pause();
              reader.use(new HoldReader());
              setTimeout(() => {
                reader.use(bulk);
                reader.start();
              }, 50);
            }),
            { onError: reject },
          );
          reader.start();
        });
        srvClose = srv.close;
        const c = net.connect(srv.port, '127.0.0.1', () => c.end(payload));
        c.on('error', reject);
      })();
    });
    await done;
    server.destroy();
    await srvClose();
    assert.equal(reader.zeroCopy, true, 'the onread slots were found: no copy on this Node');
    assert.ok(Buffer.from(head).equals(payload.subarray(0, 16)));
    assert.ok(Buffer.from(target).equals(payload.subarray(16)), 'every byte where it belongs');
    assert.ok(regionsOffered > 0);
  });

  it('reports a consumer error once and stops reading', async () => {
    const errors: unknown[] = [];
    const srv = await serve((s) => {
      const r = new SocketReader(
        s,
        {
          next: () => new Uint8Array(8),
          advance: () => {
            throw new Error('bad bytes');
          },
        },
        {
          onError: (e) => {
            errors.push(e);
            s.destroy();
          },
        },
      );
      r.start();
    });
    const c = net.connect(srv.port, '127.0.0.1', () => c.write(Buffer.alloc(64)));
    c.on('error', () => {});
    await new Promise((r) => setTimeout(r, 100));
    c.destroy();
    await srv.close();
    assert.equal(errors.length, 1);
    assert.match(String(errors[0]), /bad bytes/);
  });

  it("bytes held while paused reach the consumer after start(), even when the peer has closed meanwhile ('data' mode)", async () => {
    const payload = Buffer.alloc(64 * 1024);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 13 + 5) & 0xff;
    const got = new Uint8Array(payload.length);
    let filled = 0;
    let reader!: SocketReader;
    let accepted!: net.Socket;
    const closed = new Promise<void>((resolve) => {
      void serve((s) => {
        accepted = s;
        // As on a Node without onread slots: 'data' events, so one chunk holds far more than the pause point.
        Object.defineProperty((s as unknown as { _handle: object })._handle, 'useUserBuffer', { value: undefined });
        s.once('close', () => resolve());
        reader = new SocketReader(
          s,
          {
            // Small regions: the pause falls inside the chunk, whose rest is held.
            next: () => got.subarray(filled, Math.min(got.length, filled + 512)),
            advance: (n) => {
              filled += n;
              if (filled >= 1000 && filled - n < 1000) reader.pause();
            },
          },
          { onError: () => {} },
        );
        assert.equal(reader.zeroCopy, false);
        reader.start();
      }).then(({ port, close }) => {
        const c = net.connect(port, '127.0.0.1', () => c.end(payload));
        c.on('close', () => void close());
      });
    });
    await closed;
    assert.ok(accepted.destroyed);
    assert.ok(filled < payload.length, `paused early (${filled} bytes in)`);
    reader.start();
    await new Promise((r) => setImmediate(r));
    assert.equal(filled, payload.length, 'every byte held is delivered');
    assert.ok(Buffer.from(got).equals(payload));
  });
});
