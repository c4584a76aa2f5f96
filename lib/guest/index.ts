/**
 * lib/guest: the built-in guest that gets migrated (DESIGN 5) — RAM blocks and their
 * dirty bitmaps, the workload worker, the device state and the RAM digest.
 */
export { DirtyBitmap, forEachSetBit, popcount32 } from './dirty';
export { RamBlock, allocateBlocks, checkBlockSpec, MAX_RAMBLOCK_NAME_BYTES, type RamBlockSpec } from './ram';
export {
  parseWorkload,
  formatWorkload,
  validateWorkload,
  WORKLOAD_SYNTAX,
  type Workload,
  type WorkloadKind,
} from './workload';
export {
  parseSize,
  parseRate,
  parseBytesPerSecond,
  formatBytes,
  formatSizeExact,
  formatRateExact,
  KiB,
  MiB,
  GiB,
  TiB,
} from './units';
export {
  encodeDeviceState,
  decodeDeviceState,
  DEVICE_STATE_SIZE,
  DEVICE_STATE_MAGIC,
  DEVICE_STATE_VERSION,
  type DeviceState,
  type RngState,
} from './device';
export { Populator } from './populate';
export { PageHashes, fullDigest, formatDigest, parseDigest } from './digest';
export {
  Guest,
  DEFAULT_RAM_SIZE,
  DEFAULT_BLOCK_NAME,
  WORKER_ACK_TIMEOUT_MS,
  MAX_THROTTLE,
  type GuestOptions,
  type GuestState,
  type GuestStats,
} from './guest';
