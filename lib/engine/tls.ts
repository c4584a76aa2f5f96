/**
 * TLS on the main channel and every multifd channel (QEMU's tls-creds): credentials loaded
 * from files and checked before anything connects, the source's handshake over a connected
 * socket, the destination's over an accepted one, and every TLS failure mapped to one
 * stable code that names the channel, with what was expected and what was received.
 *
 * Both sides pin TLS 1.3: Node 20's pskCallback works in TLS 1.3 (OpenSSL 3 runs the
 * pre-TLS-1.3 PSK callbacks as external PSKs, with a SHA-256 suite and (EC)DHE, so PSK keeps
 * forward secrecy), and one version keeps each failure's alert, hence its code, the same.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { open } from 'node:fs/promises';
import net from 'node:net';
import tls from 'node:tls';
import type { TlsClient } from '../contracts';
import {
  MigrationError,
  TlsCertUntrustedError,
  TlsClientCertRequiredError,
  TlsClientCertUntrustedError,
  TlsCredentialsInvalidError,
  TlsHandshakeFailedError,
  TlsHostnameMismatchError,
  TlsNotConfiguredError,
  TlsPskMismatchError,
} from '../errors';

/** The first byte of a TLS handshake record (a ClientHello): how a destination tells TLS from clear. */
export const TLS_HANDSHAKE_RECORD = 0x16;

const TLS_VERSION = 'TLSv1.3';
/** OpenSSL's limits (PSK_MAX_IDENTITY_LEN, and a key size Node accepts). */
const PSK_MAX_IDENTITY = 128;
const PSK_MAX_KEY = 256;

/** Destination side: file paths on the host that runs the destination. */
export type TlsServerConfig =
  | { mode: 'x509'; cert: string; key: string; ca?: string; requireClientCert?: boolean }
  | { mode: 'psk'; psk: string };

export type TlsMode = 'x509' | 'psk';

export interface TlsClientCredentials {
  mode: TlsMode;
  context: tls.SecureContext;
  /** The same trust without our certificate (the tls-anon fault). */
  anonymous: tls.SecureContext | null;
  /** QEMU's tls-hostname: the name the destination's certificate must carry instead of the --to host. */
  hostname: string | null;
  hasCert: boolean;
  psk: { identity: string; key: Buffer } | null;
}

export interface TlsServerCredentials {
  mode: TlsMode;
  context: tls.SecureContext;
  /** A CA is configured: a client certificate, when presented, must verify against it. */
  verifyClients: boolean;
  requireClientCert: boolean;
  /** Subjects of the CA certificates, for messages. */
  caNames: string[];
  psk: Map<string, Buffer> | null;
}

/** What protects a connection, once its handshake is done. */
export interface TlsInfo {
  mode: TlsMode;
  /** e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384 x509 client-cert", "TLSv1.3 TLS_CHACHA20_POLY1305_SHA256 psk:qemu" */
  description: string;
  securedAt: number;
}

// --- credentials ---------------------------------------------------------------------------

function invalid(file: string, what: string, problem: string, cause?: unknown): TlsCredentialsInvalidError {
  return new TlsCredentialsInvalidError(`TLS ${what} ${file}: ${problem}`, {
    expected: `a readable ${what}`,
    received: problem,
    field: what,
    cause,
  });
}

/** A PEM bundle or a PSK file is a few KiB; a larger file is not one. */
export const TLS_FILE_MAX_BYTES = 1 << 20;

/**
 * Opened without blocking and checked to be a regular file before a byte is read: a FIFO or
 * a device named here would otherwise hold one of libuv's few pool threads (every file read
 * of the process) until something writes to it.
 */
