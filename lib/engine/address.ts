import { ConfigInvalidError } from '../errors';

/** Splits HOST:PORT ([v6]:PORT too). Throws ConfigInvalidError saying what was expected. */
export function splitHostPort(s: string, what = 'address'): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:\[\]]+)):(\d{1,5})$/.exec(s.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new ConfigInvalidError(`${what} must be HOST:PORT (e.g. 127.0.0.1:4444), got "${s}"`);
  return { host: m[1] ?? m[2], port };
}

export function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
