/**
 * The TLS flags, shared by `multifd migrate` (source), `multifd dest` (destination), and
 * `multifd agent` and the console server (both: the same credentials serve both ways, as
 * libvirt's do):
 *
 *   --tls-cert FILE --tls-key FILE --tls-ca FILE [--tls-hostname NAME]   x509
 *   --tls-psk FILE                                                       pre-shared keys
 *   --tls-require-client-cert                                            (destination)
 *
 * Paths are made absolute here; the files are read and checked by the engine (a source when
 * its migration starts, a destination before it listens).
 */
import path from 'node:path';
import type { TlsClient } from '../../lib/contracts';
import { TLS_CREDS_NAME } from '../../lib/contracts/console';
import type { TlsCredsDir } from '../tls-creds';
import type { TlsServerConfig } from '../../lib/engine/tls';
import { UsageError } from './args';

/** For parseArgs' `options`. */
export const TLS_OPTIONS = {
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-ca': { type: 'string' },
  'tls-hostname': { type: 'string' },
  'tls-psk': { type: 'string' },
  'tls-require-client-cert': { type: 'boolean' },
} as const;

export interface TlsValues {
  'tls-cert'?: string;
  'tls-key'?: string;
  'tls-ca'?: string;
  'tls-hostname'?: string;
  'tls-psk'?: string;
  'tls-require-client-cert'?: boolean;
}

export type TlsRole = 'source' | 'destination' | 'both';

/** Usage lines for a command's help; `width`: the column the descriptions start at. */
export function tlsUsage(role: TlsRole, width = 30): string {
  const rows: Array<[string, string]> = [
    ['--tls-cert FILE', role === 'source'
      ? "TLS on every channel, x509: a client certificate (PEM) to present\nto the destination (optional; with --tls-key)"
      : "TLS on every channel, x509: this host's certificate (PEM)" + (role === 'both' ? ',\npresented both ways (it needs serverAuth and clientAuth, or no\nextendedKeyUsage)' : '')],
    ['--tls-key FILE', 'its private key (PEM, unencrypted)'],
    ['--tls-ca FILE', role === 'destination'
      ? "the CA that signs sources' client certificates (a certificate a\nsource presents must verify against it)"
      : role === 'source'
        ? "the CA that signs the destination's certificate (required for x509)"
        : "the CA that signs every host's certificate (required for x509)"],
  ];
  if (role === 'source') {
    rows.push(['--tls-hostname NAME', "the name the destination's certificate must carry (default: the\nhost of --to; an IP is checked against its IP addresses)"]);
  }
  rows.push(['--tls-psk FILE', role === 'source'
    ? "TLS with a pre-shared key instead: IDENTITY:HEXKEY lines (QEMU's\nformat); the first line is used"
    : "TLS with pre-shared keys instead: IDENTITY:HEXKEY lines (QEMU's\nformat); any listed identity is accepted" + (role === 'both' ? ', the first is used\nto migrate' : '')]);
  if (role !== 'source') rows.push(['--tls-require-client-cert', 'refuse sources without a client certificate signed by --tls-ca']);
  if (role === 'both') rows.push(TLS_CREDS_USAGE_ROW);
  const pad = ' '.repeat(width);
  return rows
    .map(([flag, text]) => {
      const [first, ...more] = text.split('\n');
      const head = `  ${flag}`;
      return [head.length < width ? head.padEnd(width) + first : `${head}\n${pad}${first}`, ...more.map((l) => pad + l)].join('\n');
    })
    .join('\n') + '\n';
}

const abs = (f: string): string => path.resolve(f);

/** The flags given, for messages. */
function given(v: TlsValues, names: Array<keyof TlsValues>): string[] {
  return names.filter((n) => v[n] !== undefined && v[n] !== false).map((n) => `--${n}`);
}

