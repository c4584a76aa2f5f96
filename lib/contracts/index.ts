/**
 * The shared vocabulary of engine, server, CLI and console: zod schemas and the types
 * inferred from them. Imports only zod and lib/errors (pure), so it is safe for the browser.
 */
import { z } from 'zod';
import { ERROR_CODES } from '../errors';

export const MIGRATION_STATES = ['setup', 'active', 'switchover', 'completed', 'failed', 'cancelling', 'cancelled'] as const;
export const MigrationStateSchema = z.enum(MIGRATION_STATES);
export type MigrationState = z.infer<typeof MigrationStateSchema>;
export const TERMINAL_STATES: readonly MigrationState[] = ['completed', 'failed', 'cancelled'];

export const CHANNEL_STATES = [
  'connecting', 'tls', 'handshake-sent', 'accepted', 'rejected', 'streaming', 'synced', 'closed', 'failed',
] as const;
export const ChannelStateSchema = z.enum(CHANNEL_STATES);
export type ChannelState = z.infer<typeof ChannelStateSchema>;

export const ErrorCodeSchema = z.enum(ERROR_CODES);

export const SerializedErrorSchema = z.object({
  code: ErrorCodeSchema,
  message: z.string(),
  channel: z.number().int().nullable(),
  peer: z.string().nullable(),
  connection: z.number().int().nullable(),
  expected: z.string().nullable(),
  received: z.string().nullable(),
  field: z.string().nullable(),
  missing: z.array(z.number().int()).nullable(),
});

/** 'relay': a relay's view of a migration between two QEMUs (lib/qemu/relay.ts). */
export const RoleSchema = z.enum(['source', 'destination', 'relay']);
export type Role = z.infer<typeof RoleSchema>;

const MIB = 1024 * 1024;

/**
 * How many multifd channels: 1 to 255, since a channel id is one byte. Operator messages,
 * shared by every place that takes a channel count (engine config, both console forms).
 */
export const ChannelCountSchema = z
  .number({ error: 'channels must be a whole number from 1 to 255' })
  .int('channels must be a whole number from 1 to 255')
  .min(1, 'channels must be at least 1')
  .max(255, 'channels must be at most 255 (a channel id is one byte)');

/** Multifd compression methods (QEMU's multifd-compression); flags 0x02 zlib, 0x04 zstd on the wire. */
export const COMPRESSION_METHODS = ['none', 'zlib', 'zstd'] as const;
export const CompressionSchema = z.enum(COMPRESSION_METHODS, { error: 'compression must be none, zlib or zstd' });
export type Compression = z.infer<typeof CompressionSchema>;

/**
 * TLS on the main channel and every multifd channel, source side (QEMU's tls-creds): file
 * paths on the host that runs the source. x509: the CA that signs the destination's
 * certificate, an optional client certificate and key, and `hostname` to check instead of
 * the destination's host (QEMU's tls-hostname). psk: a QEMU-style PSK file, `identity:hexkey`.
 */
export const TlsClientSchema = z.discriminatedUnion(
  'mode',
  [
    z.object({
      mode: z.literal('x509'),
      ca: z.string({ error: 'TLS x509 needs a CA file' }).min(1, 'TLS x509 needs a CA file'),
      cert: z.string().min(1).optional(),
      key: z.string().min(1).optional(),
      hostname: z.string().min(1).max(253).optional(),
    }),
    z.object({ mode: z.literal('psk'), psk: z.string({ error: 'TLS psk needs a PSK file' }).min(1, 'TLS psk needs a PSK file') }),
  ],
  { error: 'TLS mode must be x509 or psk' },
);
export type TlsClient = z.infer<typeof TlsClientSchema>;

/**
 * A migration as a caller asks for it (source side). Messages are written for operators:
 * the console shows them next to their field.
 */
/** A TCP port one can connect to: 1..65535 in decimal. */
export function isPort(text: string): boolean {
  if (!/^\d{1,5}$/.test(text)) return false;
  const n = Number(text);
  return n >= 1 && n <= 65535;
}

