/**
 * The TLS credential sets a console or an agent may use for the migrations it starts: named
 * by its operator on the command line, read and checked once at start, and named (never
 * given as paths) by a migration request. "default" is the set of the --tls-* flags (the one
 * incoming migrations are served with too); `--tls-creds NAME=DIR` adds one from a directory
 * laid out as QEMU's tls-creds objects expect (`dir=`): `ca-cert.pem` with an optional
 * `client-cert.pem` + `client-key.pem` (x509), or `keys.psk` (PSK).
 */
import { constants as fsConstants } from 'node:fs';
import { access } from 'node:fs/promises';
import path from 'node:path';
import type { TlsClient } from '../lib/contracts';
import { DEFAULT_TLS_CREDS, type TlsChoice, type TlsCredsList } from '../lib/contracts/console';
import { loadClientCredentials } from '../lib/engine/tls';
import { ConfigInvalidError, TlsCredentialsInvalidError } from '../lib/errors';

/** `--tls-creds NAME=DIR`, as parsed (server/cli/tls-args.ts). */
export interface TlsCredsDir {
  name: string;
  dir: string;
}

async function exists(file: string): Promise<boolean> {
  return access(file, fsConstants.F_OK).then(
    () => true,
    () => false,
  );
}

/** QEMU's file names in a tls-creds directory, source side. */
async function fromDir(d: TlsCredsDir): Promise<TlsClient> {
  const at = (f: string) => path.join(d.dir, f);
  if (await exists(at('keys.psk'))) return { mode: 'psk', psk: at('keys.psk') };
  const [cert, key] = await Promise.all([exists(at('client-cert.pem')), exists(at('client-key.pem'))]);
  return { mode: 'x509', ca: at('ca-cert.pem'), ...(cert || key ? { cert: at('client-cert.pem'), key: at('client-key.pem') } : {}) };
}

export class TlsCredentialSets {
  private constructor(private readonly sets: ReadonlyMap<string, TlsClient>) {}

  static none(): TlsCredentialSets {
    return new TlsCredentialSets(new Map());
  }

  /**
   * Every set read and checked now, so that a bad file stops the start (with the set's
   * name) instead of a migration later.
   */
  static async load(own: TlsClient | null, dirs: readonly TlsCredsDir[] = []): Promise<TlsCredentialSets> {
    const sets = new Map<string, TlsClient>();
    if (own) sets.set(DEFAULT_TLS_CREDS, own);
    for (const d of dirs) {
      if (sets.has(d.name)) {
        throw new TlsCredentialsInvalidError(
          d.name === DEFAULT_TLS_CREDS && own ? '--tls-creds default=...: "default" is the set of the --tls-* flags' : `--tls-creds ${d.name}: named twice`,
          { expected: 'one set per name', received: d.name, field: 'tls-creds' },
        );
      }
      sets.set(d.name, await fromDir(d));
    }
    for (const [name, client] of sets) {
      await loadClientCredentials(client).catch((err: unknown) => {
        if (err instanceof TlsCredentialsInvalidError) {
          throw new TlsCredentialsInvalidError(`TLS credential set "${name}": ${err.message}`, { expected: err.expected, received: err.received, field: err.field, cause: err });
        }
        throw err;
      });
    }
    return new TlsCredentialSets(sets);
  }

  /** What a request without `tls` uses. */
  get defaultName(): string | null {
    return this.sets.has(DEFAULT_TLS_CREDS) ? DEFAULT_TLS_CREDS : null;
  }

  /** A request's choice as the engine takes it; an unknown set is the request's error (422, field tls). */
  resolve(choice: TlsChoice | null | undefined): TlsClient | null {
    if (choice === null) return null;
    if (choice === undefined) return this.defaultName === null ? null : this.sets.get(this.defaultName)!;
    const set = this.sets.get(choice.creds);
    if (!set) {
      const names = [...this.sets.keys()];
      throw new ConfigInvalidError(
        `no TLS credential set "${choice.creds}" on this host (${names.length === 0 ? 'it has none: migrations go in clear' : `it has ${names.map((n) => `"${n}"`).join(', ')}`})`,
        { field: 'tls', expected: names.length === 0 ? 'no tls, or null' : names.join(', '), received: choice.creds },
      );
    }
    if (choice.hostname === undefined) return set;
    if (set.mode !== 'x509') {
      throw new ConfigInvalidError(`tls.hostname checks a certificate: credential set "${choice.creds}" is PSK`, { field: 'tls', received: choice.hostname });
    }
    return { ...set, hostname: choice.hostname };
  }

  list(): TlsCredsList {
    return {
      sets: [...this.sets].map(([name, c]) => ({ name, mode: c.mode, clientCert: c.mode === 'x509' && c.cert !== undefined })),
      default: this.defaultName,
    };
  }
}