function check(v: TlsValues, role: TlsRole): 'x509' | 'psk' | null {
  const x509 = given(v, ['tls-cert', 'tls-key', 'tls-ca', 'tls-hostname']);
  if (v['tls-psk'] !== undefined && x509.length > 0) {
    throw new UsageError(`--tls-psk and ${x509.join(', ')} exclude each other: TLS is either x509 or PSK`);
  }
  if (role === 'source' && v['tls-require-client-cert']) {
    throw new UsageError('--tls-require-client-cert is for a destination (multifd dest, agent, console)');
  }
  if (role !== 'source' && v['tls-hostname'] !== undefined) {
    throw new UsageError('--tls-hostname names one destination: give it to multifd migrate (or in the migration request)');
  }
  if (v['tls-psk'] !== undefined) {
    if (v['tls-require-client-cert']) throw new UsageError('--tls-require-client-cert goes with x509 (--tls-cert, --tls-key, --tls-ca), not --tls-psk');
    return 'psk';
  }
  if (x509.length === 0) {
    if (v['tls-require-client-cert']) throw new UsageError('--tls-require-client-cert needs x509 credentials: --tls-cert, --tls-key and --tls-ca');
    return null;
  }
  if ((v['tls-cert'] === undefined) !== (v['tls-key'] === undefined)) {
    throw new UsageError(v['tls-cert'] !== undefined ? '--tls-cert needs its --tls-key' : '--tls-key needs its --tls-cert');
  }
  if (role === 'source' && v['tls-ca'] === undefined) {
    throw new UsageError(`${x509.join(', ')}: x509 needs --tls-ca, the CA that signs the destination's certificate`);
  }
  if (role !== 'source' && v['tls-cert'] === undefined) {
    throw new UsageError(`${x509.join(', ')}: a destination needs its certificate: --tls-cert and --tls-key`);
  }
  if (role === 'both' && v['tls-ca'] === undefined) {
    throw new UsageError('--tls-cert and --tls-key also serve this host\'s outgoing migrations: give --tls-ca, the CA that signs the other hosts\' certificates');
  }
  if (v['tls-require-client-cert'] && v['tls-ca'] === undefined) {
    throw new UsageError('--tls-require-client-cert needs --tls-ca, the CA that signs the client certificates');
  }
  return 'x509';
}

/** `multifd migrate`: the source's TLS, or null in clear. */
export function tlsClientFrom(v: TlsValues): TlsClient | null {
  const mode = check(v, 'source');
  if (mode === null) return null;
  if (mode === 'psk') return { mode, psk: abs(v['tls-psk']!) };
  return {
    mode,
    ca: abs(v['tls-ca']!),
    ...(v['tls-cert'] !== undefined ? { cert: abs(v['tls-cert']), key: abs(v['tls-key']!) } : {}),
    ...(v['tls-hostname'] !== undefined ? { hostname: hostname(v['tls-hostname']) } : {}),
  };
}

/** `multifd dest`: the destination's TLS, or null in clear. */
export function tlsServerFrom(v: TlsValues): TlsServerConfig | null {
  const mode = check(v, 'destination');
  if (mode === null) return null;
  if (mode === 'psk') return { mode, psk: abs(v['tls-psk']!) };
  return {
    mode,
    cert: abs(v['tls-cert']!),
    key: abs(v['tls-key']!),
    ...(v['tls-ca'] !== undefined ? { ca: abs(v['tls-ca']) } : {}),
    requireClientCert: v['tls-require-client-cert'] === true,
  };
}

/** An agent or the console: one set of credentials for what arrives and what leaves. */
export interface TlsBoth {
  server: TlsServerConfig;
  client: TlsClient;
}

export function tlsBothFrom(v: TlsValues): TlsBoth | null {
  const mode = check(v, 'both');
  if (mode === null) return null;
  if (mode === 'psk') {
    const psk = abs(v['tls-psk']!);
    return { server: { mode, psk }, client: { mode, psk } };
  }
  const cert = abs(v['tls-cert']!);
  const key = abs(v['tls-key']!);
  const ca = abs(v['tls-ca']!);
  return {
    server: { mode, cert, key, ca, requireClientCert: v['tls-require-client-cert'] === true },
    client: { mode, ca, cert, key },
  };
}

/** For parseArgs' `options` of the console and an agent: more credential sets for the migrations they start. */
export const TLS_CREDS_OPTION = { 'tls-creds': { type: 'string', multiple: true } } as const;

export const TLS_CREDS_USAGE_ROW: [string, string] = [
  '--tls-creds NAME=DIR',
  "another TLS credential set a migration request may name (repeat for\nmore): DIR holds ca-cert.pem [client-cert.pem client-key.pem], or\nkeys.psk, as QEMU's tls-creds dir=; the --tls-* flags are \"default\"",
];

/** `--tls-creds NAME=DIR`, each; directories made absolute. */
export function tlsCredsFrom(values: readonly string[] | undefined): TlsCredsDir[] {
  const out: TlsCredsDir[] = [];
  for (const v of values ?? []) {
    const eq = v.indexOf('=');
    const name = eq < 0 ? '' : v.slice(0, eq);
    const dir = eq < 0 ? '' : v.slice(eq + 1);
    if (!TLS_CREDS_NAME.test(name) || dir === '') {
      throw new UsageError(`--tls-creds takes NAME=DIR (NAME: 1 to 64 letters, digits, dots, dashes or underscores), got "${v}"`);
    }
    if (out.some((d) => d.name === name)) throw new UsageError(`--tls-creds ${name}: named twice`);
    out.push({ name, dir: abs(dir) });
  }
  return out;
}

function hostname(name: string): string {
  const n = name.trim();
  if (n === '' || n.length > 253 || /\s/.test(n)) throw new UsageError(`--tls-hostname must be a host name or IP address, got "${name}"`);
  return n;
}