async function readText(file: string, what: string): Promise<string> {
  let fh;
  try {
    fh = await open(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOCTTY);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const problem = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : `cannot be opened (${code ?? String(err)})`;
    throw invalid(file, what, problem, err);
  }
  try {
    const st = await fh.stat();
    if (st.isDirectory()) throw invalid(file, what, 'is a directory');
    if (!st.isFile()) throw invalid(file, what, 'not a regular file');
    if (st.size > TLS_FILE_MAX_BYTES) throw invalid(file, what, `larger than ${TLS_FILE_MAX_BYTES >> 20} MiB`);
    const data = await fh.readFile();
    if (data.length > TLS_FILE_MAX_BYTES) throw invalid(file, what, `larger than ${TLS_FILE_MAX_BYTES >> 20} MiB`);
    return data.toString('utf8');
  } catch (err) {
    if (err instanceof TlsCredentialsInvalidError) throw err;
    throw invalid(file, what, `cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`, err);
  } finally {
    await fh.close();
  }
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

function parseCerts(file: string, what: string, text: string): X509Certificate[] {
  const blocks = text.match(CERT_BLOCK) ?? [];
  if (blocks.length === 0) throw invalid(file, what, 'not a PEM certificate (no -----BEGIN CERTIFICATE----- block)');
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (err) {
      throw invalid(file, what, `certificate ${i + 1} does not parse (${(err as Error).message})`, err);
    }
  });
}

function parseKey(file: string, text: string): KeyObject {
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(text)) {
    throw invalid(file, 'key', 'the private key is encrypted; give it unencrypted (and readable by this user only)');
  }
  if (!/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(text)) throw invalid(file, 'key', 'not a PEM private key (no -----BEGIN ... PRIVATE KEY----- block)');
  try {
    return createPrivateKey(text);
  } catch (err) {
    throw invalid(file, 'key', `the private key does not parse (${(err as Error).message})`, err);
  }
}

function subjectOf(c: X509Certificate): string {
  return c.subject.split('\n').filter(Boolean).join(', ') || '(empty subject)';
}

function checkValidity(file: string, what: string, c: X509Certificate): void {
  const now = Date.now();
  if (Date.parse(c.validTo) < now) throw invalid(file, what, `the certificate of ${subjectOf(c)} expired on ${c.validTo}`);
  if (Date.parse(c.validFrom) > now) throw invalid(file, what, `the certificate of ${subjectOf(c)} is not valid before ${c.validFrom}`);
}

/** A certificate (first block: ours; the rest: its chain) and the key that goes with it. */
async function loadCertAndKey(certFile: string, keyFile: string): Promise<{ cert: string; key: string; leaf: X509Certificate }> {
  const [certText, keyText] = await Promise.all([readText(certFile, 'certificate'), readText(keyFile, 'key')]);
  const [leaf] = parseCerts(certFile, 'certificate', certText);
  checkValidity(certFile, 'certificate', leaf);
  const key = parseKey(keyFile, keyText);
  if (!leaf.checkPrivateKey(key)) {
    throw invalid(keyFile, 'key', `this key does not match the certificate in ${certFile} (${subjectOf(leaf)})`);
  }
  return { cert: certText, key: keyText, leaf };
}

async function loadCa(file: string): Promise<{ pem: string; names: string[] }> {
  const text = await readText(file, 'CA');
  const certs = parseCerts(file, 'CA', text);
  return { pem: text, names: certs.map(subjectOf) };
}

