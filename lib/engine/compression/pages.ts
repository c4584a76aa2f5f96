/**
 * What every method shares: gathering a packet's page runs into one input buffer, and
 * spreading decoded pages back over the packet's offsets, with the length checks that keep
 * a bad frame from writing anywhere it should not.
 */
import { PacketBadCompressionError, channelPrefix } from '../../errors';
import { PAGE_SIZE, compressionName, type PacketHeader } from '../../protocol';

/** Copies the payload views into `into` (at least `bytes` long); returns the filled part. */
export function copyPayload(payload: readonly Uint8Array[], bytes: number, into: Uint8Array): Uint8Array {
  let at = 0;
  for (const v of payload) {
    into.set(v, at);
    at += v.length;
  }
  if (at !== bytes) throw new RangeError(`payload views hold ${at} bytes, the packet says ${bytes}`);
  return into.subarray(0, bytes);
}

/**
 * Writes decoded page data (`pages`, normalPages × 4096 bytes) to each page's region, in
 * offset[] order, coalescing contiguous offsets into one region call.
 */
export function scatterPages(h: PacketHeader, pages: Uint8Array, region: (offset: number, length: number) => Uint8Array): void {
  const n = h.normalPages;
  const offs = h.offsets;
  let i = 0;
  while (i < n) {
    const start = offs[i];
    let j = i + 1;
    while (j < n && offs[j] === start + (j - i) * PAGE_SIZE) j++;
    region(start, (j - i) * PAGE_SIZE).set(pages.subarray(i * PAGE_SIZE, j * PAGE_SIZE));
    i = j;
  }
}

/** Context of a decode, for errors. */
export interface DecodeWhere {
  channel?: number | null;
  peer?: string | null;
  connection?: number | null;
}

export function badCompression(where: DecodeWhere, h: PacketHeader, flag: number, expected: string, received: string): PacketBadCompressionError {
  const c = { channel: where.channel ?? null, peer: where.peer ?? null, connection: where.connection ?? null, field: 'payload', expected, received };
  return new PacketBadCompressionError(
    `${channelPrefix(c)}${compressionName(flag)} payload of packet ${h.packetNum} (${h.nextPacketSize} bytes) does not decode: expected ${expected}, received ${received}`,
    c,
  );
}

/**
 * A packet without normal pages carries no payload; returns true when there is nothing to
 * decode (and throws if bytes came anyway).
 */
export function nothingToDecode(where: DecodeWhere, h: PacketHeader, flag: number, payload: Uint8Array): boolean {
  if (h.normalPages > 0) return false;
  if (payload.length !== 0) throw badCompression(where, h, flag, 'no payload for a packet without pages', `${payload.length} bytes`);
  return true;
}
