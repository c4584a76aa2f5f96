/** No compression: pages travel as they are, framed by normal_pages (lib/protocol/reader.ts). */
import type { CompressionOps } from './index';

export const noneOps: CompressionOps = {
  name: 'none',
  flag: 0,
  levels: { min: 1, max: 1 },
  load: async () => {},
  compressors: () => null,
  decoder: () => null,
};
