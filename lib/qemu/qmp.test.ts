/**
 * The QMP client against a real QEMU (`qemu-system-x86_64 -machine none -S`), plus its
 * timeouts against a socket that never speaks. Skipped, with the reason, when QEMU is not
 * installed (Debian: apt-get install qemu-system-x86).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { QEMU_X86_64, QemuProcess, findExecutable, makeTempDir, removePath, waitForSocket } from './process';
import { QmpClient, QmpConnectionError, QmpError, parseQmpAddress } from './qmp';

const qemu = findExecutable(QEMU_X86_64);
const skip = qemu ? false : `${QEMU_X86_64} is not on PATH (Debian package qemu-system-x86)`;

/** A paused QEMU with a QMP socket; stopped and its directory removed when the test ends, however it ends. */
async function startQemu(t: TestContext): Promise<{ proc: QemuProcess; socket: string; dir: string }> {
  const dir = makeTempDir('qmp-test-');
  const socket = path.join(dir, 'qmp.sock');
  const proc = QemuProcess.spawn('qemu', qemu!, ['-machine', 'none', '-nodefaults', '-display', 'none', '-S', '-qmp', `unix:${socket},server=on,wait=off`]);
  t.after(async () => {
    await proc.stop(2000);
    removePath(dir);
    assert.equal(proc.alive, false, 'QEMU ended');
    assert.equal(existsSync(socket), false, 'QMP socket removed');
  });
  await waitForSocket(socket, 10_000, proc);
  return { proc, socket, dir };
}

describe('QmpClient with a real QEMU', { skip }, () => {
  it('negotiates, reports the paused guest, and passes on QEMU errors verbatim', async (t) => {
    const { socket } = await startQemu(t);
    const qmp = await QmpClient.connect(socket, { connectTimeoutMs: 10_000, commandTimeoutMs: 10_000 });
    t.after(() => qmp.close());
    assert.equal(typeof qmp.greeting?.version.qemu.major, 'number');

    const status = await qmp.execute<{ status: string; running: boolean }>('query-status');
    assert.equal(status.status, 'prelaunch');
    assert.equal(status.running, false);

    await assert.rejects(qmp.execute('no-such-command'), (err: unknown) => {
      assert.ok(err instanceof QmpError);
      assert.equal(err.errorClass, 'CommandNotFound');
      assert.equal(err.command, 'no-such-command');
      assert.match(err.desc, /no-such-command/);
      return true;
    });
    // A command QEMU knows, with a bad argument: its own class again.
    await assert.rejects(qmp.execute('migrate-set-parameters', { 'multifd-channels': 'four' }), (err: unknown) => err instanceof QmpError && err.errorClass === 'GenericError');
    // The connection still works after errors.
    assert.equal((await qmp.execute<{ status: string }>('query-status')).status, 'prelaunch');
  });

  it('collects events and emits them', async (t) => {
    const { socket } = await startQemu(t);
    const qmp = await QmpClient.connect(socket);
    t.after(() => qmp.close());
    const emitted: string[] = [];
    qmp.on('event', (e) => emitted.push(e.event));
    await qmp.execute('cont'); // -machine none has no CPU: the guest "runs" and stays harmless
    const resume = await qmp.waitForEvent('RESUME', { timeoutMs: 5000 });
    assert.ok(resume.timestamp && resume.timestamp.seconds > 0);
    assert.ok(emitted.includes('RESUME'));
    assert.equal((await qmp.execute<{ status: string }>('query-status')).status, 'running');
  });

  it('rejects what is in flight when QEMU goes away, and refuses commands after', async (t) => {
    const { socket, proc } = await startQemu(t);
    const qmp = await QmpClient.connect(socket);
    t.after(() => qmp.close());
    const closed = new Promise<Error | null>((resolve) => qmp.once('close', resolve));
    await qmp.execute('quit').catch((err: unknown) => {
      // QEMU may close the socket before its reply reaches us.
      assert.ok(err instanceof QmpConnectionError && err.reason === 'closed');
    });
    assert.ok((await closed) instanceof QmpConnectionError);
    await proc.exited;
    await assert.rejects(qmp.execute('query-status'), (err: unknown) => err instanceof QmpConnectionError && err.reason === 'closed');
  });
});

describe('QmpClient without QEMU', () => {
  it('times out on a peer that never greets, and releases the socket', async (t) => {
    const dir = makeTempDir('qmp-test-');
    t.after(() => removePath(dir));
    const sockets = new Set<net.Socket>();
    const server = net.createServer((s) => {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
    });
    const socketPath = path.join(dir, 'silent.sock');
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const started = Date.now();
    await assert.rejects(QmpClient.connect(socketPath, { connectTimeoutMs: 300 }), (err: unknown) => err instanceof QmpConnectionError && err.reason === 'timeout');
    assert.ok(Date.now() - started < 3000);
    // The client closed its end: the server side sees the close.
    for (let i = 0; i < 100 && sockets.size > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(sockets.size, 0, 'the client released its socket');
  });

  it('fails to connect to a missing socket with reason "connect"', async () => {
    await assert.rejects(QmpClient.connect('/nonexistent/qmp.sock', { connectTimeoutMs: 2000 }), (err: unknown) => err instanceof QmpConnectionError && err.reason === 'connect');
  });

  it('parses addresses', () => {
    assert.deepEqual(parseQmpAddress('/tmp/a.sock'), { path: '/tmp/a.sock' });
    assert.deepEqual(parseQmpAddress('unix:/tmp/a.sock'), { path: '/tmp/a.sock' });
    assert.deepEqual(parseQmpAddress('127.0.0.1:4444'), { host: '127.0.0.1', port: 4444 });
    assert.deepEqual(parseQmpAddress('tcp:localhost:4444'), { host: 'localhost', port: 4444 });
    assert.deepEqual(parseQmpAddress('[::1]:4444'), { host: '::1', port: 4444 });
    assert.throws(() => parseQmpAddress('tcp:nohost'), RangeError);
  });
});