/** QEMU's PSK file: `identity:hexkey`, one per line (blank lines and # comments skipped). */
export async function loadPskFile(file: string): Promise<Array<{ identity: string; key: Buffer }>> {
  const text = await readText(file, 'PSK file');
  const out: Array<{ identity: string; key: Buffer }> = [];
  const seen = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const at = `line ${i + 1}`;
    const colon = line.indexOf(':');
    if (colon <= 0) throw invalid(file, 'PSK file', `${at}: expected IDENTITY:HEXKEY`);
    const identity = line.slice(0, colon);
    const hex = line.slice(colon + 1);
    // Messages name the line, never its text: neither the key nor anything else the file
    // holds (a path given by mistake may be any file this user can read).
    if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length % 2 !== 0) {
      throw invalid(file, 'PSK file', `${at}: the key is not hex (an even number of 0-9a-f digits after IDENTITY:)`);
    }
    if (Buffer.byteLength(identity) > PSK_MAX_IDENTITY) throw invalid(file, 'PSK file', `${at}: identity longer than ${PSK_MAX_IDENTITY} bytes`);
    if (hex.length / 2 > PSK_MAX_KEY) throw invalid(file, 'PSK file', `${at}: key longer than ${PSK_MAX_KEY} bytes`);
    const first = seen.get(identity);
    if (first !== undefined) throw invalid(file, 'PSK file', `${at}: the identity of line ${first} again`);
    seen.set(identity, i + 1);
    out.push({ identity, key: Buffer.from(hex, 'hex') });
  });
  if (out.length === 0) throw invalid(file, 'PSK file', 'no IDENTITY:HEXKEY line');
  return out;
}

function context(opts: tls.SecureContextOptions, what: string): tls.SecureContext {
  try {
    return tls.createSecureContext({ minVersion: TLS_VERSION, ...opts });
  } catch (err) {
    throw new TlsCredentialsInvalidError(`TLS ${what}: ${(err as Error).message}`, { expected: 'usable TLS credentials', received: (err as Error).message, cause: err });
  }
}

/** The source's credentials (MigrationConfig.tls), read and checked once per migration. */
export async function loadClientCredentials(cfg: TlsClient): Promise<TlsClientCredentials> {
  if (cfg.mode === 'psk') {
    const [first] = await loadPskFile(cfg.psk);
    return { mode: 'psk', context: context({}, 'PSK'), anonymous: null, hostname: null, hasCert: false, psk: first };
  }
  if ((cfg.cert === undefined) !== (cfg.key === undefined)) {
    const given = cfg.cert !== undefined ? `certificate ${cfg.cert}` : `key ${cfg.key}`;
    throw new TlsCredentialsInvalidError(`TLS client certificate: a certificate and its key go together, only the ${given} was given`, {
      expected: 'both a client certificate and its key, or neither',
      received: `only the ${given}`,
    });
  }
  const ca = await loadCa(cfg.ca);
  const own = cfg.cert !== undefined && cfg.key !== undefined ? await loadCertAndKey(cfg.cert, cfg.key) : null;
  return {
    mode: 'x509',
    context: context({ ca: ca.pem, ...(own ? { cert: own.cert, key: own.key } : {}) }, 'x509 client'),
    anonymous: own ? context({ ca: ca.pem }, 'x509 client') : null,
    hostname: cfg.hostname ?? null,
    hasCert: own !== null,
    psk: null,
  };
}

/** The destination's credentials, read and checked before it listens. */
export async function loadServerCredentials(cfg: TlsServerConfig): Promise<TlsServerCredentials> {
  if (cfg.mode === 'psk') {
    const keys = await loadPskFile(cfg.psk);
    return {
      mode: 'psk',
      context: context({}, 'PSK'),
      verifyClients: false,
      requireClientCert: false,
      caNames: [],
      psk: new Map(keys.map((k) => [k.identity, k.key])),
    };
  }
  if (cfg.requireClientCert && !cfg.ca) {
    throw new TlsCredentialsInvalidError('TLS: requiring client certificates needs the CA that signs them', {
      expected: 'a CA file with requireClientCert',
      received: 'no CA file',
    });
  }
  const own = await loadCertAndKey(cfg.cert, cfg.key);
  const ca = cfg.ca ? await loadCa(cfg.ca) : null;
  return {
    mode: 'x509',
    context: context({ cert: own.cert, key: own.key, ...(ca ? { ca: ca.pem } : {}) }, 'x509 server'),
    verifyClients: ca !== null,
    requireClientCert: cfg.requireClientCert === true,
    caNames: ca?.names ?? [],
    psk: null,
  };
}

// --- the source's side ---------------------------------------------------------------------