export const MigrationConfigSchema = z.object({
  /** host:port of the destination's migration listener. */
  destination: z
    .string({ error: 'destination is required, as HOST:PORT' })
    .regex(/^(\[[0-9a-fA-F:.]+\]|[^\s:\[\]]+):\d{1,5}$/, 'destination must be HOST:PORT, e.g. 127.0.0.1:4444')
    .refine((v) => !/:\d{1,5}$/.test(v) || isPort(v.slice(v.lastIndexOf(':') + 1)), 'destination port must be 1..65535'),
  channels: ChannelCountSchema.default(4),
  maxBandwidth: z
    .number()
    .int()
    .min(0, 'max bandwidth must be 0 (uncapped) or a positive rate in bytes/s')
    .default(0),
  downtimeLimitMs: z.number().int().min(1, 'downtime limit must be at least 1 ms').max(600_000).default(300),
  roundLimit: z.number().int().min(1, 'round limit must be at least 1').max(10_000).default(30),
  setupTimeoutMs: z.number().int().min(10, 'channel-setup timeout must be at least 10 ms').max(3_600_000).default(10_000),
  noProgressTimeoutMs: z.number().int().min(10).max(3_600_000).default(10_000),
  /** How long the source waits for the destination's verdict after switchover. */
  verifyTimeoutMs: z.number().int().min(10).max(3_600_000).default(60_000),
  connectTimeoutMs: z.number().int().min(10).max(3_600_000).default(10_000),
  /**
   * Throttle the guest's vCPU when pre-copy does not converge (QEMU's auto-converge), in
   * proportion to how far from converging it is (lib/engine/converge.ts); lifted when the
   * migration ends, whatever the outcome.
   */
  autoConverge: z.boolean({ error: 'auto-converge must be true or false' }).default(false),
  /** Multifd payload compression, announced in the hello; the destination may refuse it. */
  compression: CompressionSchema.default('none'),
  /** zlib 1-9, zstd 1-19 (QEMU's multifd-zlib-level / multifd-zstd-level); default 1. */
  compressionLevel: z.number().int().min(1, 'compression level must be at least 1').max(19, 'compression level must be at most 19').default(1),
  /** TLS on every channel; null: in clear. */
  tls: TlsClientSchema.nullable().default(null),
  /**
   * The operator says a copy of this guest left at the destination is gone (its host
   * failed): the destination replaces it rather than refusing with MIGRATION_GUEST_EXISTS.
   */
  replace: z.boolean().default(false),
  /** Sent in the hello (HelloSchema.pairing): what binds an incoming side to the console's record. */
  pairing: z.string().min(16).max(128).optional(),
});
export type MigrationConfig = z.infer<typeof MigrationConfigSchema>;
export type MigrationConfigInput = z.input<typeof MigrationConfigSchema>;

/** The guest the built-in source runs (CLI `migrate`, console). */
export const GuestConfigSchema = z.object({
  uuid: z.uuid({ error: 'uuid must be a UUID like 7c9e6679-7425-40de-944b-e07fc1f90ae7' }).optional(),
  ramSize: z
    .number()
    .int()
    .min(4096, 'RAM size must be at least 4 KiB')
    .max(64 * 1024 * MIB, 'RAM size must be at most 64 GiB')
    .refine((n) => n % 4096 === 0, 'RAM size must be a multiple of 4 KiB')
    .default(256 * MIB),
  /** random: incompressible; text: every page text-like; mixed: half and half (runs of 16 pages). */
  fill: z.enum(['random', 'zero', 'text', 'mixed'], { error: 'fill must be random, zero, text or mixed' }).default('random'),
  /** DESIGN 7.1 syntax: idle, random:RATE[:WS], random:max, hotset:SIZE[:RATE], sweep[:RATE]. */
  workload: z.string().default('idle'),
});
export type GuestConfig = z.infer<typeof GuestConfigSchema>;

/** What a destination is told to expect (CLI `dest`). */
export const DestinationConfigSchema = z.object({
  listen: z.string(),
  channels: z.number().int().min(1).max(255).nullable().default(null),
  uuid: z.uuid().nullable().default(null),
  handshakeTimeoutMs: z.number().int().min(10).default(10_000),
  setupTimeoutMs: z.number().int().min(10).default(10_000),
  noProgressTimeoutMs: z.number().int().min(10).default(10_000),
});
export type DestinationConfig = z.infer<typeof DestinationConfigSchema>;

// --- main-channel control payloads (checked by the engine on receipt) -------------------

export const RamBlockInfoSchema = z.object({
  name: z.string().min(1).max(255),
  size: z.number().int().positive(),
});

export const HelloSchema = z.object({
  uuid: z.uuid(),
  migrationId: z.string().min(1).max(128),
  channels: z.number().int().min(1).max(255),
  pageSize: z.literal(4096),
  slots: z.number().int().min(1).max(1024),
  compression: CompressionSchema,
  /** zlib/zstd level the source compresses with (informational). */
  compressionLevel: z.number().int().min(1).max(19).optional(),
  blocks: z.array(RamBlockInfoSchema).min(1).max(64),
  /** The guest's name, so it keeps it on its new host (absent from older sources). */
  name: z.string().min(1).max(255).optional(),
  /**
   * The operator says an older copy of this guest at the destination is gone (its host
   * failed): the destination stops that copy instead of refusing with MIGRATION_GUEST_EXISTS.
   */
  replace: z.boolean().optional(),
  /**
   * A secret the source's owner chose for this attempt: a console binds the incoming side of
   * a migration it started only to the hello that carries it, so the migration port cannot
   * claim a console's migration by its id.
   */
  pairing: z.string().min(16).max(128).optional(),
});
export type Hello = z.infer<typeof HelloSchema>;

