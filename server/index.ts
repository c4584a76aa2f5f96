/**
 * The console's one process: an HTTP server hosting Next.js (the pages), the REST API and
 * socket.io, a migration registry running migrations through the engine, an embedded
 * destination on loopback, and the history store.
 */
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import next from 'next';
import type { Compression, TlsClient } from '../lib/contracts';
import { Destination } from '../lib/engine';
import type { TlsServerConfig } from '../lib/engine/tls';
import { createApi } from './api';
import { HostCheck } from './auth';
import { consoleHandler, consoleLogin } from './console-auth';
import { defaultDataDir, openHistory } from './history';
import { Fleet } from './fleet';
import { LocalRegistry } from './registry';
import { TlsCredentialSets, type TlsCredsDir } from './tls-creds';
import { attachSocket } from './socket';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface ConsoleOptions {
  host?: string;
  port?: number;
  dataDir?: string;
  /** Next's dev mode (hot reload); production (a `next build` first) otherwise. */
  dev?: boolean;
  /** The embedded destination's listener (default 127.0.0.1, any port). */
  embeddedHost?: string;
  embeddedPort?: number;
  /** QEMU mode: how long a destination QEMU may take to say how it ended (default 5 s). */
  qemuWaitMs?: number;
  /** QEMU mode: query-migrate period (default 500 ms). */
  qemuPollMs?: number;
  /**
   * TLS: `server` for the embedded destination, `client` for the migrations this console
   * starts (unless a request says otherwise). Null: in clear.
   */
  tls?: { server: TlsServerConfig; client: TlsClient } | null;
  /** More credential sets for the migrations it starts (`--tls-creds NAME=DIR`); `tls` is "default". */
  tlsCreds?: TlsCredsDir[];
  /** Compression methods the embedded destination allows (default all). */
  compressionAllow?: Compression[];
  /**
   * Host names the console answers to besides IP literals, localhost, the name it listens on
   * and this machine's host name (DNS rebinding: server/auth.ts HostCheck). `.example.com`
   * admits its subdomains.
   */
  allowedHosts?: string[];
}

export interface RunningConsole {
  url: string;
  embedded: string;
  close(): Promise<void>;
}

export async function startConsole(opts: ConsoleOptions = {}): Promise<RunningConsole> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 3000;
  const dataDir = opts.dataDir ?? defaultDataDir();
  // Checked before anything opens: a bad credential file stops the start, naming its set.
  const tlsSets = await TlsCredentialSets.load(opts.tls?.client ?? null, opts.tlsCreds);
  const history = openHistory(dataDir);
  history.markInterrupted();
  const embedded = new Destination({ host: opts.embeddedHost ?? '127.0.0.1', port: opts.embeddedPort ?? 0, tls: opts.tls?.server ?? null, compressionAllow: opts.compressionAllow });
  const emb = await embedded.listen().catch((err: unknown) => {
    history.close();
    throw err;
  });
  const registry = new LocalRegistry(history, embedded, {
    destinationWaitMs: opts.qemuWaitMs,
    pollMs: opts.qemuPollMs,
    recordRoot: path.join(dataDir, 'recordings'),
  }, tlsSets);
  // The agents this console was given, found again after a restart.
  registry.attachFleet(new Fleet(dataDir));
  const app = next({ dev: opts.dev ?? false, dir: ROOT, hostname: host, port });
  await app.prepare();
  const pages = app.getRequestHandler();
  // Open on loopback; elsewhere every page, call and socket needs the operator's token.
  const login = consoleLogin(host, dataDir, (line) => process.stderr.write(`${line}\n`));
  const api = createApi(registry, login.required ? { authorize: (req) => login.allows(req) } : {});
  const handle = consoleHandler(login, api, (req, res) =>
    pages(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    }),
  );
  const hosts = new HostCheck(host, [os.hostname(), ...(opts.allowedHosts ?? [])]);
  const server = http.createServer((req, res) => {
    if (!hosts.allows(req.headers.host)) {
      misdirected(req, res);
      return;
    }
    void handle(req, res);
  });
  // A slow body or header cannot hold a connection for Node's default five minutes.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.maxConnections = 1024;
  const io = attachSocket(server, registry, {
    allowHost: (h) => hosts.allows(h),
    ...(login.required ? { authorize: (headers, a) => login.allowsHandshake(headers, a) } : {}),
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  const actualPort = typeof addr === 'object' && addr ? addr.port : port;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}`,
    embedded: `${emb.host}:${emb.port}`,
    close: () =>
      (closing ??= (async () => {
        await new Promise<void>((resolve) => io.close(() => resolve()));
        await registry.close();
        await embedded.close();
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await app.close?.();
        history.close();
      })()),
  };
}

/** A request naming a host this console does not answer to: 421, and nothing else is read. */
function misdirected(req: http.IncomingMessage, res: http.ServerResponse): void {
  req.resume();
  res.writeHead(421, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', connection: 'close' });
  res.end(
    JSON.stringify({
      code: 'HOST_NOT_ALLOWED',
      message: `this console does not answer to the host name in "Host: ${String(req.headers.host).slice(0, 255)}"; start it with --allowed-hosts NAME to reach it by that name`,
    }),
  );
}
