/**
 * The flags of what a destination bounds whoever connects (`multifd dest`, `multifd agent`):
 * one table of options, one usage text, one reader.
 */
import type { DestinationOptions } from '../../lib/engine';
import { parseSize } from '../../lib/guest';
import { int, parsed } from './args';

export const LIMIT_OPTIONS = {
  'max-ram': { type: 'string' },
  'max-migrations': { type: 'string' },
  'max-connections': { type: 'string' },
  'max-connections-per-peer': { type: 'string' },
} as const;

const LIMIT_HELP: Array<[string, string[]]> = [
  ['--max-ram SIZE', ["RAM of all guests arriving or arrived and running here together", "(default 90% of this host's memory; MIGRATION_RAM_LIMIT past it)"]],
  ['--max-migrations N', ['migrations arriving at once (default 64; MIGRATION_TOO_MANY_MIGRATIONS)']],
  ['--max-connections N', ['connections without a migration yet (before their handshake or hello),', 'in total; the oldest is closed past it (default: half the open-file', 'limit, 16..1024; MIGRATION_TOO_MANY_CONNECTIONS)']],
  ['--max-connections-per-peer N', ['the same, per source address (default: --max-connections)']],
];

/** The flags' usage lines, their text starting at column `width` (as the command's other flags do). */
export function limitUsage(width = 30): string {
  const pad = (t: string) => (t.length + 2 < width ? `  ${t}`.padEnd(width) : `  ${t}\n${''.padEnd(width)}`);
  return LIMIT_HELP.map(([flag, lines]) => `${pad(flag)}${lines.join(`\n${''.padEnd(width)}`)}\n`).join('');
}

export type Limits = Pick<DestinationOptions, 'maxRamBytes' | 'maxMigrations' | 'maxConnections' | 'maxConnectionsPerPeer'>;

export function limitsFrom(values: Partial<Record<keyof typeof LIMIT_OPTIONS, string>>): Limits {
  return {
    maxRamBytes: parsed('max-ram', values['max-ram'], parseSize),
    maxMigrations: int('max-migrations', values['max-migrations'], 1, 100_000),
    maxConnections: int('max-connections', values['max-connections'], 1, 1_000_000),
    maxConnectionsPerPeer: int('max-connections-per-peer', values['max-connections-per-peer'], 1, 1_000_000),
  };
}