/** The main connection's peer address as the destination saw it (absent from older destinations). */
export const HelloAckSchema = z.object({ peer: z.string().nullable().optional() });
export const RoundSchema = z.object({ round: z.number().int().min(1) });
export const CompleteSchema = z.object({
  digest: z.string().regex(/^[0-9a-f]{16}$/),
  round: z.number().int().min(1),
  /** Normal and zero pages the source sent over all channels and rounds: all must have arrived. */
  pages: z.number().int().min(0),
  zeroPages: z.number().int().min(0),
});
export const VerifiedSchema = z.object({ digest: z.string().regex(/^[0-9a-f]{16}$/) });
export const AbortSchema = z.object({ code: ErrorCodeSchema, message: z.string() });
export const ChannelAcceptedSchema = z.object({
  channel: z.number().int().min(0).max(254),
  connection: z.number().int(),
  peer: z.string().nullable(),
});
export const FailedSchema = SerializedErrorSchema;
export const ChannelRejectedSchema = SerializedErrorSchema;

// --- snapshots -------------------------------------------------------------------------

export const ChannelSnapshotSchema = z.object({
  id: z.number().int(),
  state: ChannelStateSchema,
  slow: z.boolean(),
  connection: z.number().int().nullable(),
  peer: z.string().nullable(),
  /**
   * The source's side: this connection's own address, the `peer` the destination reports for
   * it (how a refusal or an acceptance there is tied to the source channel that opened it).
   */
  local: z.string().nullable().optional(),
  /** ms since the epoch of each handshake step, null until reached. */
  times: z.object({
    connecting: z.number().nullable(),
    connected: z.number().nullable(),
    handshakeSent: z.number().nullable(),
    accepted: z.number().nullable(),
    rejected: z.number().nullable(),
    closed: z.number().nullable(),
    /** TLS handshake finished on this channel (absent or null: in clear, or not yet). */
    secured: z.number().nullable().optional(),
  }),
  /** What protects the channel, e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384 x509 client-cert"; null in clear. */
  security: z.string().nullable().optional(),
  /** Page payload bytes on the wire (compressed size); pages × 4096 without compression. */
  payloadBytes: z.number().optional(),
  bytes: z.number(),
  pages: z.number(),
  zeroPages: z.number(),
  packets: z.number(),
  syncs: z.number(),
  /** bytes/s over the sliding window. */
  throughput: z.number(),
  error: SerializedErrorSchema.nullable(),
});
export type ChannelSnapshot = z.infer<typeof ChannelSnapshotSchema>;

export const SwitchoverReasonSchema = z.enum(['downtime', 'round-limit']);

export const MigrationSnapshotSchema = z.object({
  id: z.string(),
  uuid: z.string().nullable(),
  role: RoleSchema,
  state: MigrationStateSchema,
  peer: z.string().nullable(),
  channelCount: z.number().int(),
  /** Multifd compression of this migration (absent: none). */
  compression: CompressionSchema.optional(),
  /** TLS on its channels: 'x509', 'psk', or absent/null in clear. */
  tls: z.enum(['x509', 'psk']).nullable().optional(),
  round: z.number().int(),
  ramSize: z.number(),
  /** bytes put on (or read from) the wire, headers included. */
  transferred: z.number(),
  /** page bytes moved (normal pages × 4096). */
  pageBytes: z.number(),
  /** dirty bytes still to send (source). */
  remaining: z.number(),
  /** guest dirty rate, bytes/s, over the last round. */
  dirtyRate: z.number(),
  /** bytes/s over the sliding window. */
  transferRate: z.number(),
  /** dirty rate / transfer rate. */
  convergence: z.number(),
  expectedDowntimeMs: z.number(),
  /** vCPU throttle auto-converge applies now, percent; null when auto-converge is off (source). */
  throttlePct: z.number().nullable().optional(),
  downtimeMs: z.number().nullable(),
  setupTimeMs: z.number().nullable(),
  totalTimeMs: z.number().nullable(),
  startedAt: z.number(),
  endedAt: z.number().nullable(),
  switchoverReason: SwitchoverReasonSchema.nullable(),
  digest: z.string().nullable(),
  verified: z.boolean(),
  channels: z.array(ChannelSnapshotSchema),
  error: SerializedErrorSchema.nullable(),
});
export type MigrationSnapshot = z.infer<typeof MigrationSnapshotSchema>;

// --- QEMU's own figures ----------------------------------------------------------------

/**
 * What one QEMU says of its migration (QMP `query-migrate`), in QEMU mode beside the relay's
 * per-channel view. Every figure is QEMU's own; null where that QEMU does not report it.
 */
