/**
 * An agent: what runs on every host of a fleet. It hosts guests, receives migrations on its
 * migration listener (several at once, routed by UUID: DESIGN 3.5), and migrates its guests
 * to other agents. Its control API is the console's REST API and socket.io (lib/contracts),
 * plus `GET /api/agent` (who it is) and `POST /api/guests` (a new guest), behind a bearer
 * token: a request without it gets 401 and changes nothing.
 *
 * One process, no pages: the registry (server/registry.ts) over the engine, a Destination on
 * the migration address, SQLite history in the data directory. A guest that migrates away
 * stops here only once the destination has verified it (the engine's rule); one that
 * arrives keeps running here.
 */
import type { Limits } from './cli/limit-args';
import http from 'node:http';
import os from 'node:os';
import type { Compression, TlsClient } from '../lib/contracts';
import { Destination, joinHostPort } from '../lib/engine';
import type { TlsServerConfig } from '../lib/engine/tls';
import { createApi } from './api';
import { TokenCheck } from './auth';
import { openHistory } from './history';
import { LocalRegistry } from './registry';
import { TlsCredentialSets, type TlsCredsDir } from './tls-creds';
import { attachSocket } from './socket';

export interface AgentOptions {
  /** Shown to the console; default the host name. */
  name?: string;
  /** Control API (HTTP + socket.io). */
  host: string;
  port: number;
  /** Migration channels (main and multifd). */
  migrationHost: string;
  migrationPort: number;
  /** The bearer token the control API requires. */
  token: string;
  dataDir: string;
  /** Channel-setup and handshake timeouts of incoming migrations (default 10 s). */
  timeoutMs?: number;
  /**
   * TLS on every channel, both ways (as libvirt's): `server` for the migrations that arrive,
   * `client` for the ones this agent starts. Null: in clear.
   */
  tls?: { server: TlsServerConfig; client: TlsClient } | null;
  /** More credential sets for the migrations it starts (`--tls-creds NAME=DIR`); `tls` is "default". */
  tlsCreds?: TlsCredsDir[];
  /** Compression methods arriving migrations may use (default all). */
  compressionAllow?: Compression[];
  /** What the migration listener bounds whoever connects (lib/engine Destination). */
  limits?: Limits;
}

export interface RunningAgent {
  name: string;
  /** http://HOST:PORT of the control API. */
  url: string;
  /** HOST:PORT that sources migrate to. */
  migrationAddress: string;
  registry: LocalRegistry;
  close(): Promise<void>;
}

export const AGENT_VERSION = 1;


export async function startAgent(opts: AgentOptions): Promise<RunningAgent> {
  const name = opts.name ?? os.hostname();
  const auth = new TokenCheck(opts.token);
  const tlsSets = await TlsCredentialSets.load(opts.tls?.client ?? null, opts.tlsCreds);
  const history = openHistory(opts.dataDir);
  history.markInterrupted();
  const destination = new Destination({
    host: opts.migrationHost,
    port: opts.migrationPort,
    setupTimeoutMs: opts.timeoutMs,
    handshakeTimeoutMs: opts.timeoutMs,
    tls: opts.tls?.server ?? null,
    compressionAllow: opts.compressionAllow,
    ...opts.limits,
  });
  const server = http.createServer();
  let registry: LocalRegistry | null = null;
  try {
    const mig = await destination.listen();
    const migrationAddress = joinHostPort(mig.host, mig.port);
    registry = new LocalRegistry(history, destination, {}, tlsSets);
    const reg = registry;
    const startedAt = Date.now();
    const api = createApi(reg, {
      authorize: (req) => auth.allows(req),
      info: () => ({
        name,
        version: AGENT_VERSION,
        migrationAddress,
        startedAt,
        guests: reg.guests().length,
        migrations: reg.list().filter((m) => !['completed', 'failed', 'cancelled'].includes(m.state)).length,
      }),
    });
    server.on('request', (req, res) => {
      if (req.url?.startsWith('/api/')) {
        void api(req, res);
        return;
      }
      res.writeHead(404, { 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify({ code: 'NOT_FOUND', message: 'this is an agent: its API is under /api/' }));
    });
    const io = attachSocket(server, reg, { authorize: (headers, a) => auth.allowsHandshake(headers, a) });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address() as { address: string; port: number };
    let closing: Promise<void> | null = null;
    return {
      name,
      url: `http://${joinHostPort(addr.address, addr.port)}`,
      migrationAddress,
      registry: reg,
      close: () =>
        (closing ??= (async () => {
          await new Promise<void>((resolve) => io.close(() => resolve()));
          await reg.close();
          await destination.close();
          server.closeAllConnections();
          await new Promise<void>((resolve) => server.close(() => resolve()));
          history.close();
        })()),
    };
  } catch (err) {
    await registry?.close();
    await destination.close();
    server.close();
    history.close();
    throw err;
  }
}
