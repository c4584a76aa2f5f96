/**
 * TLS credentials for tests, benches and e2e, made at run time with the `openssl` CLI in a
 * temporary directory (no key is ever committed): a CA, a server certificate for 127.0.0.1
 * and localhost, a client certificate, a second ("hostile") CA with its own client
 * certificate, and QEMU-style PSK files.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { TlsClient } from '../contracts';
import type { TlsServerConfig } from './tls';

const run = promisify(execFile);

export interface TestPki {
  dir: string;
  /** The CA that signs the server and the friendly client. */
  ca: string;
  /** server.pem: SAN IP:127.0.0.1, DNS:localhost; extendedKeyUsage serverAuth and clientAuth (an agent uses it both ways). */
  serverCert: string;
  serverKey: string;
  /** Signed by `ca`. */
  clientCert: string;
  clientKey: string;
  /** Another CA, and a client certificate it signed: trusted by nobody here. */
  hostileCa: string;
  hostileCert: string;
  hostileKey: string;
  /** A certificate signed by the hostile CA for 127.0.0.1 (a destination nobody should trust). */
  hostileServerCert: string;
  hostileServerKey: string;
  /** `qemu:<hex>`, then a second identity. */
  psk: string;
  /** Same identity "qemu", another key. */
  pskOtherKey: string;
  /** Another identity, the same key as `psk`'s first line. */
  pskOtherIdentity: string;
  /** Removes the directory. */
  cleanup(): Promise<void>;
}

const EXT = `[server]
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
[client]
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
`;

async function openssl(dir: string, args: string[]): Promise<void> {
  try {
    await run('openssl', args, { cwd: dir });
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`openssl ${args.join(' ')}: ${e.stderr?.trim() || e.message}`);
  }
}

/** P-256 keys: a few ms each, where RSA would take a good part of a second. */
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

async function makeCa(dir: string, name: string, cn: string): Promise<void> {
  await openssl(dir, [
    'req', '-x509', ...EC, '-keyout', `${name}-key.pem`, '-out', `${name}.pem`, '-days', '7', '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
}

async function makeCert(dir: string, name: string, cn: string, ca: string, ext: 'server' | 'client'): Promise<void> {
  await openssl(dir, ['req', '-new', ...EC, '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
  await openssl(dir, [
    'x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}-key.pem`, '-CAcreateserial',
    '-out', `${name}.pem`, '-days', '7', '-extfile', 'ext.cnf', '-extensions', ext,
  ]);
}

export async function makeTestPki(): Promise<TestPki> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'multifd-tls-'));
  try {
    await writeFile(path.join(dir, 'ext.cnf'), EXT);
    await Promise.all([makeCa(dir, 'ca', 'multifd test CA'), makeCa(dir, 'hostile-ca', 'hostile CA')]);
    // -CAcreateserial writes the CA's serial file: one signing per CA at a time.
    await Promise.all([
      makeCert(dir, 'server', 'localhost', 'ca', 'server').then(() => makeCert(dir, 'client', 'multifd source', 'ca', 'client')),
      makeCert(dir, 'hostile', 'hostile source', 'hostile-ca', 'client').then(() => makeCert(dir, 'hostile-server', 'localhost', 'hostile-ca', 'server')),
    ]);
    const key = randomBytes(32).toString('hex');
    const p = (f: string) => path.join(dir, f);
    await writeFile(p('keys.psk'), `qemu:${key}\nbackup:${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    await writeFile(p('other-key.psk'), `qemu:${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    await writeFile(p('other-identity.psk'), `intruder:${key}\n`, { mode: 0o600 });
    return {
      dir,
      ca: p('ca.pem'),
      serverCert: p('server.pem'),
      serverKey: p('server-key.pem'),
      clientCert: p('client.pem'),
      clientKey: p('client-key.pem'),
      hostileCa: p('hostile-ca.pem'),
      hostileCert: p('hostile.pem'),
      hostileKey: p('hostile-key.pem'),
      hostileServerCert: p('hostile-server.pem'),
      hostileServerKey: p('hostile-server-key.pem'),
      psk: p('keys.psk'),
      pskOtherKey: p('other-key.psk'),
      pskOtherIdentity: p('other-identity.psk'),
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** The usual destination: the server certificate, the CA for client certificates. */
export function serverX509(pki: TestPki, requireClientCert = false): TlsServerConfig {
  return { mode: 'x509', cert: pki.serverCert, key: pki.serverKey, ca: pki.ca, requireClientCert };
}

/** A source that trusts the CA; with `client`, it presents the friendly client certificate. */
export function clientX509(pki: TestPki, opts: { client?: boolean; hostname?: string } = {}): TlsClient {
  return {
    mode: 'x509',
    ca: pki.ca,
    ...(opts.client ? { cert: pki.clientCert, key: pki.clientKey } : {}),
    ...(opts.hostname ? { hostname: opts.hostname } : {}),
  };
}
