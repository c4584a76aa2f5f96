'use client';

/** Live and recent migrations on this console, updated by `migrations:changed`. */
import Link from 'next/link';
import { TERMINAL_STATES } from '../../lib/contracts';
import type { MigrationSummary } from '../../lib/contracts/console';
import { formatBytes, formatDateTime, formatDuration, formatRate, shortId } from '../lib/format';
import { useMigrations } from '../lib/hooks';
import { StateBadge } from './StateBadge';

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
        <div className="table-wrap">
          <table className="table" data-testid="migrations">
            <thead>
              <tr>
                <th>migration</th>
                <th>state</th>
                <th className="num">channels</th>
                <th>destination</th>
                <th className="num">RAM</th>
                <th>started</th>
                <th className="num">took</th>
                <th className="num">throughput</th>
                <th>error</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((m) => (
                <Row key={m.id} m={m} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      {ended.length === RECENT && (
        <p className="muted">
          <Link href="/history">All migrations →</Link>
        </p>
      )}
    </>
  );
}

function Row({ m }: { m: MigrationSummary }) {
  return (
    <tr data-testid="migration-row" data-id={m.id} data-state={m.state}>
      <td className="mono">
        <Link href={`/migrations/${encodeURIComponent(m.id)}`} title={m.id}>
          {shortId(m.id, 8, 4)}
        </Link>
      </td>
      <td>
        <StateBadge state={m.state} />
      </td>
      <td className="num">{m.channels}</td>
      <td className="mono">{m.destination}</td>
      <td className="num">{formatBytes(m.ramSize)}</td>
      <td className="mono">{formatDateTime(m.startedAt)}</td>
      <td className="num">{m.totalTimeMs === null ? 'running' : formatDuration(m.totalTimeMs)}</td>
      <td className="num">{formatRate(m.throughput)}</td>
      <td className="mono code" title={m.errorMessage ?? undefined}>
        {m.errorCode ?? ''}
      </td>
    </tr>
  );
}