export interface ClientHandshake {
  /** null: the main channel. */
  channel: number | null;
  /** The destination's host from --to: what its certificate must name, unless creds.hostname. */
  host: string;
  port: number;
  timeoutMs: number;
  /** Registers the TLS socket with its owner's lifetime (released on every path). */
  track: (s: net.Socket) => void;
  /** Faults: check this host name instead, or present no client certificate. */
  hostname?: string;
  anonymous?: boolean;
}

/** "main channel to 10.0.0.2:4444" / "channel 3 to 10.0.0.2:4444" */
export function channelName(channel: number | null, peer?: string | null): string {
  const what = channel === null ? 'main channel' : `channel ${channel}`;
  return peer ? `${what} to ${peer}` : what;
}

/**
 * TLS over a connected socket (the source's side). Resolves once the destination's identity
 * is verified; rejects with the mapped error. The handshake has `timeoutMs` of its own.
 */
export function secureClient(raw: net.Socket, creds: TlsClientCredentials, h: ClientHandshake): Promise<{ socket: tls.TLSSocket; info: TlsInfo }> {
  const peer = `${h.host.includes(':') ? `[${h.host}]` : h.host}:${h.port}`;
  const expected = h.hostname ?? creds.hostname ?? h.host;
  const anonymous = h.anonymous === true && creds.anonymous !== null;
  const where: FailureContext = { channel: h.channel, peer, mode: creds.mode, expectedHost: expected, hasCert: creds.hasCert && !anonymous, phase: 'handshake' };
  return new Promise((resolve, reject) => {
    const opts: tls.ConnectionOptions = {
      socket: raw,
      secureContext: anonymous ? creds.anonymous! : creds.context,
      // x509: the verdict is read at secureConnect below, where the certificate can still be
      // named in the error (node's own rejection comes after the socket has let go of it).
      rejectUnauthorized: creds.mode === 'psk',
    };
    if (creds.mode === 'psk') {
      const psk = creds.psk!;
      opts.pskCallback = () => ({ psk: psk.key, identity: psk.identity });
      // No certificate takes part: node would otherwise check the (absent) one's names.
      opts.checkServerIdentity = () => undefined;
    } else {
      // SNI carries a host name, never an IP (RFC 6066); the check below covers both.
      if (net.isIP(expected) === 0) opts.servername = expected;
      opts.checkServerIdentity = (_name, cert) => tls.checkServerIdentity(expected, cert);
    }
    let settled = false;
    // From here errors surface on the TLS socket; one on the TCP socket under it must not crash.
    raw.on('error', () => {});
    const socket = tls.connect(opts);
    h.track(socket);
    const timer = setTimeout(() => {
      fail(
        new TlsHandshakeFailedError(`${channelName(h.channel, peer)}: no TLS handshake within ${h.timeoutMs} ms`, {
          channel: h.channel,
          peer,
          expected: `a TLS handshake within ${h.timeoutMs} ms`,
          received: 'none',
        }),
      );
    }, h.timeoutMs);
    const fail = (err: MigrationError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    // Kept after the handshake (then no-ops): an error before the owner listens must not crash.
    socket.on('error', (err) => fail(tlsFailure(err, where) ?? handshakeClosed(err, where)));
    socket.once('close', () => fail(handshakeClosed(null, where)));
    socket.once('secureConnect', () => {
      if (settled) return;
      if (creds.mode === 'x509' && socket.authorized !== true) {
        const code = String(socket.authorizationError ?? 'CERT_UNTRUSTED');
        const cert = socket.getPeerCertificate();
        fail(
          tlsFailure({ code, cert: cert && cert.subject ? cert : undefined }, where) ??
            new TlsHandshakeFailedError(`${channelName(h.channel, peer)}: the destination's certificate is not accepted (${code})`, {
              channel: h.channel,
              peer,
              expected: 'a certificate that verifies',
              received: code,
            }),
        );
        return;
      }
      settled = true;
      clearTimeout(timer);
      const cipher = socket.getCipher();
      const auth = creds.mode === 'psk' ? `psk:${creds.psk!.identity}` : anonymous || !creds.hasCert ? 'x509' : 'x509 client-cert';
      resolve({ socket, info: { mode: creds.mode, description: `${socket.getProtocol() ?? 'TLS'} ${cipher?.name ?? '?'} ${auth}`, securedAt: Date.now() } });
    });
  });
}

// --- the destination's side ----------------------------------------------------------------

export interface ServerHandshake {
  connection: number;
  peer: string;
  /** Done, and the client's certificate is what this destination asks for. */
  secure(socket: tls.TLSSocket, info: TlsInfo): void;
  /** The TLS handshake failed, or the client's certificate is refused (`socket` then still open to say so). */
  refused(err: MigrationError, socket: tls.TLSSocket | null): void;
}

/**
 * TLS over an accepted socket (the destination's side). The bytes already read from `raw`
 * must have been put back (socket.unshift): the TLS socket takes over the connection's
 * handle and feeds what is buffered on `raw` to its engine first (TLSSocket's initRead).
 * Returns the TLS socket; exactly one of h.secure and h.refused is called, unless it is
 * destroyed first (the caller's timeout or shutdown), after which neither is.
 */
export function secureServer(raw: net.Socket, creds: TlsServerCredentials, h: ServerHandshake): tls.TLSSocket {
  const where = { connection: h.connection, peer: h.peer, channel: null };
  const prefix = `connection #${h.connection} from ${h.peer}`;
  let identity: string | null = null;
  let unknownIdentity: string | null = null;
  // rejectUnauthorized stays false: node would drop a refused client without a word, and the
  // source is owed a reason (a Failed frame; see refused()).
  const socket = new tls.TLSSocket(raw, {
    isServer: true,
    secureContext: creds.context,
    requestCert: creds.verifyClients,
    rejectUnauthorized: false,
    ...(creds.psk
      ? {
          pskCallback: (_s: tls.TLSSocket, id: string) => {
            const key = creds.psk!.get(id) ?? null;
            if (key) identity = id;
            else unknownIdentity = id;
            return key;
          },
        }
      : {}),
  });
  let settled = false;
  const refuse = (err: MigrationError, open: boolean) => {
    if (settled) return;
    settled = true;
    h.refused(err, open ? socket : null);
  };
  socket.on('error', (err) => {
    if (settled) return;
    refuse(serverFailure(err, creds, { prefix, where, unknownIdentity }), false);
  });
  socket.once('close', () => {
    if (socket.destroyed && !settled && !destroyedByUs.has(socket)) {
      refuse(
        new TlsHandshakeFailedError(
          `${prefix}: the source closed the connection during the TLS handshake (it may not trust this destination's certificate, or not the host name it names)`,
          { ...where, expected: 'a TLS handshake', received: 'connection closed' },
        ),
        false,
      );
    }
  });
  socket.once('secure', () => {
    if (settled) return;
    const cipher = socket.getCipher();
    const base = `${socket.getProtocol() ?? 'TLS'} ${cipher?.name ?? '?'}`;
    if (creds.mode === 'psk') {
      settled = true;
      h.secure(socket, { mode: 'psk', description: `${base} psk:${identity ?? '?'}`, securedAt: Date.now() });
      return;
    }
    const peerCert = creds.verifyClients ? socket.getPeerX509Certificate() : undefined;
    if (!peerCert) {
      if (creds.requireClientCert) {
        refuse(
          new TlsClientCertRequiredError(`${prefix}: this destination requires a client certificate signed by ${creds.caNames.join('; ')}, the source sent none`, {
            ...where,
            expected: `a client certificate signed by ${creds.caNames.join('; ')}`,
            received: 'no client certificate',
          }),
          true,
        );
        return;
      }
      settled = true;
      h.secure(socket, { mode: 'x509', description: `${base} x509`, securedAt: Date.now() });
      return;
    }
    const verdict = verifyError(socket);
    if (verdict !== null) {
      refuse(
        new TlsClientCertUntrustedError(
          `${prefix}: the source's client certificate (${subjectOf(peerCert)}, issued by ${peerCert.issuer.split('\n').filter(Boolean).join(', ')}) is not signed by a CA this destination trusts (${verdict})`,
          {
            ...where,
            expected: `a client certificate signed by ${creds.caNames.join('; ')}`,
            received: `certificate of ${subjectOf(peerCert)} issued by ${peerCert.issuer.split('\n').filter(Boolean).join(', ')} (${verdict})`,
          },
        ),
        true,
      );
      return;
    }
    settled = true;
    h.secure(socket, { mode: 'x509', description: `${base} x509 client-cert`, securedAt: Date.now() });
  });
  return socket;
}

/** Ends a server-side handshake that no longer matters (timeout, shutdown): no callback follows. */
export function abandon(socket: tls.TLSSocket): void {
  destroyedByUs.add(socket);
  socket.destroy();
}
const destroyedByUs = new WeakSet<tls.TLSSocket>();

/**
 * The client certificate's verification result: what tls.Server itself checks before it
 * sets `authorized` (node sets `authorized` only on sockets a tls.Server accepted, not on a
 * server-side TLSSocket made by hand: nodejs/node#31305). Null when it verified. Where this
 * Node lacks the check, every certificate is refused rather than trusted blindly.
 */
function verifyError(socket: tls.TLSSocket): string | null {
  const handle = (socket as unknown as { _handle?: { verifyError?: () => (Error & { code?: string }) | null } })._handle;
  if (typeof handle?.verifyError !== 'function') return 'CERT_VERIFICATION_UNAVAILABLE';
  const e = handle.verifyError();
  return e ? (e.code ?? e.message) : null;
}

// --- what a failure means ------------------------------------------------------------------

interface FailureContext {
  channel: number | null;
  peer: string | null;
  mode: TlsMode;
  /** The name the destination's certificate must carry (x509). */
  expectedHost: string | null;
  /** The source presented a client certificate. */
  hasCert: boolean;
  /** During the handshake, or afterwards (an alert about our certificate can come after it, in TLS 1.3). */
  phase: 'handshake' | 'stream';
}

/** OpenSSL's verification results that mean "not signed by a CA we trust". */
const UNTRUSTED = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
  'CERT_CHAIN_TOO_LONG',
  'PATH_LENGTH_EXCEEDED',
]);
/** Other verification results: the certificate is signed by our CA but unusable. */
const UNUSABLE = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'INVALID_PURPOSE', 'CERT_REVOKED', 'ERROR_IN_CERT_NOT_BEFORE_FIELD', 'ERROR_IN_CERT_NOT_AFTER_FIELD']);
/** Alerts a destination sends about the source's client certificate. */
const CLIENT_CERT_ALERTS = new Set([
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
  'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED',
  'ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE',
  'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED',
]);
/** What a source in PSK mode sees when the destination's key or identity differs. */
const PSK_REFUSALS = new Set([
  'ERR_SSL_SSLV3_ALERT_ILLEGAL_PARAMETER', // TLS 1.3: the binder (made with our key) does not verify
  'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE', // TLS 1.3: our identity is unknown there
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_PSK_IDENTITY', // TLS 1.2 peers
  'ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR',
  'ERR_SSL_SSLV3_ALERT_BAD_RECORD_MAC',
  'ERR_SSL_DECRYPTION_FAILED_OR_BAD_RECORD_MAC',
]);
/** A record that is not TLS: the destination answered in clear. */
const CLEAR_ANSWERS = new Set(['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'ERR_SSL_HTTP_REQUEST', 'ERR_SSL_RECORD_LAYER_FAILURE']);

/** "IP Address:127.0.0.1, DNS:localhost" → "127.0.0.1, localhost"; else the subject's CN. */
function namesOf(cert: tls.PeerCertificate | undefined): string {
  if (!cert) return 'an unknown certificate';
  const san = cert.subjectaltname?.replace(/(IP Address|DNS|URI|email):/g, '').trim();
  if (san) return san;
  const cn = cert.subject?.CN;
  return cn ? `CN=${Array.isArray(cn) ? cn.join(',') : cn}` : 'no names';
}

/** "CN=localhost, issued by CN=hostile CA" */
function describeCert(cert: tls.PeerCertificate | undefined): string {
  if (!cert?.subject) return 'an unknown certificate';
  const dn = (x: tls.Certificate) => Object.entries(x).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`).join(', ');
  return cert.issuer ? `${dn(cert.subject)}, issued by ${dn(cert.issuer)}` : dn(cert.subject);
}

/**
 * The source's view of a TLS error as one of our codes, or null when it is not about TLS (a
 * reset after the handshake is the connection's business).
 */
export function tlsFailure(err: unknown, w: FailureContext): MigrationError | null {
  const e = err as (Error & { code?: string; reason?: string; cert?: tls.PeerCertificate; host?: string }) | null;
  const code = e?.code ?? '';
  const what = channelName(w.channel, w.peer);
  const ctx = { channel: w.channel, peer: w.peer, cause: err };
  const detail = e?.reason ?? e?.message ?? code;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    const names = namesOf(e?.cert);
    return new TlsHostnameMismatchError(`${what}: the destination's certificate is for ${names}, not ${w.expectedHost}`, {
      ...ctx,
      expected: `a certificate for ${w.expectedHost}`,
      received: `certificate for ${names}`,
    });
  }
  if (code === 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED') {
    return new TlsClientCertRequiredError(`${what}: the destination requires a client certificate${w.hasCert ? '' : ', and this source has none'}`, {
      ...ctx,
      expected: 'a client certificate',
      received: w.hasCert ? 'refused as missing' : 'none sent',
    });
  }
  if (CLIENT_CERT_ALERTS.has(code)) {
    return new TlsClientCertUntrustedError(`${what}: the destination refused this source's client certificate (${detail})`, {
      ...ctx,
      expected: 'a client certificate the destination trusts',
      received: `${w.hasCert ? 'our certificate' : 'no certificate'}, refused: ${detail}`,
    });
  }
  if (w.phase === 'stream') return null;
  if (w.mode === 'x509' && UNTRUSTED.has(code)) {
    const whose = describeCert(e?.cert);
    return new TlsCertUntrustedError(`${what}: the destination's certificate (${whose}) is not signed by a CA this source trusts (${code})`, {
      ...ctx,
      expected: 'a certificate signed by the CA given to this source',
      received: `certificate of ${whose} (${code})`,
    });
  }
  if (UNTRUSTED.has(code) || UNUSABLE.has(code)) {
    // PSK mode: the destination offered a certificate instead, so it does not take PSK.
    const psk = w.mode === 'psk';
    return new TlsHandshakeFailedError(
      psk
        ? `${what}: the destination authenticated with a certificate, not a pre-shared key: it is set up for x509 (${code})`
        : `${what}: the destination's certificate (${describeCert(e?.cert)}) cannot be used (${code})`,
      { ...ctx, expected: psk ? 'a PSK handshake' : 'a valid certificate', received: psk ? code : `certificate of ${describeCert(e?.cert)} (${code})` },
    );
  }
  if (w.mode === 'psk' && PSK_REFUSALS.has(code)) {
    return new TlsPskMismatchError(`${what}: the destination does not accept this source's pre-shared key (identity or key differs, or it does not use PSK): ${detail}`, {
      ...ctx,
      expected: 'the same identity and key on both sides',
      received: `refused: ${detail}`,
    });
  }
  if (CLEAR_ANSWERS.has(code)) {
    return new TlsNotConfiguredError(`${what}: the destination answered in clear: it has no TLS credentials (${code})`, {
      ...ctx,
      expected: 'a TLS handshake',
      received: 'bytes in clear',
    });
  }
  if (code === 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE' || code === 'ERR_SSL_NO_SHARED_CIPHER') {
    return new TlsHandshakeFailedError(`${what}: the destination refused the TLS handshake (no common authentication: is it set up for PSK?): ${detail}`, {
      ...ctx,
      expected: 'an x509 handshake',
      received: `refused: ${detail}`,
    });
  }
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) {
    return new TlsHandshakeFailedError(`${what}: TLS handshake failed: ${detail} (${code})`, { ...ctx, expected: 'a TLS 1.3 handshake', received: code });
  }
  return null;
}

