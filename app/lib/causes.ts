/**
 * One line per error code: what an operator should suspect first. The code is the stable
 * interface (DESIGN §6); these hints are prose and may change.
 */
const CAUSES: Record<string, string> = {
  MIGRATION_CHANNEL_BAD_MAGIC: 'the peer does not speak multifd: a wrong port, or another service',
  MIGRATION_CHANNEL_BAD_VERSION: 'source and destination speak different multifd versions',
  MIGRATION_CHANNEL_UUID_MISMATCH: "this connection belongs to another guest's migration",
  MIGRATION_CHANNEL_ID_OUT_OF_RANGE: 'the source uses more channels than the destination expects',
  MIGRATION_CHANNEL_ID_DUPLICATE: 'two connections claimed the same channel id',
  MIGRATION_CHANNEL_SHORT_HANDSHAKE: 'the connection closed before its 64-byte handshake was complete',
  MIGRATION_CHANNEL_SETUP_TIMEOUT: 'some channels never arrived: a firewall, a wrong address, or a stalled source',
  MIGRATION_CHANNEL_HANDSHAKE_TIMEOUT: 'a connection opened but never sent its handshake',
  MIGRATION_CHANNEL_STALLED: 'this channel made no progress while others moved: a slow or stuck path',
  MIGRATION_CHANNEL_CLOSED: 'the peer closed the connection mid-stream',
  MIGRATION_CHANNEL_STALE: 'a connection left over from an earlier attempt',
  MIGRATION_PACKET_BAD_HEADER: 'the source sent a malformed packet header',
  MIGRATION_PACKET_OFFSET_OUT_OF_RANGE: 'a packet pointed outside its RAM block',
  MIGRATION_PACKET_UNKNOWN_RAMBLOCK: 'a packet named a RAM block the destination does not have',
  MIGRATION_PACKET_SHORT_PAYLOAD: 'the connection closed in the middle of a page payload',
  MIGRATION_MAIN_BAD_FRAME: 'the main channel carried a frame the peer could not read',
  MIGRATION_MAIN_CLOSED: 'the main channel closed: the peer went away',
  MIGRATION_CHANNEL_COUNT_MISMATCH: 'source and destination disagree on the channel count',
  MIGRATION_BUSY: 'the destination (or the guest) is already in a migration',
  MIGRATION_TOO_MANY_CONNECTIONS: 'the destination refused more connections than it allows',
  MIGRATION_TOO_MANY_MIGRATIONS: 'the destination already serves as many migrations as its --max-migrations allows: retry when one ends',
  MIGRATION_RAM_LIMIT: "the guests arriving or running at the destination would exceed its --max-ram: stop a guest there, or raise the limit",
  MIGRATION_GUEST_EXISTS: 'the destination already runs a guest with this uuid: stop that copy first, or migrate with --replace if it is gone',
  MIGRATION_SOURCE_SILENT: 'the source stopped sending without closing: a power loss, a partition, or a hung source process',
  MIGRATION_PAGES_MISSING: 'the source says it sent pages the destination never received: a channel lost data, or the main channel was forged',
  MIGRATION_ID_CONFLICT: 'the hello claimed the id of a migration the destination already knows, without its pairing secret: a forged or replayed main channel',
  MIGRATION_CONNECT_FAILED: 'nothing listens at the destination address, or it is unreachable',
  MIGRATION_DIGEST_MISMATCH: "the destination's RAM differs from the source's: pages lost or corrupted on the way",
  MIGRATION_CANCELLED: 'cancelled; the source guest keeps running, unchanged',
  MIGRATION_CONFIG_INVALID: 'the migration was configured with a value the engine refuses',
  MIGRATION_REMOTE_FAILED: 'the other side failed; its message says why',
  MIGRATION_AGENT_DOWN: 'an agent of the migration stopped answering: the host is down, its agent was killed, or the network to it is cut',
  MIGRATION_INTERNAL: 'an internal error: please report it with the exported timeline',
};

export function likelyCause(code: string): string | null {
  return CAUSES[code] ?? null;
}
