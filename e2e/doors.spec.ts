/**
 * The console's own doors against DNS rebinding: a page whose name is made to resolve to
 * 127.0.0.1 reaches the console as its own site. The console answers only to IP literals,
 * localhost and the names it was given, and no request or socket under another Host name
 * starts, reads or subscribes to anything.
 */
import http from 'node:http';
import { chromium, expect, test } from '@playwright/test';
import { listMigrations } from './support';

/** One request with the Host header we choose (a browser would send the rebound name). */
function raw(base: string, method: string, path: string, host: string, body?: unknown, origin?: string): Promise<{ status: number; body: string }> {
  const url = new URL(path, base);
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        method,
        path: url.pathname,
        headers: {
          host,
          ...(origin ? { origin } : {}),
          ...(data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}),
        },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString('utf8')));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

test('requests naming another host are refused 421 HOST_NOT_ALLOWED, whatever their case or Origin; nothing starts', async ({ request, baseURL }) => {
  const port = new URL(baseURL!).port;
  const before = (await listMigrations(request)).length;
  for (const [host, origin] of [
    [`evil.example:${port}`, `http://evil.example:${port}`],
    [`evil.example:${port}`, undefined],
    [`EVIL.EXAMPLE:${port}`, `http://evil.example:${port}`],
    ['evil.example', undefined],
  ] as const) {
    const post = await raw(baseURL!, 'POST', '/api/migrations', host, { channels: 2 }, origin);
    expect(post.status, `POST with Host ${host}: ${post.body}`).toBe(421);
    expect(JSON.parse(post.body).code).toBe('HOST_NOT_ALLOWED');
    for (const path of ['/api/migrations', '/', '/history', '/socket.io/?EIO=4&transport=polling']) {
      const get = await raw(baseURL!, 'GET', path, host, undefined, origin);
      expect([400, 403, 421], `GET ${path} with Host ${host}: ${get.status} ${get.body.slice(0, 200)}`).toContain(get.status);
      expect(get.body).not.toContain('"migrations"');
    }
  }
  expect((await listMigrations(request)).length, 'no migration was started').toBe(before);
  // The names it does answer to.
  for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`]) {
    expect((await raw(baseURL!, 'GET', '/api/migrations', host)).status, host).toBe(200);
  }
});

test('in chromium, a page at a rebound name (evil.example -> 127.0.0.1) gets no console and cannot call the API', async ({ baseURL }) => {
  const port = new URL(baseURL!).port;
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--host-resolver-rules=MAP evil.example 127.0.0.1'],
  });
  try {
    const page = await browser.newPage();
    const res = await page.goto(`http://evil.example:${port}/`);
    expect(res?.status()).toBe(421);
    await expect(page.locator('body')).toContainText('HOST_NOT_ALLOWED');
    // The attacker's script, same-origin with the rebound name.
    const answer = await page.evaluate(async () => {
      const r = await fetch('/api/migrations', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"channels":2}' });
      return { status: r.status, text: await r.text() };
    });
    expect(answer.status).toBe(421);
  } finally {
    await browser.close();
  }
});
