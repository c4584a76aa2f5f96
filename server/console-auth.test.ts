/**
 * The console's login, over real HTTP and socket.io: open on loopback; beyond it every page,
 * REST call and socket needs the token or a session from POST /api/login; a wrong token gets
 * 401 and changes nothing; a token made at first start is 0600 and shown once.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { io as connect } from 'socket.io-client';
import { createApi } from './api';
import { HostCheck, newToken } from './auth';
import { consoleHandler, consoleLogin, isLoopback } from './console-auth';
import { attachSocket } from './socket';
import { startTestConsole, type TestConsole } from './test-support';

describe('console login', () => {
  it('loopback is open; anything else needs the login', () => {
    for (const h of ['127.0.0.1', '127.3.2.1', '::1', '[::1]', 'localhost']) assert.equal(isLoopback(h), true, h);
    for (const h of ['0.0.0.0', '10.0.0.2', '::', 'console.example']) assert.equal(isLoopback(h), false, h);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'multifd-login-'));
    try {
      assert.equal(consoleLogin('127.0.0.1', dir, () => {}).required, false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a token made at first start is 0600 and shown that once', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'multifd-login-'));
    const saved = process.env.MULTIFD_CONSOLE_TOKEN;
    delete process.env.MULTIFD_CONSOLE_TOKEN;
    try {
      const lines: string[] = [];
      assert.equal(consoleLogin('0.0.0.0', dir, (l) => lines.push(l)).required, true);
      const file = path.join(dir, 'console.token');
      const token = readFileSync(file, 'utf8').trim();
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.ok(lines[0].includes(token), 'shown when made');
      consoleLogin('0.0.0.0', dir, (l) => lines.push(l));
      assert.ok(!lines[1].includes(token), 'not shown again');
    } finally {
      if (saved !== undefined) process.env.MULTIFD_CONSOLE_TOKEN = saved;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('on loopback', () => {
    let tc: TestConsole;
    before(async () => {
      tc = await startTestConsole((server, registry) => {
        const login = consoleLogin('127.0.0.1', os.tmpdir(), () => {});
        const handle = consoleHandler(login, createApi(registry), (_req, res) => void res.end('the console'));
        server.on('request', (req, res) => void handle(req, res));
        attachSocket(server, registry);
      });
    });
    after(() => tc.close());

    it("open to the operator, not to the pages of other sites the operator visits", async () => {
      assert.equal((await fetch(`${tc.url}/api/migrations`)).status, 200, 'open: no login');
      const before = tc.registry.guests().length;
      // What any page can send without asking (a "simple" request): no preflight stops it.
      const forged = await fetch(`${tc.url}/api/guests`, { method: 'POST', headers: { origin: 'https://evil.example', 'content-type': 'text/plain' }, body: '{"ramSize": 1048576}' });
      assert.equal(forged.status, 403);
      assert.equal(tc.registry.guests().length, before, 'nothing was created');
      const s = connect(tc.url, { transports: ['websocket'], reconnection: false, extraHeaders: { origin: 'https://evil.example' } });
      const err = await new Promise<Error | null>((r) => (s.once('connect_error', r), s.once('connect', () => r(null))));
      s.close();
      assert.ok(err, 'a socket from another site is refused');
      const own = connect(tc.url, { transports: ['websocket'], reconnection: false, extraHeaders: { origin: tc.url } });
      await new Promise<void>((resolve, reject) => (own.once('connect', () => resolve()), own.once('connect_error', reject)));
      own.close();
    });
  });

  describe('beyond loopback', () => {
    let tc: TestConsole;
    const token = newToken();
    let saved: string | undefined;

    before(async () => {
      saved = process.env.MULTIFD_CONSOLE_TOKEN;
      process.env.MULTIFD_CONSOLE_TOKEN = token;
      tc = await startTestConsole((server, registry) => {
        const login = consoleLogin('0.0.0.0', os.tmpdir(), () => {});
        const api = createApi(registry, { authorize: (req) => login.allows(req) });
        const page = (_req: http.IncomingMessage, res: http.ServerResponse) => {
          res.writeHead(200, { 'content-type': 'text/html' });
          res.end('<p>the console</p>');
        };
        const handle = consoleHandler(login, api, page);
        server.on('request', (req, res) => void handle(req, res));
        attachSocket(server, registry, { authorize: (h, a) => login.allowsHandshake(h, a) });
      });
    });
    after(async () => {
      if (saved === undefined) delete process.env.MULTIFD_CONSOLE_TOKEN;
      else process.env.MULTIFD_CONSOLE_TOKEN = saved;
      await tc.close();
    });

    const get = (p: string, headers: Record<string, string> = {}) => fetch(tc.url + p, { headers, redirect: 'manual' });

    it('pages send a stranger to /login, REST says 401 and does nothing, sockets are turned away', async () => {
      const page = await get('/migrations/x');
      assert.equal(page.status, 302);
      assert.equal(page.headers.get('location'), '/login?next=%2Fmigrations%2Fx');
      assert.equal((await get('/login')).status, 200, 'the login page itself is open');
      const before = tc.registry.guests().length;
      const post = await fetch(`${tc.url}/api/migrations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"channels": 1, "ramSize": 1048576}' });
      assert.equal(post.status, 401);
      assert.equal(((await post.json()) as { code: string }).code, 'UNAUTHORIZED');
      assert.equal(tc.registry.guests().length, before, 'nothing was started');
      assert.equal(tc.registry.list().length, 0);
      const s = connect(tc.url, { transports: ['websocket'], reconnection: false });
      const err = await new Promise<Error>((r) => s.once('connect_error', r));
      s.close();
      assert.match(err.message, /unauthorized/);
    });

    /** A request line sent as written (fetch would normalize the path first). */
    const raw = (p: string, method = 'GET') =>
      new Promise<{ status: number; location: string | undefined }>((resolve, reject) => {
        const req = http.request(tc.url, { method, path: p }, (res) => {
          res.resume();
          resolve({ status: res.statusCode!, location: res.headers.location });
        });
        req.on('error', reject);
        req.end();
      });

    it('a path that is no URL gets 400 and the console lives on', async () => {
      for (const p of ['//', '//@', '//:99999/x', '/\\\\']) {
        assert.equal((await raw(p)).status, 400, p);
        assert.equal((await raw(p, 'POST')).status, 400, `POST ${p}`);
      }
      assert.equal((await get('/login')).status, 200, 'still answering');
    });

    it('no path trick gets past the login, and the way back is always a path of this console', async () => {
      for (const p of ['/_next/../migrations/x', '/_next/%2e%2e/migrations/x', '/login/../agents', '/favicon.svg/../agents', '/_next\\..\\agents', '/x/..%2f../api/migrations']) {
        const r = await raw(p);
        assert.equal(r.status, 302, p);
        assert.match(r.location ?? '', /^\/login\?next=/, p);
      }
      for (const p of ['/api/../api/migrations', '/api/%2e%2e/api/migrations', '/api/migrations/../migrations']) {
        assert.equal((await raw(p)).status, 401, p);
        assert.equal((await raw(p, 'POST')).status, 401, `POST ${p}`);
      }
      // Where the login page sends the browser back to: a path here, never another site.
      for (const p of ['/\\evil.example/x', '/.//evil.example/x', '//evil.example/x', '/%5Cevil.example']) {
        const r = await raw(p);
        assert.equal(r.status, 302, p);
        const next = new URL(r.location!, 'http://console').searchParams.get('next')!;
        assert.ok(next.startsWith('/') && !next.startsWith('//') && !next.includes('\\'), `${p} -> ${next}`);
        assert.equal(new URL(next, 'http://console').host, 'console', `${p} -> ${next}`);
      }
    });

    it("another site's page gets nowhere, even with the token: REST 403 and nothing done, sockets turned away", async () => {
      const before = tc.registry.guests().length;
      const forged = await fetch(`${tc.url}/api/guests`, {
        method: 'POST',
        headers: { origin: 'http://evil.example', authorization: `Bearer ${token}`, 'content-type': 'text/plain' },
        body: '{"ramSize": 1048576}',
      });
      assert.equal(forged.status, 403);
      assert.equal(((await forged.json()) as { code: string }).code, 'CROSS_ORIGIN');
      assert.equal(tc.registry.guests().length, before, 'nothing was created');
      const own = await fetch(`${tc.url}/api/migrations`, { headers: { origin: tc.url, authorization: `Bearer ${token}` } });
      assert.equal(own.status, 200, "the console's own pages are of its origin");
      const s = connect(tc.url, { transports: ['websocket'], reconnection: false, auth: { token }, extraHeaders: { origin: 'http://evil.example' } });
      const err = await new Promise<Error | null>((r) => (s.once('connect_error', r), s.once('connect', () => r(null))));
      s.close();
      assert.ok(err, 'a socket from another site is refused');
    });

    it('a wrong token does not log in; the right one gives a session cookie that opens pages, REST and sockets', async () => {
      const wrong = await fetch(`${tc.url}/api/login`, { method: 'POST', body: JSON.stringify({ token: newToken() }) });
      assert.equal(wrong.status, 401);
      assert.equal(wrong.headers.get('set-cookie'), null);

      const ok = await fetch(`${tc.url}/api/login`, { method: 'POST', body: JSON.stringify({ token }) });
      assert.equal(ok.status, 204);
      const cookie = ok.headers.get('set-cookie')!;
      assert.match(cookie, /HttpOnly/);
      assert.match(cookie, /SameSite=Strict/);
      const session = cookie.split(';')[0];
      assert.equal((await get('/', { cookie: session })).status, 200);
      assert.equal((await get('/api/migrations', { cookie: session })).status, 200);
      assert.equal((await get('/api/migrations', { authorization: `Bearer ${token}` })).status, 200, 'scripts use the token itself');
      const bad = await get('/api/migrations/%E0%A4', { authorization: `Bearer ${token}` });
      assert.equal(bad.status, 400, 'a broken escape in a path is a bad request, not an internal error');
      const s = connect(tc.url, { transports: ['websocket'], reconnection: false, extraHeaders: { cookie: session } });
      await new Promise<void>((resolve, reject) => {
        s.once('connect', () => resolve());
        s.once('connect_error', reject);
      });
      const cut = new Promise<string>((resolve) => s.once('disconnect', (reason) => resolve(reason)));

      const out = await fetch(`${tc.url}/api/logout`, { method: 'POST', headers: { cookie: session } });
      assert.equal(out.status, 204);
      assert.equal((await get('/api/migrations', { cookie: session })).status, 401, 'logged out');
      // The socket opened with that session does not stream on after it.
      const reason = await Promise.race([cut, new Promise<string>((r) => setTimeout(() => r('still connected'), 5000))]);
      s.close();
      assert.equal(reason, 'io server disconnect', 'the logged-out socket is closed by the console');
    });
  });
});

describe('HostCheck: the host names the console answers to (DNS rebinding)', () => {
  const check = new HostCheck('127.0.0.1', ['console.example', '.lab.example']);
  const cases: Array<[string | undefined, boolean]> = [
    ['127.0.0.1:3000', true],
    ['127.0.0.2', true],
    ['[::1]:3000', true],
    ['10.0.0.2:3000', true],
    ['localhost:3000', true],
    ['LocalHost', true],
    ['app.localhost:3000', true],
    ['console.example:3000', true],
    ['CONSOLE.EXAMPLE', true],
    ['a.lab.example', true],
    ['lab.example', true],
    [undefined, true],
    ['evil.example:3000', false],
    ['EVIL.EXAMPLE:3000', false],
    ['console.example.evil.example', false],
    ['evillab.example', false],
    ['localhost.evil.example', false],
    ['user@localhost', false],
    ['', false],
    ['[::1', false],
  ];
  for (const [host, ok] of cases) {
    it(`${JSON.stringify(host)}: ${ok ? 'answered' : 'refused'}`, () => {
      assert.equal(check.allows(host), ok);
    });
  }
});
