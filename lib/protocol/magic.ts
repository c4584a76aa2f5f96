/**
 * What a connection is, from its first 4 bytes (DESIGN 3.3): the destination classifies
 * every accepted connection by peeking them, never by accept order.
 *
 * | first 4 bytes (u32 BE)  | connection                                  |
 * |-------------------------|---------------------------------------------|
 * | `4D 46 44 43` ("MFDC")  | our main channel                            |
 * | `11 22 33 44`           | a multifd channel (handshake follows)       |
 * | anything else           | rejected (`51 45 56 4D` "QEVM" is QEMU's own main stream, named as such) |
 */
import { MAIN_MAGIC, MULTIFD_MAGIC, QEMU_VM_MAGIC } from './constants';

export type ConnectionKind = 'main' | 'multifd' | 'unknown';

/** `null` until 4 bytes are there. */
export function classifyConnection(first: Uint8Array): ConnectionKind | null {
  if (first.length < 4) return null;
  const magic = readU32(first, 0);
  if (magic === MAIN_MAGIC) return 'main';
  if (magic === MULTIFD_MAGIC) return 'multifd';
  return 'unknown';
}

/** `0x0000abcd`: how every u32 magic is shown in messages and expected/received. */
export function hex32(value: number): string {
  return `0x${(value >>> 0).toString(16).padStart(8, '0')}`;
}

/**
 * A magic for a human: hex, plus its name when it is one we know, or its ASCII form when
 * printable (an HTTP client shows up as "GET ").
 */
export function describeMagic(value: number): string {
  const hex = hex32(value);
  if (value === MAIN_MAGIC) return `${hex} ("MFDC", the multifd main channel)`;
  if (value === MULTIFD_MAGIC) return `${hex} (a multifd channel handshake)`;
  if (value === QEMU_VM_MAGIC) return `${hex} ("QEVM", QEMU's own migration stream: the peer is a QEMU, not a multifd source)`;
  let ascii = '';
  for (let shift = 24; shift >= 0; shift -= 8) {
    const c = (value >>> shift) & 0xff;
    if (c < 0x20 || c > 0x7e) return hex;
    ascii += String.fromCharCode(c);
  }
  return `${hex} (${JSON.stringify(ascii)})`;
}

/** Big-endian u32 at `at`; the caller guarantees 4 bytes are there. */
export function readU32(buf: Uint8Array, at: number): number {
  return ((buf[at] << 24) | (buf[at + 1] << 16) | (buf[at + 2] << 8) | buf[at + 3]) >>> 0;
}
