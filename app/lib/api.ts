/**
 * The console's REST calls (same origin). Failures become ApiError with the server's stable
 * `code`, its message and, for a 422, the per-field messages the form shows. A fleet call
 * that an agent did not answer is a 502 AGENT_DOWN naming that agent (`agent`).
 */
import type {
  TlsCredsList,
  AddAgent,
  AgentView,
  CreateGuest,
  Evacuate,
  EvacuationView,
  FieldErrors,
  GuestSummary,
  MigrationDetail,
  MigrationSummary,
  StartFleetMigration,
  StartMigration,
  StartQemuMigration,
} from '../../lib/contracts/console';
import type { MigrationEvent } from '../../lib/contracts';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fields: FieldErrors | null = null,
    /** The fleet agent the failure is about (a 502 AGENT_DOWN names it), if any. */
    readonly agent: string | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

async function request<T>(method: 'GET' | 'POST' | 'DELETE', url: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      cache: 'no-store',
      headers: body === undefined ? { accept: 'application/json' } : { accept: 'application/json', 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(0, 'NETWORK', `the console server did not answer (${(err as Error).message})`);
  }
  const text = await res.text();
  let parsed: unknown = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
  }
  if (!res.ok) {
    const e = (parsed ?? {}) as { code?: unknown; message?: unknown; fields?: unknown; agent?: unknown };
    throw new ApiError(
      res.status,
      typeof e.code === 'string' ? e.code : `HTTP_${res.status}`,
      typeof e.message === 'string' ? e.message : `${method} ${url}: ${res.status} ${res.statusText}`,
      e.fields && typeof e.fields === 'object' ? (e.fields as FieldErrors) : null,
      typeof e.agent === 'string' ? e.agent : null,
    );
  }
  return parsed as T;
}

const enc = encodeURIComponent;

export const api = {
  startMigration: (input: StartMigration) => request<MigrationSummary>('POST', '/api/migrations', input),
  /** QEMU mode: a 422 names the field (a QMP socket it cannot reach); a 502 carries QEMU's own words. */
  startQemuMigration: (input: StartQemuMigration) => request<MigrationSummary>('POST', '/api/qemu/migrations', input),
  listMigrations: async () => (await request<{ migrations: MigrationSummary[] }>('GET', '/api/migrations')).migrations,
  migration: (id: string) => request<MigrationDetail>('GET', `/api/migrations/${enc(id)}`),
  timeline: async (id: string) => (await request<{ id: string; events: MigrationEvent[] }>('GET', `/api/migrations/${enc(id)}/timeline`)).events,
  cancel: (id: string) => request<MigrationSummary>('POST', `/api/migrations/${enc(id)}/cancel`),
  tlsCreds: () => request<TlsCredsList>('GET', '/api/tls'),
  listGuests: async () => (await request<{ guests: GuestSummary[] }>('GET', '/api/guests')).guests,
  stopGuest: (uuid: string) => request<GuestSummary>('POST', `/api/guests/${enc(uuid)}/stop`),
  stopIdleGuests: async () => (await request<{ stopped: GuestSummary[] }>('POST', '/api/guests/stop-idle')).stopped,

  // --- the fleet ---
  /** Answers at once from what the console last knew: an agent that is down is listed as down. */
  listAgents: async () => (await request<{ agents: AgentView[] }>('GET', '/api/agents')).agents,
  /** The console asks the agent who it is first: a wrong token is a 422 on `token`, no answer one on `url`. */
  addAgent: (input: AddAgent) => request<AgentView>('POST', '/api/agents', input),
  removeAgent: (name: string) => request<{ removed: string }>('DELETE', `/api/agents/${enc(name)}`),
  createAgentGuest: (agent: string, input: CreateGuest) => request<GuestSummary>('POST', `/api/agents/${enc(agent)}/guests`, input),
  stopAgentGuest: (agent: string, uuid: string) => request<GuestSummary>('POST', `/api/agents/${enc(agent)}/guests/${enc(uuid)}/stop`),
  /** Its id opens the usual live view; both agents' events arrive in its room. */
  startFleetMigration: (input: StartFleetMigration) => request<MigrationSummary>('POST', '/api/fleet/migrations', input),
  evacuate: (agent: string, input: Evacuate) => request<EvacuationView>('POST', `/api/agents/${enc(agent)}/evacuate`, input),
  listEvacuations: async () => (await request<{ evacuations: EvacuationView[] }>('GET', '/api/evacuations')).evacuations,
  evacuation: (id: string) => request<EvacuationView>('GET', `/api/evacuations/${enc(id)}`),
  /** Queued guests are skipped; migrations already running finish. */
  cancelEvacuation: (id: string) => request<EvacuationView>('POST', `/api/evacuations/${enc(id)}/cancel`),
};

export const exportUrl = (id: string) => `/api/migrations/${enc(id)}/timeline?download=1`;
