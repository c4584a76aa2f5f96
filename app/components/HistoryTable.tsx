'use client';

/** Every migration this console ran, newest first (GET /api/migrations, then broadcasts). */
import { useMigrations } from '../lib/hooks';
import { MigrationTable } from './MigrationTable';

export function HistoryTable() {
  const { items, error } = useMigrations();
  if (items === null) return error ? <p className="error-text">{error}</p> : <p className="muted">Loading history…</p>;
  if (items.length === 0) return <p className="muted">No migrations yet.</p>;
  return (
    <>
      {error && <p className="error-text">{error}</p>}
      <MigrationTable rows={items} testid="history" rowTestid="history-row" />
    </>
  );
}
