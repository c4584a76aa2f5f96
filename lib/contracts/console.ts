/**
 * What the console's server, its REST API, its socket.io channel and its pages share.
 * Pure zod; safe for the browser.
 */
import { z } from 'zod';
import {
  ChannelCountSchema,
  ChannelStateSchema,
  CompressionSchema,
  GuestConfigSchema,
  ErrorCodeSchema,
  QemuFiguresSchema,
  MigrationSnapshotSchema,
  MigrationStateSchema,
  isPort,
  type MigrationEvent,
  type MigrationSnapshot,
} from './index';

const MiB = 1024 * 1024;

/** HOST:PORT, as a `multifd dest` listens. */
export const HostPortSchema = z
  .string()
  .trim()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[^\s:\[\]]+):\d{1,5}$/, 'destination must be "embedded" or HOST:PORT, e.g. 10.0.0.2:4444')
  .refine((v) => !/:\d{1,5}$/.test(v) || isPort(v.slice(v.lastIndexOf(':') + 1)), 'the port must be 1..65535');

/** A credential set's name: `--tls-creds NAME=DIR`; "default" is the one of the --tls-* flags. */
export const TLS_CREDS_NAME = /^[A-Za-z0-9._-]{1,64}$/;
export const DEFAULT_TLS_CREDS = 'default';

/**
 * A migration request's TLS: the credential set to use and, for x509, the name the
 * destination's certificate must carry (QEMU's tls-hostname). Paths are not accepted: a
 * request must not make the server read files of its choosing.
 */
export const TlsChoiceSchema = z.strictObject(
  {
    creds: z
      .string({ error: 'tls.creds names a credential set of this host, e.g. "default"' })
      .regex(TLS_CREDS_NAME, 'tls.creds is a credential set name: 1 to 64 letters, digits, dots, dashes or underscores'),
    hostname: z.string().trim().min(1).max(253).regex(/^[^\s]+$/, 'tls.hostname is a host name or IP address').optional(),
  },
  {
    error: (iss) =>
      iss.code === 'unrecognized_keys'
        ? 'tls takes {"creds": NAME, "hostname"?: NAME}: a credential set this host\'s operator configured, not file paths'
        : undefined,
  },
);
export type TlsChoice = z.infer<typeof TlsChoiceSchema>;

/** GET /api/tls: the credential sets a migration request may name. */
export interface TlsCredsView {
  name: string;
  mode: 'x509' | 'psk';
  /** x509: whether a client certificate is presented. */
  clientCert: boolean;
}
export interface TlsCredsList {
  sets: TlsCredsView[];
  /** What a request without `tls` uses; null: in clear. */
  default: string | null;
}

/** `chK:KIND[:ARG]`, as `--inject` takes it: the shape only (the kinds and arguments are the server's to check). */
export const INJECT_SHAPE = /^ch\d{1,3}:[a-z][a-z_-]*(?:-\d+)?(?::[A-Za-z0-9_.-]+)?$/;

/**
 * The faults the fault lab offers (DESIGN 7.2), in the order of the design, with the argument
 * each takes: `id` renders as `chK:id-N`, the others as `chK:KIND[:ARG]`.
 */
export const INJECT_KINDS = [
  { kind: 'uuid', label: 'wrong uuid', arg: null },
  { kind: 'dup', label: 'duplicate id (claims channel K+1)', arg: null },
  { kind: 'id', label: 'id N (claims channel N)', arg: { required: true, label: 'N' } },
  { kind: 'id-big', label: 'id above N (200, or 255)', arg: null },
  { kind: 'magic', label: 'bad magic', arg: null },
  { kind: 'version', label: 'bad version (7)', arg: null },
  { kind: 'truncate', label: 'truncated handshake, then close', arg: { required: false, label: 'bytes (default 20)' } },
  { kind: 'stall', label: 'handshake never sent (stall)', arg: null },
  { kind: 'drop', label: 'drop after K payload bytes', arg: { required: true, label: 'payload bytes' } },
  { kind: 'bad-header', label: 'corrupt packet header', arg: { required: true, label: 'field' } },
  { kind: 'slow', label: 'slow channel (throttled)', arg: { required: true, label: 'bytes/s' } },
  { kind: 'tls-clear', label: 'TLS: channel in clear', arg: null },
  { kind: 'tls-hostname', label: 'TLS: checks another host name', arg: null },
  { kind: 'tls-anon', label: 'TLS: no client certificate', arg: null },
] as const;
export type InjectKind = (typeof INJECT_KINDS)[number]['kind'];
/** bad-header's argument: which part of the first page-carrying packet it corrupts. */
export const INJECT_HEADER_FIELDS = ['normal_pages', 'offset', 'ramblock', 'short-payload'] as const;

