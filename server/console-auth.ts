/**
 * The console's login. On loopback the console is open, as a local tool is. On any other
 * address every page, REST call and socket.io connection needs the operator token: from
 * MULTIFD_CONSOLE_TOKEN, or made at first start in <dataDir>/console.token (0600) and
 * printed that once. A browser logs in once (POST /api/login) and gets a session cookie
 * (HttpOnly, SameSite=Strict, 12 h); scripts send `Authorization: Bearer <token>`.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { ConfigInvalidError } from '../lib/errors';
import { MIN_TOKEN_LENGTH, TokenCheck, crossOrigin, ensureTokenFile } from './auth';

export const SESSION_COOKIE = 'multifd_session';
const SESSION_MS = 12 * 3600_000;
/** Sessions kept at most (oldest dropped): a bound, whatever a client does. */
const MAX_SESSIONS = 1000;
/** A wrong token waits this long: guessing a 256-bit token was hopeless anyway, now it is slow too. */
const FAIL_DELAY_MS = 250;

export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

export interface ConsoleLogin {
  /** False on loopback: everything is open. */
  readonly required: boolean;
  /** A request carries the token or a live session. */
  allows(req: IncomingMessage): boolean;
  /** The same for a socket.io handshake (its headers and `auth`). */
  allowsHandshake(headers: IncomingMessage['headers'], auth: unknown): boolean;
  /** POST /api/login and /api/logout; false when the request is not one of them. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<boolean>;
}

const OPEN: ConsoleLogin = {
  required: false,
  allows: () => true,
  allowsHandshake: () => true,
  handle: async () => false,
};

/**
 * The login for a console listening on `host`. `log` gets the one line that shows a token
 * made now (nothing else ever shows it).
 */
export function consoleLogin(host: string, dataDir: string, log: (line: string) => void): ConsoleLogin {
  if (isLoopback(host)) return OPEN;
  const fromEnv = process.env.MULTIFD_CONSOLE_TOKEN?.trim();
  let token: string;
  if (fromEnv) {
    if (fromEnv.length < MIN_TOKEN_LENGTH) throw new ConfigInvalidError(`MULTIFD_CONSOLE_TOKEN must be at least ${MIN_TOKEN_LENGTH} characters`);
    token = fromEnv;
  } else {
    const file = path.join(dataDir, 'console.token');
    const t = ensureTokenFile(file);
    token = t.token;
    if (t.created) log(`multifd console: login token ${token} (kept in ${file}, mode 0600; shown this once)`);
    else log(`multifd console: login token in ${file}`);
  }
  return new TokenLogin(new TokenCheck(token));
}

class TokenLogin implements ConsoleLogin {
  readonly required = true;
  readonly #check: TokenCheck;
  /** session id → expiry (ms since the epoch) */
  readonly #sessions = new Map<string, number>();

  constructor(check: TokenCheck) {
    this.#check = check;
  }

  allows(req: IncomingMessage): boolean {
    return this.#check.allows(req) || this.#session(req.headers.cookie);
  }

  allowsHandshake(headers: IncomingMessage['headers'], auth: unknown): boolean {
    return this.#check.allowsHandshake(headers, auth) || this.#session(headers.cookie);
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const url = requestUrl(req)?.pathname;
    if (req.method === 'POST' && url === '/api/logout') {
      const id = sessionId(req.headers.cookie);
      if (id) this.#sessions.delete(id);
      res.writeHead(204, { 'set-cookie': `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`, 'cache-control': 'no-store' });
      res.end();
      return true;
    }
    if (req.method !== 'POST' || url !== '/api/login') return false;
    let token = '';
    try {
      const body = await readSmall(req);
      token = String((JSON.parse(body || '{}') as { token?: unknown }).token ?? '');
    } catch {
      token = '';
    }
    if (!this.#check.matches(token)) {
      await new Promise((r) => setTimeout(r, FAIL_DELAY_MS));
      res.writeHead(401, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
      res.end(JSON.stringify({ code: 'UNAUTHORIZED', message: 'that is not the console token', fields: { token: ['that is not the console token'] } }));
      return true;
    }
    const id = randomBytes(32).toString('hex');
    if (this.#sessions.size >= MAX_SESSIONS) this.#sessions.delete(this.#sessions.keys().next().value!);
    this.#sessions.set(id, Date.now() + SESSION_MS);
    res.writeHead(204, {
      'set-cookie': `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_MS / 1000}`,
      'cache-control': 'no-store',
    });
    res.end();
    return true;
  }

  #session(cookie: string | undefined): boolean {
    const id = sessionId(cookie);
    const expiry = id ? this.#sessions.get(id) : undefined;
    if (expiry === undefined) return false;
    if (expiry > Date.now()) return true;
    this.#sessions.delete(id!);
    return false;
  }
}

function sessionId(cookie: string | undefined): string | null {
  if (!cookie) return null;
  for (const part of cookie.split(';')) {
    const [k, v] = part.trim().split('=');
    if (k === SESSION_COOKIE && v && /^[0-9a-f]{64}$/.test(v)) return v;
  }
  return null;
}

async function readSmall(req: IncomingMessage): Promise<string> {
  let s = '';
  for await (const chunk of req) {
    s += String(chunk);
    if (s.length > 4096) throw new Error('too large');
  }
  return s;
}

/** The request's URL as WHATWG parses it (`..` resolved, `\` as `/`); null when it is none. */
function requestUrl(req: IncomingMessage): URL | null {
  try {
    return new URL(req.url ?? '/', 'http://x');
  } catch {
    return null;
  }
}

/** Paths a browser may load before it logged in: the login page and what it is built of. */
export function openWithoutLogin(pathname: string): boolean {
  return pathname === '/login' || pathname.startsWith('/_next/') || pathname === '/favicon.svg' || pathname === '/favicon.ico' || pathname === '/api/login';
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

/**
 * The console's one request handler: login and logout, then the REST API (which refuses on
 * its own what the login does not allow), then pages, which send a browser that has not
 * logged in to /login?next=<where it was going>. No API call comes from another site's page,
 * logged in or not (on loopback the console is open: any page the operator visits could
 * otherwise drive it).
 */
export function consoleHandler(login: ConsoleLogin, api: Handler, pages: Handler): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (req, res) => {
    const url = requestUrl(req);
    if (!url) {
      // `//` or `//@`: a request line no URL parser takes (and that would otherwise throw here).
      res.writeHead(400, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
      res.end(JSON.stringify({ code: 'BAD_REQUEST', message: 'the request path is not a URL path' }));
      return;
    }
    const pathname = url.pathname;
    if (pathname.startsWith('/api/') && crossOrigin(req.headers)) {
      req.resume();
      res.writeHead(403, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
      res.end(JSON.stringify({ code: 'CROSS_ORIGIN', message: `a page of ${req.headers.origin} may not call this console` }));
      return;
    }
    if (await login.handle(req, res)) return;
    if (pathname.startsWith('/api/')) {
      await api(req, res);
      return;
    }
    if (login.required && !openWithoutLogin(pathname) && !login.allows(req)) {
      // `next` is the path as parsed, never the request line verbatim: a browser reads
      // `/\evil.com` or `//evil.com` as another site.
      const next = pathname.replace(/^\/+/, '/') + url.search;
      res.writeHead(302, { location: `/login?next=${encodeURIComponent(next)}`, 'cache-control': 'no-store' });
      res.end();
      return;
    }
    await pages(req, res);
  };
}