export const QemuFiguresSchema = z.object({
  /** QEMU's status string: setup, active, device, completed, failed, cancelled, ... */
  status: z.string(),
  /** QEMU's error-desc, verbatim, when it failed. */
  errorDesc: z.string().nullable(),
  totalTimeMs: z.number().nullable(),
  setupTimeMs: z.number().nullable(),
  downtimeMs: z.number().nullable(),
  expectedDowntimeMs: z.number().nullable(),
  /** ram.total, ram.transferred, ram.remaining, ram.multifd-bytes (bytes). */
  ramTotal: z.number().nullable(),
  transferred: z.number().nullable(),
  remaining: z.number().nullable(),
  multifdBytes: z.number().nullable(),
  /** ram.normal (pages with data), ram.duplicate (zero pages), ram.dirty-sync-count. */
  normalPages: z.number().nullable(),
  zeroPages: z.number().nullable(),
  dirtySyncCount: z.number().nullable(),
  /** ram.mbps: QEMU's own throughput figure, in megabits/s. */
  mbps: z.number().nullable(),
});
export type QemuFigures = z.infer<typeof QemuFiguresSchema>;

// --- events ----------------------------------------------------------------------------

const EventBase = {
  time: z.number(),
  role: RoleSchema,
  /** null for what a destination rejects before it can tell which migration it belongs to. */
  migration: z.object({ id: z.string(), uuid: z.string().nullable() }).nullable(),
};
/** Failure fields carried at the top level of rejection and failure events. */
const FailureFields = SerializedErrorSchema.shape;

export const MigrationEventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('state'), ...EventBase, state: MigrationStateSchema, previous: MigrationStateSchema.nullable() }),
  z.object({
    type: z.literal('hello'),
    ...EventBase,
    channels: z.number().int(),
    ramSize: z.number(),
    blocks: z.array(RamBlockInfoSchema),
  }),
  z.object({
    type: z.literal('channel'),
    ...EventBase,
    channel: z.number().int(),
    state: ChannelStateSchema,
    connection: z.number().int().nullable(),
    peer: z.string().nullable(),
  }),
  z.object({ type: z.literal('channel-rejected'), ...EventBase, ...FailureFields }),
  z.object({
    type: z.literal('round'),
    ...EventBase,
    round: z.number().int(),
    pages: z.number(),
    zeroPages: z.number(),
    bytes: z.number(),
    durationMs: z.number(),
    bandwidth: z.number(),
    dirtyPages: z.number(),
    dirtyRate: z.number(),
    expectedDowntimeMs: z.number(),
    /** Pages of the round's set not sent because the guest dirtied them again first (a later pass sends them). */
    skippedPages: z.number().optional(),
    /** vCPU throttle auto-converge set after this round, in force during the next, percent; null when it is off. */
    throttlePct: z.number().nullable().optional(),
  }),
  z.object({
    type: z.literal('switchover'),
    ...EventBase,
    reason: SwitchoverReasonSchema,
    round: z.number().int(),
    remaining: z.number(),
    expectedDowntimeMs: z.number(),
    downtimeLimitMs: z.number(),
  }),
  z.object({ type: z.literal('progress'), ...EventBase, snapshot: MigrationSnapshotSchema }),
  z.object({
    type: z.literal('completed'),
    ...EventBase,
    verified: z.literal(true),
    digest: z.string(),
    rounds: z.number().int(),
    transferred: z.number(),
    downtimeMs: z.number().nullable(),
    setupTimeMs: z.number().nullable(),
    totalTimeMs: z.number(),
  }),
  z.object({ type: z.literal('failed'), ...EventBase, ...FailureFields }),
  z.object({ type: z.literal('cancelled'), ...EventBase, ...FailureFields }),
  /**
   * QEMU mode: one QEMU's query-migrate, when it changed. `qmp` is where the console reached
   * it; `relay` where the relay listened and `recordDir` where it recorded (so history keeps them).
   */
  z.object({
    type: z.literal('qemu'),
    ...EventBase,
    side: z.enum(['source', 'destination']),
    qmp: z.string(),
    relay: z.string().nullable().optional(),
    recordDir: z.string().nullable().optional(),
    figures: QemuFiguresSchema,
  }),
]);
export type MigrationEvent = z.infer<typeof MigrationEventSchema>;
export type MigrationEventType = MigrationEvent['type'];

/** Helper for emitters: an event without the fields the emitter fills in. */
export type EventBody<T extends MigrationEventType> = Omit<Extract<MigrationEvent, { type: T }>, 'time' | 'role' | 'migration' | 'type'>;

/** Formats zod issues as "field: message" lines, for CLI and API errors. */
export function formatIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : 'config'}: ${i.message}`).join('; ');
}
