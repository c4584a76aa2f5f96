/**
 * Bearer tokens for the agent's control API and the console's login: compared in
 * constant time, read from files that only their owner can read, generated when there is
 * none, and never written to a log.
 */
import net from 'node:net';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import path from 'node:path';
import { ConfigInvalidError } from '../lib/errors';

/** Shortest token accepted: 128 bits in hex. */
export const MIN_TOKEN_LENGTH = 32;

export class TokenCheck {
  readonly #digest: Buffer;

  constructor(token: string) {
    if (token.length < MIN_TOKEN_LENGTH) throw new ConfigInvalidError(`a token must be at least ${MIN_TOKEN_LENGTH} characters`, { field: 'token' });
    this.#digest = sha256(token);
  }

  /** Constant time whatever the candidate's length (both sides are hashed first). */
  matches(candidate: string | null | undefined): boolean {
    if (typeof candidate !== 'string' || candidate.length === 0) return false;
    return timingSafeEqual(this.#digest, sha256(candidate));
  }

  /** A socket.io handshake: `auth: { token }`, else an Authorization header. */
  allowsHandshake(headers: IncomingMessage['headers'], auth: unknown): boolean {
    const given = (auth as { token?: unknown } | null)?.token;
    if (typeof given === 'string') return this.matches(given);
    return this.matches(bearerOf(headers.authorization));
  }

  /** `Authorization: Bearer <token>`. */
  allows(req: IncomingMessage): boolean {
    return this.matches(bearerOf(req.headers.authorization));
  }
}

/**
 * A browser's request from another site's page (a forged POST, a hijacked WebSocket): its
 * Origin is not the address it was sent to. Scripts and agents send no Origin at all.
 */
export function crossOrigin(headers: IncomingMessage['headers']): boolean {
  const origin = headers.origin;
  if (origin === undefined) return false;
  try {
    return new URL(origin).host !== (headers.host ?? '').toLowerCase();
  } catch {
    return true; // 'null' (a sandboxed or file: page), or no URL at all
  }
}

/**
 * The host names a console answers to, against DNS rebinding: a page of evil.example whose
 * name is made to resolve to 127.0.0.1 reaches the console with `Host: evil.example`, and
 * the browser sends it there as to its own site (same origin, no CORS). The console answers
 * only to IP literals (a request naming one of our addresses reached us by that address),
 * `localhost` and its subdomains, the name it listens on, and the names its operator adds
 * (`--allowed-hosts`, MULTIFD_ALLOWED_HOSTS; `.example.com` admits every subdomain), as
 * Vite's and Jupyter's servers do. Case does not matter; a request without Host (no browser
 * sends one) is let through.
 */
export class HostCheck {
  private readonly names: Set<string>;
  private readonly suffixes: string[];

  constructor(listenHost: string, extra: readonly string[] = []) {
    const all = [listenHost, ...extra].map((h) => h.trim().toLowerCase().replace(/^\[|\]$/g, '')).filter(Boolean);
    this.names = new Set(all.filter((h) => !h.startsWith('.')));
    this.suffixes = all.filter((h) => h.startsWith('.'));
  }

  /** The host name of a Host header (port and IPv6 brackets removed), lower case; null if malformed. */
  static hostname(header: string): string | null {
    const h = header.trim().toLowerCase();
    const m = /^\[([0-9a-f:.]+)\](?::\d{1,5})?$/.exec(h) ?? /^([^:\s\[\]/@]+)(?::\d{1,5})?$/.exec(h);
    return m ? m[1] : null;
  }

  allows(header: string | undefined): boolean {
    if (header === undefined) return true;
    const name = HostCheck.hostname(header);
    if (name === null) return false;
    if (net.isIP(name) !== 0) return true;
    if (name === 'localhost' || name.endsWith('.localhost')) return true;
    if (this.names.has(name)) return true;
    return this.suffixes.some((s) => name.endsWith(s) || name === s.slice(1));
  }
}

/** The token of an `Authorization: Bearer <token>` header, if that is what it is. */
export function bearerOf(header: string | string[] | undefined): string | undefined {
  return typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] : undefined;
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** A new random token: 256 bits, hex. */
export function newToken(): string {
  return randomBytes(32).toString('hex');
}

/**
 * The token in `file` (trimmed). A file that group or others can read is refused: a token
 * anyone on the host can read protects nothing.
 */
export function readTokenFile(file: string): string {
  let st;
  try {
    st = statSync(file);
  } catch (err) {
    throw new ConfigInvalidError(`token file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { field: 'token-file' });
  }
  if ((st.mode & 0o077) !== 0) {
    throw new ConfigInvalidError(`token file ${file} is readable by others (mode ${(st.mode & 0o777).toString(8)}): chmod 600 ${file}`, { field: 'token-file' });
  }
  const token = readFileSync(file, 'utf8').trim();
  if (token.length < MIN_TOKEN_LENGTH) throw new ConfigInvalidError(`token file ${file}: the token must be at least ${MIN_TOKEN_LENGTH} characters`, { field: 'token-file' });
  return token;
}

/**
 * The token in `file`, made (256 random bits, mode 0600) when the file does not exist yet.
 * `created` says whether it was made now.
 */
export function ensureTokenFile(file: string): { token: string; created: boolean } {
  if (existsSync(file)) return { token: readTokenFile(file), created: false };
  mkdirSync(path.dirname(file), { recursive: true });
  const token = newToken();
  writeFileSync(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600); // whatever the umask did
  return { token, created: true };
}
