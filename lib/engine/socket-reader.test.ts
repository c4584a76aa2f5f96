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
});
