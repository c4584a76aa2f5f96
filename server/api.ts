/**
 * The REST API for scripts (and the console's form): JSON in, JSON out, zod-checked, with
 * stable error codes. 422 carries field errors; no request can crash the server.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AddAgentSchema, CreateGuestSchema, EvacuateSchema, StartFleetMigrationSchema, StartMigrationSchema, StartQemuMigrationSchema, fieldErrors } from '../lib/contracts/console';
import { AgentHttpError, type Fleet } from './fleet';
import { MigrationError, isMigrationError } from '../lib/errors';
import type { MigrationRegistry } from './registry';
import { HistoryUnavailableError } from './history';

export interface ApiOptions {
  /** When set, a request it refuses gets 401 and nothing is done (an agent's token, the console's login). */
  authorize?: ((req: IncomingMessage) => boolean) | null;
  /** GET /api/agent: who this is (an agent's name, addresses, counts). */
  info?: (() => Record<string, unknown>) | null;
}

/** Bodies larger than this are refused before they are read whole. */
const MAX_BODY = 64 * 1024;

type Handler = (req: IncomingMessage, res: ServerResponse, params: string[]) => Promise<void>;

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(data);
}

function fail(res: ServerResponse, status: number, code: string, message: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}): void {
  send(res, status, { code, message, ...extra }, headers);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, 'REQUEST_TOO_LARGE', `request body over ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'BAD_JSON', 'request body is not valid JSON');
  }
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function createApi(registry: MigrationRegistry, opts: ApiOptions = {}): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const info = opts.info;
  /** Fleet routes: 404 where there is no fleet (an agent's own API). */
  const withFleet =
    (fn: (fleet: Fleet, req: IncomingMessage, res: ServerResponse, params: string[]) => Promise<void>): Handler =>
    async (req, res, params) => {
      const fleet = registry.fleet;
      if (!fleet) return fail(res, 404, 'NOT_FOUND', 'this server has no fleet');
      await fn(fleet, req, res, params);
    };
  const routes: Array<[string, RegExp, Handler]> = [
    [
      'POST',
      /^\/api\/migrations$/,
      async (req, res) => {
        const parsed = StartMigrationSchema.safeParse(await readJson(req));
        if (!parsed.success) {
          fail(res, 422, 'MIGRATION_CONFIG_INVALID', 'the migration config is invalid', { fields: fieldErrors(parsed.error) });
          return;
        }
        try {
          send(res, 201, await registry.start(parsed.data));
        } catch (err) {
          if (isMigrationError(err) && err.code === 'MIGRATION_CONFIG_INVALID') {
            fail(res, 422, err.code, err.message, { fields: { [err.field ?? '_']: [err.message] } });
            return;
          }
          throw err;
        }
      },
    ],
    [
      'POST',
      /^\/api\/qemu\/migrations$/,
      async (req, res) => {
        const parsed = StartQemuMigrationSchema.safeParse(await readJson(req));
        if (!parsed.success) {
          fail(res, 422, 'MIGRATION_CONFIG_INVALID', 'the QEMU migration request is invalid', { fields: fieldErrors(parsed.error) });
          return;
        }
        try {
          send(res, 201, await registry.startQemu(parsed.data));
        } catch (err) {
          if (isMigrationError(err) && err.code === 'MIGRATION_CONFIG_INVALID') {
            fail(res, 422, err.code, err.message, { fields: { [err.field ?? '_']: [err.message] } });
            return;
          }
          // QEMU refused a command: its own words, as the upstream's answer.
          if (isMigrationError(err) && err.code === 'MIGRATION_REMOTE_FAILED') {
            fail(res, 502, err.code, err.message, { received: err.received });
            return;
          }
          throw err;
        }
      },
    ],
    ['GET', /^\/api\/migrations$/, async (_req, res) => send(res, 200, { migrations: registry.list() })],
    ['GET', /^\/api\/tls$/, async (_req, res) => send(res, 200, registry.tls.list())],
    [
      'GET',
      /^\/api\/migrations\/([^/]+)$/,
      async (_req, res, [id]) => {
        const d = registry.detail(id);
        if (!d) return fail(res, 404, 'NOT_FOUND', `no migration ${id}`);
        send(res, 200, d);
      },
    ],
    [
      'POST',
      /^\/api\/migrations\/([^/]+)\/cancel$/,
      async (_req, res, [id]) => {
        const s = await registry.cancel(id);
        if (!s) return fail(res, 404, 'NOT_FOUND', `no migration ${id}`);
        send(res, 200, s);
      },
    ],
    [
      'GET',
      /^\/api\/migrations\/([^/]+)\/timeline$/,
      async (req, res, [id]) => {
        const events = registry.timeline(id);
        if (!events) return fail(res, 404, 'NOT_FOUND', `no migration ${id}`);
        const download = new URL(req.url ?? '/', 'http://x').searchParams.get('download') === '1';
        send(res, 200, { id, events }, download ? { 'content-disposition': `attachment; filename="migration-${id}-timeline.json"` } : {});
      },
    ],
    ['GET', /^\/api\/guests$/, async (_req, res) => send(res, 200, { guests: registry.guests() })],
    [
      'POST',
      /^\/api\/guests$/,
      async (req, res) => {
        const parsed = CreateGuestSchema.safeParse(await readJson(req));
        if (!parsed.success) {
          fail(res, 422, 'MIGRATION_CONFIG_INVALID', 'the guest is invalid', { fields: fieldErrors(parsed.error) });
          return;
        }
        try {
          send(res, 201, await registry.createGuest(parsed.data));
        } catch (err) {
          if (isMigrationError(err) && err.code === 'MIGRATION_CONFIG_INVALID') {
            fail(res, 422, err.code, err.message, { fields: { [err.field ?? '_']: [err.message] } });
            return;
          }
          throw err;
        }
      },
    ],
    ...(info ? [['GET', /^\/api\/agent$/, async (_req: IncomingMessage, res: ServerResponse) => send(res, 200, info())] as [string, RegExp, Handler]] : []),
    // --- the fleet (a console's agents) -------------------------------------------------
    ['GET', /^\/api\/agents$/, async (_req, res) => send(res, 200, { agents: registry.agents() })],
    [
      'POST',
      /^\/api\/agents$/,
      withFleet(async (fleet, req, res) => {
        const parsed = AddAgentSchema.safeParse(await readJson(req));
        if (!parsed.success) return fail(res, 422, 'MIGRATION_CONFIG_INVALID', 'the agent is invalid', { fields: fieldErrors(parsed.error) });
        send(res, 201, await fleet.add(parsed.data));
      }),
    ],
    [
      'DELETE',
      /^\/api\/agents\/([^/]+)$/,
      withFleet(async (fleet, _req, res, [name]) => {
        if (!fleet.remove(name)) return fail(res, 404, 'NOT_FOUND', `no agent ${name}`);
        send(res, 200, { removed: name });
      }),
    ],
    [
      'POST',
      /^\/api\/agents\/([^/]+)\/guests$/,
      withFleet(async (fleet, req, res, [name]) => {
        const parsed = CreateGuestSchema.safeParse(await readJson(req));
        if (!parsed.success) return fail(res, 422, 'MIGRATION_CONFIG_INVALID', 'the guest is invalid', { fields: fieldErrors(parsed.error) });
        send(res, 201, await fleet.createGuest(name, parsed.data));
      }),
    ],
    [
      'POST',
      /^\/api\/agents\/([^/]+)\/guests\/([^/]+)\/stop$/,
      withFleet(async (fleet, _req, res, [name, uuid]) => {
        const agent = fleet.agent(name);
        if (!agent) return fail(res, 404, 'NOT_FOUND', `no agent ${name}`);
        send(res, 200, await agent.request('POST', `/api/guests/${encodeURIComponent(uuid)}/stop`));
      }),
    ],
    [
      'POST',
      /^\/api\/agents\/([^/]+)\/evacuate$/,
      withFleet(async (_fleet, req, res, [name]) => {
        const parsed = EvacuateSchema.safeParse(await readJson(req));
        if (!parsed.success) return fail(res, 422, 'MIGRATION_CONFIG_INVALID', 'the evacuation is invalid', { fields: fieldErrors(parsed.error) });
        send(res, 201, await registry.evacuations!.start(name, parsed.data));
      }),
    ],
    ['GET', /^\/api\/evacuations$/, async (_req, res) => send(res, 200, { evacuations: registry.evacuations?.list() ?? [] })],
    [
      'GET',
      /^\/api\/evacuations\/([^/]+)$/,
      async (_req, res, [id]) => {
        const e = registry.evacuations?.get(id);
        if (!e) return fail(res, 404, 'NOT_FOUND', `no evacuation ${id}`);
        send(res, 200, e);
      },
    ],
    [
      'POST',
      /^\/api\/evacuations\/([^/]+)\/cancel$/,
      async (_req, res, [id]) => {
        const e = registry.evacuations?.cancel(id);
        if (!e) return fail(res, 404, 'NOT_FOUND', `no evacuation ${id}`);
        send(res, 200, e);
      },
    ],
    [
      'POST',
      /^\/api\/fleet\/migrations$/,
      withFleet(async (fleet, req, res) => {
        const parsed = StartFleetMigrationSchema.safeParse(await readJson(req));
        if (!parsed.success) return fail(res, 422, 'MIGRATION_CONFIG_INVALID', 'the migration is invalid', { fields: fieldErrors(parsed.error) });
        send(res, 201, await fleet.start(parsed.data));
      }),
    ],
    ['POST', /^\/api\/guests\/stop-idle$/, async (_req, res) => send(res, 200, { stopped: await registry.stopIdleGuests() })],
    [
      'POST',
      /^\/api\/guests\/([^/]+)\/stop$/,
      async (_req, res, [uuid]) => {
        const g = await registry.stopGuest(uuid);
        if (!g) return fail(res, 404, 'NOT_FOUND', `no guest ${uuid} on this host`);
        send(res, 200, g);
      },
    ],
  ];

  return async (req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (opts.authorize && !opts.authorize(req)) {
      // Before anything is read or done: a request without the token changes nothing.
      req.resume();
      fail(res, 401, 'UNAUTHORIZED', 'a bearer token is required (Authorization: Bearer <token>)', {}, { 'www-authenticate': 'Bearer' });
      return;
    }
    try {
      const matches = routes.filter(([, re]) => re.test(path));
      if (matches.length === 0) return fail(res, 404, 'NOT_FOUND', `no route ${path}`);
      const route = matches.find(([method]) => method === req.method);
      if (!route) return fail(res, 405, 'METHOD_NOT_ALLOWED', `${req.method} not allowed on ${path}`);
      let params: string[];
      try {
        params = route[1].exec(path)!.slice(1).map(decodeURIComponent);
      } catch {
        return fail(res, 400, 'BAD_REQUEST', `${path}: not a valid percent-encoded path`);
      }
      await route[2](req, res, params);
    } catch (err) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (err instanceof HttpError) return fail(res, err.status, err.code, err.message);
      if (err instanceof HistoryUnavailableError) {
        process.stderr.write(`multifd: ${err.message}\n`);
        return fail(res, 503, err.code, err.message);
      }
      if (err instanceof AgentHttpError) {
        // An agent's own refusal keeps its status and fields; an agent that does not answer is a bad gateway.
        if (err.status === 422 && err.fields) return fail(res, 422, err.code, err.message, { fields: err.fields, agent: err.agent });
        const status = err.status === 404 || err.status === 409 ? err.status : 502;
        return fail(res, status, err.code, err.message, { agent: err.agent });
      }
      if (err instanceof MigrationError) {
        if (err.code === 'MIGRATION_CONFIG_INVALID') return fail(res, 422, err.code, err.message, { fields: { [err.field ?? '_']: [err.message] } });
        return fail(res, err.code === 'MIGRATION_BUSY' ? 409 : 500, err.code, err.message);
      }
      fail(res, 500, 'INTERNAL', err instanceof Error ? err.message : String(err));
    }
  };
}
