/**
 * Multifd compression methods as an ops table, one file per method, as QEMU's
 * multifd-zlib.c / multifd-zstd.c plug into MultiFDMethods.
 *
 * Our own channels carry one self-contained compressed frame per packet (a zlib stream,
 * a zstd frame): a packet decodes on its own, whatever came before it on the channel, so
 * a receiver needs no per-channel stream state and a compressor can run off the main
 * thread. The packet's flags carry the method (0x02 zlib, 0x04 zstd, as QEMU), every
 * packet of a compressed migration carries it, SYNC included, and next_packet_size is
 * the compressed length.
 */
import type { Compression } from '../../contracts';
import type { PayloadDecoder } from '../../protocol';
import { noneOps } from './none';
import { zlibOps } from './zlib';
import { zstdOps } from './zstd';

/** A channel's send side: used for one packet at a time. */
export interface Compressor {
  /**
   * Compresses `payload` (views of guest RAM, in offset[] order, `bytes` long in all) into
   * one self-contained frame. The views are read before the promise settles (zstd: before
   * it returns), so guest RAM changing afterwards does not change what is sent.
   */
  compress(payload: readonly Uint8Array[], bytes: number): Promise<Uint8Array>;
}

/** A migration's compressors, one per channel; close() releases what they hold (workers). */
export interface CompressorSet {
  forChannel(channel: number): Compressor;
  close(): Promise<void>;
}

export interface CompressionOps {
  readonly name: Compression;
  /** The flag value packets carry (0 for none). */
  readonly flag: number;
  /** Level bounds (QEMU's multifd-zlib-level 1..9, multifd-zstd-level 1..20; we cap zstd at 19). */
  readonly levels: { min: number; max: number };
  /** Once per process, before the first compressor or decoder (wasm instantiation). */
  load(): Promise<void>;
  /** The compressors of a migration of `channels` channels; null for none. */
  compressors(level: number, channels: number): Promise<CompressorSet> | null;
  /** null for none: the reader frames uncompressed packets itself. */
  decoder(): PayloadDecoder | null;
}

export const COMPRESSION_OPS: Readonly<Record<Compression, CompressionOps>> = {
  none: noneOps,
  zlib: zlibOps,
  zstd: zstdOps,
};

export function compressionOps(name: Compression): CompressionOps {
  const ops = COMPRESSION_OPS[name];
  if (!ops) throw new TypeError(`unknown compression method ${String(name)}`);
  return ops;
}

export { copyPayload, scatterPages } from './pages';
