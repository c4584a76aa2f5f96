'use client';

/** Live and recent migrations on this console, updated by `migrations:changed`. */
import Link from 'next/link';
import { TERMINAL_STATES } from '../../lib/contracts';
import { useMigrations } from '../lib/hooks';
import { MigrationTable } from './MigrationTable';

/** Ended migrations shown under the live ones; /history has them all. */
const RECENT = 10;

export function MigrationList() {
  const { items, error } = useMigrations();
  if (items === null) return error ? <p className="error-text">{error}</p> : <p className="muted">Loading migrations…</p>;
  const live = items.filter((m) => !TERMINAL_STATES.includes(m.state));
  const ended = items.filter((m) => TERMINAL_STATES.includes(m.state)).slice(0, RECENT);
  const rows = [...live, ...ended];
  return (
    <>
      {error && <p className="error-text">{error}</p>}
      {rows.length === 0 ? (
        <p className="muted">No migrations yet: start one with the form.</p>
      ) : (
        <MigrationTable rows={rows} testid="migrations" rowTestid="migration-row" />
      )}
      {ended.length === RECENT && (
        <p className="muted">
          <Link href="/history">All migrations →</Link>
        </p>
      )}
    </>
  );
}