/** One fault lab row as a spec: `chK:KIND[:ARG]` (`chK:id-N` for id). */
export function injectSpec(channel: number | string, kind: InjectKind, arg: string): string {
  const a = arg.trim();
  if (kind === 'id') return `ch${channel}:id-${a}`;
  return a === '' ? `ch${channel}:${kind}` : `ch${channel}:${kind}:${a}`;
}

/** A built-in guest's RAM, in bytes. */
export const RamSizeSchema = z
  .number({ error: 'RAM size must be a number of bytes' })
  .int()
  .min(MiB, 'RAM size must be at least 1 MiB')
  .max(16 * 1024 * MiB, 'RAM size must be at most 16 GiB')
  .refine((n) => n % 4096 === 0, 'RAM size must be a multiple of 4 KiB');

/**
 * A migration as an operator (form or REST) asks for it. Fields left out take the defaults,
 * so `{}` or `{"channels": 4}` starts a migration of a new guest to the embedded destination.
 */
const StartMigrationFields = z.object({
  destination: z.union([z.literal('embedded'), HostPortSchema]).default('embedded'),
  channels: ChannelCountSchema.default(4),
  /** An existing guest on this host (its uuid); without it a new guest is created. */
  guest: z.uuid({ error: 'guest must be the uuid of a guest on this host' }).optional(),
  ramSize: RamSizeSchema.default(256 * MiB),
  fill: GuestConfigSchema.shape.fill,
  /** Multifd compression (the destination may refuse it by name), and its level. */
  compression: CompressionSchema.default('none'),
  compressionLevel: z
    .number({ error: 'compression level must be a whole number' })
    .int('compression level must be a whole number')
    .min(1, 'compression level must be at least 1')
    .max(19, 'compression level must be at most 19 (zlib: 9)')
    .default(1),
  /** DESIGN 7.1 syntax (idle, random:RATE[:WS], hotset:SIZE[:RATE], sweep[:RATE]); the server parses it. */
  workload: z.string().trim().min(1, 'workload is required').max(64).default('idle'),
  maxBandwidth: z.number({ error: 'max bandwidth must be bytes/s' }).int().min(0, 'max bandwidth must be 0 (uncapped) or more').default(0),
  downtimeLimitMs: z.number({ error: 'downtime limit must be a number of ms' }).int().min(1, 'downtime limit must be at least 1 ms').max(600_000).default(300),
  roundLimit: z.number().int().min(1, 'round limit must be at least 1').max(10_000).default(30),
  setupTimeoutMs: z
    .number({ error: 'channel-setup timeout must be a number of ms' })
    .int()
    .min(10, 'channel-setup timeout must be at least 10 ms')
    .max(3_600_000)
    .default(10_000),
  /**
   * Fault lab (DESIGN 7.2): faults the source injects, one `chK:KIND[:ARG]` per channel at
   * most, e.g. `ch3:uuid`. Checked here by shape only; the server parses each against the
   * channel count (a 422 with `fields.inject` names the spec it refuses).
   */
  inject: z
    .array(
      z
        .string({ error: 'each fault is a string like ch3:uuid' })
        .trim()
        .max(64, { error: (iss) => `fault ${JSON.stringify(iss.input)}: at most 64 characters` })
        .regex(INJECT_SHAPE, { error: (iss) => `fault ${JSON.stringify(iss.input)}: expected chK:KIND[:ARG], e.g. ch3:uuid` }),
    )
    .max(255, 'at most 255 faults (one per channel)')
    .default([]),
  /**
   * TLS on every channel, by the name of a credential set the operator of the host that
   * runs the source configured (`--tls-*` flags: "default"; `--tls-creds NAME=DIR`), never
   * by file paths. Absent: that host's "default" set if it has one, else in clear; null: in
   * clear.
   */
  tls: TlsChoiceSchema.nullable().optional(),
});

/** zlib stops at 9; zstd goes on to 19 (QEMU's multifd-zlib-level / multifd-zstd-level). */
function checkLevel(v: { compression: string; compressionLevel: number }, ctx: z.RefinementCtx): void {
  if (v.compression === 'zlib' && v.compressionLevel > 9) {
    ctx.addIssue({ code: 'custom', path: ['compressionLevel'], message: 'zlib compression level must be 1 to 9' });
  }
}

