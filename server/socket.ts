/**
 * socket.io for the console: one room per migration (`migration:<id>`); batches of events go
 * to the room, list changes to everyone. Types are shared with the pages through
 * lib/contracts; what a client sends is still validated.
 */
import type { Server as HttpServer } from 'node:http';
import { Server } from 'socket.io';
import {
  SubscribeIdSchema,
  type ClientToServerEvents,
  type ServerToClientEvents,
  type SubscribeReply,
} from '../lib/contracts/console';
import { crossOrigin } from './auth';
import type { MigrationRegistry } from './registry';

export interface SocketOptions {
  /** When set, a connection it refuses is turned away ('unauthorized'): the handshake's headers and `auth`. */
  authorize?: ((headers: import('node:http').IncomingHttpHeaders, auth: unknown) => boolean) | null;
  /** The Host header names a host this console answers to (DNS rebinding); default: any. */
  allowHost?: (host: string | undefined) => boolean;
}

/** How often a connected socket's login is checked again. */
const RECHECK_MS = 2000;

export function attachSocket(http: HttpServer, registry: MigrationRegistry, opts: SocketOptions = {}): Server<ClientToServerEvents, ServerToClientEvents> {
  // Not from another site's page, whatever else is asked: a WebSocket is not held back by CORS.
  const io = new Server<ClientToServerEvents, ServerToClientEvents>(http, { serveClient: false, allowRequest: (req, cb) => cb(null, !crossOrigin(req.headers) && (opts.allowHost?.(req.headers.host) ?? true)) });
  const room = (id: string) => `migration:${id}`;
  const authorize = opts.authorize;
  if (authorize) {
    io.use((socket, next) => {
      if (authorize(socket.handshake.headers, socket.handshake.auth)) next();
      else next(Object.assign(new Error('unauthorized: a token or a login is required'), { data: { code: 'UNAUTHORIZED' } }));
    });
    // A session that ended (logged out, expired) ends its sockets too: what each handshake
    // carried is asked again every few seconds.
    const sweep = setInterval(() => {
      for (const s of io.sockets.sockets.values()) if (!authorize(s.handshake.headers, s.handshake.auth)) s.disconnect(true);
    }, RECHECK_MS);
    sweep.unref();
    http.once('close', () => clearInterval(sweep));
  }

  io.on('connection', (socket) => {
    socket.on('migration:subscribe', (id, reply) => {
      if (typeof reply !== 'function') return;
      const ok = SubscribeIdSchema.safeParse(id);
      if (!ok.success) {
        reply({ ok: false, code: 'BAD_REQUEST', message: 'migration id must be a non-empty string' });
        return;
      }
      // Pending events go out to the room first: the timeline below already holds them.
      registry.flush();
      const detail = registry.detail(ok.data);
      if (!detail) {
        reply({ ok: false, code: 'NOT_FOUND', message: `no migration ${ok.data}` });
        return;
      }
      void socket.join(room(ok.data));
      const r: SubscribeReply = { ok: true, detail, timeline: registry.timeline(ok.data) ?? [] };
      reply(r);
    });
    socket.on('migration:unsubscribe', (id) => {
      if (SubscribeIdSchema.safeParse(id).success) void socket.leave(room(id));
    });
  });

  registry.onBatch((b) => io.to(room(b.id)).emit('migration:events', b));
  registry.onChange((what) => {
    if (what === 'migrations') io.emit('migrations:changed', registry.list());
    else if (what === 'guests') io.emit('guests:changed', registry.guests());
    else if (what === 'evacuations') io.emit('evacuations:changed', registry.evacuations?.list() ?? []);
    else io.emit('agents:changed', registry.agents());
  });
  return io;
}