function handshakeClosed(err: unknown, w: FailureContext): MigrationError {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return new TlsHandshakeFailedError(
    `${channelName(w.channel, w.peer)}: the destination closed the connection during the TLS handshake${code ? ` (${code})` : ''}`,
    { channel: w.channel, peer: w.peer, expected: 'a TLS handshake', received: code ?? 'connection closed', cause: err ?? undefined },
  );
}

/** The destination's view of a failed handshake. */
function serverFailure(
  err: unknown,
  creds: TlsServerCredentials,
  s: { prefix: string; where: { connection: number; peer: string; channel: null }; unknownIdentity: string | null },
): MigrationError {
  const e = err as Error & { code?: string; reason?: string };
  const code = e?.code ?? '';
  const detail = e?.reason ?? e?.message ?? code;
  const ctx = { ...s.where, cause: err };
  if (creds.mode === 'psk') {
    if (s.unknownIdentity !== null) {
      return new TlsPskMismatchError(`${s.prefix}: PSK identity "${s.unknownIdentity}" is not in this destination's PSK file`, {
        ...ctx,
        expected: `one of the identities ${[...creds.psk!.keys()].map((k) => `"${k}"`).join(', ')}`,
        received: `identity "${s.unknownIdentity}"`,
      });
    }
    if (code === 'ERR_SSL_BINDER_DOES_NOT_VERIFY' || code === 'ERR_SSL_CIPHER_OPERATION_FAILED' || code === 'ERR_SSL_DECRYPTION_FAILED_OR_BAD_RECORD_MAC') {
      return new TlsPskMismatchError(`${s.prefix}: the source's pre-shared key differs from this destination's for its identity (${detail})`, {
        ...ctx,
        expected: 'the same key for the identity',
        received: 'a different key',
      });
    }
    if (code === 'ERR_SSL_NO_SUITABLE_SIGNATURE_ALGORITHM' || code === 'ERR_SSL_NO_SHARED_CIPHER') {
      return new TlsHandshakeFailedError(`${s.prefix}: the source offered no pre-shared key (is it set up for x509?): ${detail}`, {
        ...ctx,
        expected: 'a PSK handshake',
        received: detail,
      });
    }
  } else if (code === 'ERR_SSL_NO_SHARED_CIPHER' || code === 'ERR_SSL_NO_SUITABLE_SIGNATURE_ALGORITHM') {
    return new TlsHandshakeFailedError(`${s.prefix}: the source offered nothing this x509 destination takes (is it set up for PSK?): ${detail}`, {
      ...ctx,
      expected: 'an x509 handshake',
      received: detail,
    });
  }
  if (code === 'ERR_SSL_UNSUPPORTED_PROTOCOL' || code === 'ERR_SSL_WRONG_VERSION_NUMBER') {
    return new TlsHandshakeFailedError(`${s.prefix}: the source does not speak TLS 1.3 (${detail})`, { ...ctx, expected: 'TLS 1.3', received: detail });
  }
  if (code === 'ECONNRESET' || code === 'EPIPE') {
    return new TlsHandshakeFailedError(
      `${s.prefix}: the source closed the connection during the TLS handshake (it may not trust this destination's certificate, or not the host name it names)`,
      { ...ctx, expected: 'a TLS handshake', received: code },
    );
  }
  return new TlsHandshakeFailedError(`${s.prefix}: TLS handshake failed: ${detail}${code ? ` (${code})` : ''}`, { ...ctx, expected: 'a TLS 1.3 handshake', received: code || detail });
}