export const StartMigrationSchema = StartMigrationFields.superRefine(checkLevel);

export type StartMigration = z.infer<typeof StartMigrationSchema>;
export type StartMigrationInput = z.input<typeof StartMigrationSchema>;

/** A QMP socket: a unix socket path, or HOST:PORT. */
export const QmpAddressSchema = z
  .string({ error: 'a QMP address is required: a unix socket path or HOST:PORT' })
  .trim()
  .min(1, 'a QMP address is required: a unix socket path or HOST:PORT')
  .max(1024)
  // An empty one already has its message from min(1): one message per problem.
  .refine((s) => s === '' || s.startsWith('/') || /^(\[[0-9a-fA-F:.]+\]|[^\s:\[\]/]+):\d{1,5}$/.test(s), 'a QMP address is a unix socket path (/run/qemu/src.qmp) or HOST:PORT')
  .refine((s) => s === '' || s.startsWith('/') || !/:\d{1,5}$/.test(s) || isPort(s.slice(s.lastIndexOf(':') + 1)), 'the port must be 1..65535');

/** An address to listen on (port chosen by the kernel): a host name or IP. */
const ListenHostSchema = z
  .string()
  .trim()
  .min(1)
  .max(255)
  .regex(/^[A-Za-z0-9.:_-]+$/, 'a host name or IP address, e.g. 127.0.0.1');

/**
 * QEMU mode: migrate between two running QEMUs (the source's guest, the destination started
 * with `-incoming defer`) that the console drives over QMP, through its relay, for the
 * per-channel view. Faults (`chK:KIND`) are put into the real traffic by the relay.
 */
export const StartQemuMigrationSchema = z.object({
  sourceQmp: QmpAddressSchema,
  destinationQmp: QmpAddressSchema,
  channels: ChannelCountSchema.default(4),
  /** bytes/s; 0 raises QEMU's default cap (128 MiB/s) out of the way. */
  maxBandwidth: z.number({ error: 'max bandwidth must be bytes/s' }).int().min(0, 'max bandwidth must be 0 (uncapped) or more').default(0),
  /** QEMU's multifd-compression, set on both QEMUs (zstd needs a QEMU built with it). */
  compression: CompressionSchema.default('none'),
  /** QEMU's downtime-limit, ms; left as QEMU has it when absent. */
  downtimeLimitMs: z.number().int().min(1).max(600_000).optional(),
  /** Where the destination QEMU listens (migrate-incoming tcp:HOST:0). */
  migrationHost: ListenHostSchema.default('127.0.0.1'),
  /** Where the relay listens for the source QEMU. */
  relayHost: ListenHostSchema.default('127.0.0.1'),
  /** Record each connection (for `multifd inspect`) in the console's data directory. */
  record: z.boolean().default(false),
  inject: z
    .array(z.string().trim().max(64).regex(INJECT_SHAPE, { error: (iss) => `fault ${JSON.stringify(iss.input)}: expected chK:KIND[:ARG], e.g. ch2:uuid` }))
    .max(255)
    .default([]),
});
export type StartQemuMigration = z.infer<typeof StartQemuMigrationSchema>;
export type StartQemuMigrationInput = z.input<typeof StartQemuMigrationSchema>;

/** The relay faults the QEMU form offers (the handshake ones, and drop). */
export const RELAY_INJECT_KINDS = ['uuid', 'dup', 'id', 'id-big', 'magic', 'version', 'truncate', 'stall', 'drop'] as const;

/** Field → messages, as a 422 carries them and the form shows them. */
export type FieldErrors = Record<string, string[]>;

export function fieldErrors(error: z.ZodError): FieldErrors {
  const out: FieldErrors = {};
  for (const issue of error.issues) {
    const key = issue.path.length ? String(issue.path[0]) : '_';
    (out[key] ??= []).push(issue.message);
  }
  return out;
}

/** POST /api/guests: a new running guest on this host (an agent's, or the console's). */
export const CreateGuestSchema = z.object({
  name: z
    .string()
    .trim()
    .min(1)
    .max(64)
    .regex(/^[A-Za-z0-9._-]+$/, 'a guest name is letters, digits, dots, dashes and underscores')
    .optional(),
  ramSize: RamSizeSchema.default(256 * MiB),
  fill: z.enum(['random', 'zero']).default('random'),
  /** DESIGN 7.1 syntax, as for a migration's new guest. */
  workload: z.string().trim().min(1, 'workload is required').max(64).default('idle'),
});
export type CreateGuest = z.infer<typeof CreateGuestSchema>;
export type CreateGuestInput = z.input<typeof CreateGuestSchema>;

