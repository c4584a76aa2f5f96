/**
 * Typed migration errors: one base class, one subclass per failure, each with a stable
 * `code`. Tests, the CLI and the console branch on `code`, never on the message.
 *
 * Pure: no node:* imports, no zod, so protocol, engine, contracts and the browser can all
 * use it. lib/contracts builds its zod enum from ERROR_CODES.
 */

export const ERROR_CODES = [
  // channel handshake and channel lifetime
  'MIGRATION_CHANNEL_BAD_MAGIC',
  'MIGRATION_CHANNEL_BAD_VERSION',
  'MIGRATION_CHANNEL_UUID_MISMATCH',
  'MIGRATION_CHANNEL_ID_OUT_OF_RANGE',
  'MIGRATION_CHANNEL_ID_DUPLICATE',
  'MIGRATION_CHANNEL_SHORT_HANDSHAKE',
  'MIGRATION_CHANNEL_SETUP_TIMEOUT',
  'MIGRATION_CHANNEL_HANDSHAKE_TIMEOUT',
  'MIGRATION_CHANNEL_STALLED',
  'MIGRATION_CHANNEL_CLOSED',
  'MIGRATION_CHANNEL_STALE',
  // RAM packets
  'MIGRATION_PACKET_BAD_HEADER',
  'MIGRATION_PACKET_OFFSET_OUT_OF_RANGE',
  'MIGRATION_PACKET_UNKNOWN_RAMBLOCK',
  'MIGRATION_PACKET_SHORT_PAYLOAD',
  'MIGRATION_PACKET_BAD_COMPRESSION',
  // channel security (TLS on the main channel and every multifd channel)
  'MIGRATION_TLS_REQUIRED',
  'MIGRATION_TLS_NOT_CONFIGURED',
  'MIGRATION_TLS_PSK_MISMATCH',
  'MIGRATION_TLS_HOSTNAME_MISMATCH',
  'MIGRATION_TLS_CERT_UNTRUSTED',
  'MIGRATION_TLS_CLIENT_CERT_REQUIRED',
  'MIGRATION_TLS_CLIENT_CERT_UNTRUSTED',
  'MIGRATION_TLS_HANDSHAKE_FAILED',
  'MIGRATION_TLS_CREDENTIALS_INVALID',
  // compression negotiation
  'MIGRATION_COMPRESSION_REFUSED',
  // the migration as a whole
  'MIGRATION_MAIN_BAD_FRAME',
  'MIGRATION_MAIN_CLOSED',
  'MIGRATION_CHANNEL_COUNT_MISMATCH',
  'MIGRATION_BUSY',
  'MIGRATION_TOO_MANY_CONNECTIONS',
  'MIGRATION_TOO_MANY_MIGRATIONS',
  'MIGRATION_RAM_LIMIT',
  'MIGRATION_GUEST_EXISTS',
  'MIGRATION_SOURCE_SILENT',
  'MIGRATION_PAGES_MISSING',
  'MIGRATION_ID_CONFLICT',
  'MIGRATION_CONNECT_FAILED',
  'MIGRATION_DIGEST_MISMATCH',
  'MIGRATION_VERIFY_TIMEOUT',
  'MIGRATION_CANCELLED',
  'MIGRATION_CONFIG_INVALID',
  'MIGRATION_REMOTE_FAILED',
  // the fleet
  'MIGRATION_AGENT_DOWN',
  'MIGRATION_INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** Context every error may carry; absent fields are `null`. */
export interface ErrorContext {
  /** multifd channel id involved, or null (main channel, or bytes never reached the id). */
  channel?: number | null;
  /** remote address:port of the connection involved. */
  peer?: string | null;
  /** destination connection number (every accepted connection gets one). */
  connection?: number | null;
  /** what the receiver expected, in text. */
  expected?: string | null;
  /** what actually arrived, in text. */
  received?: string | null;
  /** for header errors: the packet header field at fault. */
  field?: string | null;
  /** missing channel ids (setup timeout). */
  missing?: number[] | null;
  cause?: unknown;
}

/** Plain-object form, as carried in events, frames and JSON. */
export interface SerializedError {
  code: ErrorCode;
  message: string;
  channel: number | null;
  peer: string | null;
  connection: number | null;
  expected: string | null;
  received: string | null;
  field: string | null;
  missing: number[] | null;
}

export class MigrationError extends Error {
  readonly code: ErrorCode;
  readonly channel: number | null;
  readonly peer: string | null;
  readonly connection: number | null;
  readonly expected: string | null;
  readonly received: string | null;
  readonly field: string | null;
  readonly missing: number[] | null;

  constructor(code: ErrorCode, message: string, ctx: ErrorContext = {}) {
    super(message, ctx.cause === undefined ? undefined : { cause: ctx.cause });
    this.name = new.target.name;
    this.code = code;
    this.channel = ctx.channel ?? null;
    this.peer = ctx.peer ?? null;
    this.connection = ctx.connection ?? null;
    this.expected = ctx.expected ?? null;
    this.received = ctx.received ?? null;
    this.field = ctx.field ?? null;
    this.missing = ctx.missing ?? null;
  }

  toJSON(): SerializedError {
    return {
      code: this.code,
      message: this.message,
      channel: this.channel,
      peer: this.peer,
      connection: this.connection,
      expected: this.expected,
      received: this.received,
      field: this.field,
      missing: this.missing,
    };
  }

  /** Rebuilds an error from its serialized form (e.g. a `failed` frame from the peer). */
  static fromJSON(s: SerializedError): MigrationError {
    const Ctor = ERROR_CLASSES[s.code];
    return Ctor ? new Ctor(s.message, s) : new MigrationError(s.code, s.message, s);
  }
}

/**
 * "channel 3 from 10.0.0.2:51234: " — every channel message starts by naming where the
 * bytes came from, as QEMU's do.
 */
export function channelPrefix(ctx: ErrorContext): string {
  const parts: string[] = [];
  if (ctx.channel !== undefined && ctx.channel !== null) parts.push(`channel ${ctx.channel}`);
  else if (ctx.connection !== undefined && ctx.connection !== null) parts.push(`connection #${ctx.connection}`);
  if (ctx.peer) parts.push(`from ${ctx.peer}`);
  return parts.length ? `${parts.join(' ')}: ` : '';
}

type Ctor = new (message: string, ctx?: ErrorContext) => MigrationError;

function define(code: ErrorCode, fallback: string): Ctor {
  return class extends MigrationError {
    constructor(message: string = fallback, ctx: ErrorContext = {}) {
      super(code, message, ctx);
    }
  };
}

// One subclass per failure. Names are what `instanceof` and stack traces show.
export class ChannelBadMagicError extends define('MIGRATION_CHANNEL_BAD_MAGIC', 'bad channel magic') {}
export class ChannelBadVersionError extends define('MIGRATION_CHANNEL_BAD_VERSION', 'bad channel version') {}
export class ChannelUuidMismatchError extends define('MIGRATION_CHANNEL_UUID_MISMATCH', 'channel uuid does not match the migration') {}
export class ChannelIdOutOfRangeError extends define('MIGRATION_CHANNEL_ID_OUT_OF_RANGE', 'channel id out of range') {}
export class ChannelIdDuplicateError extends define('MIGRATION_CHANNEL_ID_DUPLICATE', 'channel id already connected') {}
export class ChannelShortHandshakeError extends define('MIGRATION_CHANNEL_SHORT_HANDSHAKE', 'connection closed before a whole handshake') {}
export class ChannelSetupTimeoutError extends define('MIGRATION_CHANNEL_SETUP_TIMEOUT', 'channels missing after the setup timeout') {}
export class ChannelHandshakeTimeoutError extends define('MIGRATION_CHANNEL_HANDSHAKE_TIMEOUT', 'connection sent no handshake in time') {}
export class ChannelStalledError extends define('MIGRATION_CHANNEL_STALLED', 'channel made no progress') {}
export class ChannelClosedError extends define('MIGRATION_CHANNEL_CLOSED', 'channel closed mid-stream') {}
export class ChannelStaleError extends define('MIGRATION_CHANNEL_STALE', 'channel of a migration that already ended') {}
export class PacketBadHeaderError extends define('MIGRATION_PACKET_BAD_HEADER', 'bad packet header') {}
export class PacketOffsetOutOfRangeError extends define('MIGRATION_PACKET_OFFSET_OUT_OF_RANGE', 'page offset outside the ramblock') {}
export class PacketUnknownRamblockError extends define('MIGRATION_PACKET_UNKNOWN_RAMBLOCK', 'unknown ramblock') {}
export class PacketShortPayloadError extends define('MIGRATION_PACKET_SHORT_PAYLOAD', 'stream ended inside a packet') {}
export class PacketBadCompressionError extends define('MIGRATION_PACKET_BAD_COMPRESSION', 'compressed payload does not decode to its pages') {}
export class TlsRequiredError extends define('MIGRATION_TLS_REQUIRED', 'the destination requires TLS, the channel arrived in clear') {}
export class TlsNotConfiguredError extends define('MIGRATION_TLS_NOT_CONFIGURED', 'the channel opened TLS, the destination has no TLS credentials') {}
export class TlsPskMismatchError extends define('MIGRATION_TLS_PSK_MISMATCH', 'pre-shared key identity or key does not match') {}
export class TlsHostnameMismatchError extends define('MIGRATION_TLS_HOSTNAME_MISMATCH', "the destination's certificate does not name the expected host") {}
export class TlsCertUntrustedError extends define('MIGRATION_TLS_CERT_UNTRUSTED', "the destination's certificate is not signed by a trusted CA") {}
export class TlsClientCertRequiredError extends define('MIGRATION_TLS_CLIENT_CERT_REQUIRED', 'the destination requires a client certificate, none was given') {}
export class TlsClientCertUntrustedError extends define('MIGRATION_TLS_CLIENT_CERT_UNTRUSTED', "the source's client certificate is not trusted by the destination") {}
export class TlsHandshakeFailedError extends define('MIGRATION_TLS_HANDSHAKE_FAILED', 'TLS handshake failed') {}
export class TlsCredentialsInvalidError extends define('MIGRATION_TLS_CREDENTIALS_INVALID', 'TLS credentials could not be loaded') {}
export class CompressionRefusedError extends define('MIGRATION_COMPRESSION_REFUSED', 'compression method not allowed by the destination') {}
export class MainBadFrameError extends define('MIGRATION_MAIN_BAD_FRAME', 'bad main channel frame') {}
export class MainClosedError extends define('MIGRATION_MAIN_CLOSED', 'main channel closed') {}
export class ChannelCountMismatchError extends define('MIGRATION_CHANNEL_COUNT_MISMATCH', 'channel count mismatch') {}
export class BusyError extends define('MIGRATION_BUSY', 'a migration of this guest is already running') {}
export class TooManyConnectionsError extends define('MIGRATION_TOO_MANY_CONNECTIONS', 'too many connections held') {}
export class TooManyMigrationsError extends define('MIGRATION_TOO_MANY_MIGRATIONS', 'the destination serves as many migrations as it allows') {}
export class RamLimitError extends define('MIGRATION_RAM_LIMIT', "the guest's RAM does not fit in what the destination allows for incoming guests") {}
export class GuestExistsError extends define('MIGRATION_GUEST_EXISTS', 'a guest with this uuid already runs on the destination') {}
export class SourceSilentError extends define('MIGRATION_SOURCE_SILENT', 'the source sent nothing on any connection for too long') {}
export class PagesMissingError extends define('MIGRATION_PAGES_MISSING', 'the destination did not receive every page the source sent') {}
export class IdConflictError extends define('MIGRATION_ID_CONFLICT', 'the migration id names another migration at the destination') {}
export class ConnectFailedError extends define('MIGRATION_CONNECT_FAILED', 'could not connect to the destination') {}
export class DigestMismatchError extends define('MIGRATION_DIGEST_MISMATCH', 'RAM digest mismatch') {}
export class VerifyTimeoutError extends define('MIGRATION_VERIFY_TIMEOUT', 'no verdict from the destination in time') {}
export class CancelledError extends define('MIGRATION_CANCELLED', 'migration cancelled') {}
export class ConfigInvalidError extends define('MIGRATION_CONFIG_INVALID', 'invalid migration config') {}
export class RemoteFailedError extends define('MIGRATION_REMOTE_FAILED', 'the peer reported a failure') {}
export class AgentDownError extends define('MIGRATION_AGENT_DOWN', 'an agent of the migration went down') {}
export class InternalError extends define('MIGRATION_INTERNAL', 'internal error') {}

const ERROR_CLASSES: Partial<Record<ErrorCode, Ctor>> = {
  MIGRATION_CHANNEL_BAD_MAGIC: ChannelBadMagicError,
  MIGRATION_CHANNEL_BAD_VERSION: ChannelBadVersionError,
  MIGRATION_CHANNEL_UUID_MISMATCH: ChannelUuidMismatchError,
  MIGRATION_CHANNEL_ID_OUT_OF_RANGE: ChannelIdOutOfRangeError,
  MIGRATION_CHANNEL_ID_DUPLICATE: ChannelIdDuplicateError,
  MIGRATION_CHANNEL_SHORT_HANDSHAKE: ChannelShortHandshakeError,
  MIGRATION_CHANNEL_SETUP_TIMEOUT: ChannelSetupTimeoutError,
  MIGRATION_CHANNEL_HANDSHAKE_TIMEOUT: ChannelHandshakeTimeoutError,
  MIGRATION_CHANNEL_STALLED: ChannelStalledError,
  MIGRATION_CHANNEL_CLOSED: ChannelClosedError,
  MIGRATION_CHANNEL_STALE: ChannelStaleError,
  MIGRATION_PACKET_BAD_HEADER: PacketBadHeaderError,
  MIGRATION_PACKET_OFFSET_OUT_OF_RANGE: PacketOffsetOutOfRangeError,
  MIGRATION_PACKET_UNKNOWN_RAMBLOCK: PacketUnknownRamblockError,
  MIGRATION_PACKET_SHORT_PAYLOAD: PacketShortPayloadError,
  MIGRATION_MAIN_BAD_FRAME: MainBadFrameError,
  MIGRATION_MAIN_CLOSED: MainClosedError,
  MIGRATION_CHANNEL_COUNT_MISMATCH: ChannelCountMismatchError,
  MIGRATION_BUSY: BusyError,
  MIGRATION_TOO_MANY_CONNECTIONS: TooManyConnectionsError,
  MIGRATION_TOO_MANY_MIGRATIONS: TooManyMigrationsError,
  MIGRATION_RAM_LIMIT: RamLimitError,
  MIGRATION_GUEST_EXISTS: GuestExistsError,
  MIGRATION_SOURCE_SILENT: SourceSilentError,
  MIGRATION_PAGES_MISSING: PagesMissingError,
  MIGRATION_ID_CONFLICT: IdConflictError,
  MIGRATION_CONNECT_FAILED: ConnectFailedError,
  MIGRATION_DIGEST_MISMATCH: DigestMismatchError,
  MIGRATION_VERIFY_TIMEOUT: VerifyTimeoutError,
  MIGRATION_CANCELLED: CancelledError,
  MIGRATION_CONFIG_INVALID: ConfigInvalidError,
  MIGRATION_REMOTE_FAILED: RemoteFailedError,
  MIGRATION_AGENT_DOWN: AgentDownError,
  MIGRATION_INTERNAL: InternalError,
};

/** Wraps anything thrown into a MigrationError, keeping typed ones as they are. */
export function asMigrationError(err: unknown, ctx: ErrorContext = {}): MigrationError {
  if (err instanceof MigrationError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new InternalError(`${channelPrefix(ctx)}${message}`, { ...ctx, cause: err });
}

/**
 * The same error with the context it lacks filled in (a guest's own checks know nothing of
 * the connection that brought the bad value): fields it already has are kept.
 */
export function withContext(err: MigrationError, ctx: Pick<ErrorContext, 'peer' | 'connection' | 'channel'>): MigrationError {
  const s = err.toJSON();
  const filled = { ...s, peer: s.peer ?? ctx.peer ?? null, connection: s.connection ?? ctx.connection ?? null, channel: s.channel ?? ctx.channel ?? null };
  if (filled.peer === s.peer && filled.connection === s.connection && filled.channel === s.channel) return err;
  return MigrationError.fromJSON(filled);
}

export function isMigrationError(err: unknown): err is MigrationError {
  return err instanceof MigrationError;
}
