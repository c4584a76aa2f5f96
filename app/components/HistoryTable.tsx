'use client';

/** Every migration this console ran, newest first (GET /api/migrations, then broadcasts). */
import Link from 'next/link';
import type { MigrationSummary } from '../../lib/contracts/console';
import { formatBytes, formatDateTime, formatDuration, formatGiBps, shortId } from '../lib/format';
import { useMigrations } from '../lib/hooks';
import { StateBadge } from './StateBadge';

export function HistoryTable() {
  const { items, error } = useMigrations();
  if (items === null) return error ? <p className="error-text">{error}</p> : <p className="muted">Loading history…</p>;
  if (items.length === 0) return <p className="muted">No migrations yet.</p>;
  return (
    <>
      {error && <p className="error-text">{error}</p>}
      <div className="table-wrap">
        <table className="table" data-testid="history">
          <thead>
            <tr>
              <th>migration</th>
              <th>started</th>
              <th>state</th>
              <th className="num">channels</th>
              <th>destination</th>
              <th className="num">RAM</th>
              <th className="num">duration</th>
              <th className="num">GiB/s</th>
              <th>error</th>
            </tr>
          </thead>
          <tbody>
            {items.map((m) => (
              <Row key={m.id} m={m} />
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

function Row({ m }: { m: MigrationSummary }) {
  return (
    <tr data-testid="history-row" data-id={m.id} data-state={m.state}>
      <td className="mono">
        <Link href={`/migrations/${encodeURIComponent(m.id)}`} title={m.id}>
          {shortId(m.id, 8, 4)}
        </Link>
      </td>
      <td className="mono">{formatDateTime(m.startedAt)}</td>
      <td>
        <StateBadge state={m.state} />
      </td>
      <td className="num">{m.channels}</td>
      <td className="mono">{m.destination}</td>
      <td className="num">{formatBytes(m.ramSize)}</td>
      <td className="num">{m.totalTimeMs === null ? 'running' : formatDuration(m.totalTimeMs)}</td>
      <td className="num">{formatGiBps(m.throughput)}</td>
      <td className="mono code" title={m.errorMessage ?? undefined}>
        {m.errorCode ?? ''}
      </td>
    </tr>
  );
}