export const GuestSummarySchema = z.object({
  uuid: z.string(),
  name: z.string(),
  ramSize: z.number(),
  state: z.enum(['created', 'running', 'paused', 'stopped']),
  workload: z.string(),
  /** created here, or arrived by a migration */
  origin: z.enum(['created', 'arrived']),
  /** the migration it is in now, if any */
  migrating: z.string().nullable(),
});
export type GuestSummary = z.infer<typeof GuestSummarySchema>;

/** One line per migration: the live list and history. */
export const MigrationSummarySchema = z.object({
  id: z.string(),
  uuid: z.string().nullable(),
  state: MigrationStateSchema,
  channels: z.number().int(),
  destination: z.string(),
  ramSize: z.number(),
  startedAt: z.number(),
  endedAt: z.number().nullable(),
  totalTimeMs: z.number().nullable(),
  transferred: z.number(),
  /** average bytes/s over the whole migration, once ended */
  throughput: z.number().nullable(),
  errorCode: ErrorCodeSchema.nullable(),
  errorMessage: z.string().nullable(),
  /** Faults injected from the fault lab (`chK:KIND[:ARG]`); [] for rows written before it existed. */
  inject: z.array(z.string()).default([]),
  /** Between two agents of the fleet: their names; null for the console's own migrations. */
  agents: z.object({ source: z.string(), destination: z.string() }).nullable().default(null),
});
export type MigrationSummary = z.infer<typeof MigrationSummarySchema>;

/** GET /api/migrations/:id */
export const MigrationDetailSchema = z.object({
  summary: MigrationSummarySchema,
  config: StartMigrationSchema,
  snapshot: MigrationSnapshotSchema,
  /** the destination's side, when it is embedded */
  destination: MigrationSnapshotSchema.nullable(),
  /** QEMU mode: the two QEMUs and what each last said (also in the timeline as 'qemu' events); null otherwise. */
  qemu: z
    .object({
      sourceQmp: z.string(),
      destinationQmp: z.string(),
      /** Where the relay listened for the source QEMU (HOST:PORT). */
      relay: z.string().nullable(),
      /** Where the relay recorded each connection, when asked. */
      recordDir: z.string().nullable(),
      source: QemuFiguresSchema.nullable(),
      destination: QemuFiguresSchema.nullable(),
    })
    .nullable(),
});
export type MigrationDetail = z.infer<typeof MigrationDetailSchema>;

export { ChannelStateSchema };

// --- the fleet ---------------------------------------------------------------------------

/** An agent's name as the console shows it (the agent's --name). */
export const AgentNameSchema = z.string().trim().min(1).max(64).regex(/^[A-Za-z0-9._-]+$/, 'an agent name is letters, digits, dots, dashes and underscores');

/** POST /api/agents: an agent's control URL and its token; the name is the agent's own unless given. */
export const AddAgentSchema = z.object({
  url: z
    .string({ error: 'the agent\'s control URL is required, e.g. http://10.0.0.2:7070' })
    .trim()
    .regex(/^https?:\/\/[^\s/]+\/?$/, 'the agent\'s control URL, e.g. http://10.0.0.2:7070'),
  token: z.string({ error: 'the agent\'s token is required' }).trim().min(32, 'an agent token is at least 32 characters'),
  name: AgentNameSchema.optional(),
});
export type AddAgent = z.infer<typeof AddAgentSchema>;

export const AgentStateSchema = z.enum(['connecting', 'up', 'down', 'unauthorized']);
export type AgentState = z.infer<typeof AgentStateSchema>;

/** What the console knows of one agent (never its token). */
export const AgentViewSchema = z.object({
  name: z.string(),
  url: z.string(),
  state: AgentStateSchema,
  /** why it is down or refused, in words */
  error: z.string().nullable(),
  /** when it last answered, ms since the epoch */
  lastSeen: z.number().nullable(),
  migrationAddress: z.string().nullable(),
  guests: z.array(GuestSummarySchema),
  /** its migrations not yet ended, either role */
  inFlight: z.number().int(),
});
export type AgentView = z.infer<typeof AgentViewSchema>;

/** POST /api/fleet/migrations: a guest of one agent to another, with the usual limits. */
export const StartFleetMigrationSchema = StartMigrationFields.pick({
  channels: true,
  compression: true,
  compressionLevel: true,
  maxBandwidth: true,
  downtimeLimitMs: true,
  roundLimit: true,
  setupTimeoutMs: true,
  inject: true,
})
  .extend({
    sourceAgent: AgentNameSchema,
    guest: z.uuid({ error: 'guest must be the uuid of a guest on the source agent' }),
    destinationAgent: AgentNameSchema,
  })
  .refine((r) => r.sourceAgent !== r.destinationAgent, { message: 'the destination agent must be another agent than the source', path: ['destinationAgent'] })
  .superRefine(checkLevel);
export type StartFleetMigration = z.infer<typeof StartFleetMigrationSchema>;
export type StartFleetMigrationInput = z.input<typeof StartFleetMigrationSchema>;

/** POST /api/agents/:name/evacuate: every guest off that agent, within KubeVirt-like limits. */
export const EvacuateSchema = z.object({
  /** Fleet migrations in flight at once, all of them counted (KubeVirt: parallelMigrationsPerCluster, 5). */
  maxInFlight: z.number().int().min(1, 'at least 1 migration at a time').max(100).default(5),
  /** Migrations out of one host at once (KubeVirt: parallelOutboundMigrationsPerNode, 2). */
  maxOutboundPerHost: z.number().int().min(1, 'at least 1 migration out of a host at a time').max(50).default(2),
  /** Where guests may go; default every other agent that is up. */
  destinations: z.array(AgentNameSchema).max(255).optional(),
  channels: ChannelCountSchema.default(4),
  maxBandwidth: z.number().int().min(0).default(0),
  downtimeLimitMs: z.number().int().min(1).max(600_000).default(300),
  compression: CompressionSchema.default('none'),
  compressionLevel: z.number().int().min(1).max(19).default(1),
}).superRefine(checkLevel);
export type Evacuate = z.infer<typeof EvacuateSchema>;
export type EvacuateInput = z.input<typeof EvacuateSchema>;

export const EvacuationItemSchema = z.object({
  guest: z.string(),
  name: z.string(),
  ramSize: z.number(),
  state: z.enum(['queued', 'migrating', 'completed', 'failed', 'skipped']),
  destination: z.string().nullable(),
  migrationId: z.string().nullable(),
  error: z.string().nullable(),
  startedAt: z.number().nullable(),
  endedAt: z.number().nullable(),
});
export type EvacuationItem = z.infer<typeof EvacuationItemSchema>;

export const EvacuationViewSchema = z.object({
  id: z.string(),
  agent: z.string(),
  state: z.enum(['running', 'done', 'cancelled']),
  limits: z.object({ maxInFlight: z.number().int(), maxOutboundPerHost: z.number().int() }),
  startedAt: z.number(),
  endedAt: z.number().nullable(),
  items: z.array(EvacuationItemSchema),
  /** The most of this evacuation's migrations that ran at once. */
  peakInFlight: z.number().int(),
  summary: z.object({ queued: z.number().int(), migrating: z.number().int(), completed: z.number().int(), failed: z.number().int(), skipped: z.number().int() }),
});
export type EvacuationView = z.infer<typeof EvacuationViewSchema>;

// --- socket.io -------------------------------------------------------------------------

/** Events of one migration, batched (a few flushes a second, whatever N). */
export interface EventBatch {
  id: string;
  events: MigrationEvent[];
}

export type SubscribeReply =
  | { ok: true; detail: MigrationDetail; timeline: MigrationEvent[] }
  | { ok: false; code: string; message: string };

export interface ServerToClientEvents {
  /** Sent to room `migration:<id>`. */
  'migration:events': (batch: EventBatch) => void;
  /** Sent to everyone when a migration starts or ends. */
  'migrations:changed': (list: MigrationSummary[]) => void;
  /** Sent to everyone when a guest is created, arrives, or stops. */
  'guests:changed': (list: GuestSummary[]) => void;
  /** Sent to everyone when an agent is added, removed, comes up or goes down, or its guests change. */
  'agents:changed': (list: AgentView[]) => void;
  /** Sent to everyone when an evacuation starts, moves on, or ends. */
  'evacuations:changed': (list: EvacuationView[]) => void;
}

export interface ClientToServerEvents {
  /** Joins room `migration:<id>`; the reply carries where it stands and its timeline so far. */
  'migration:subscribe': (id: string, reply: (r: SubscribeReply) => void) => void;
  'migration:unsubscribe': (id: string) => void;
}

export const SubscribeIdSchema = z.string().min(1).max(128);

/** The destination side's snapshot travels in events too; re-exported for pages. */
export type { MigrationSnapshot };
