'use client';

/** One table of migration summaries: the console's list and /history both show it. */
import Link from 'next/link';
import type { MigrationSummary } from '../../lib/contracts/console';
import { formatBytes, formatDateTime, formatDuration, formatRate, shortId } from '../lib/format';
import { StateBadge } from './StateBadge';

export function MigrationTable({ rows, testid, rowTestid }: { rows: MigrationSummary[]; testid: string; rowTestid: string }) {
  return (
    <div className="table-wrap">
      <table className="table" data-testid={testid}>
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
            <Row key={m.id} m={m} testid={rowTestid} />
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Row({ m, testid }: { m: MigrationSummary; testid: string }) {
  return (
    <tr data-testid={testid} data-id={m.id} data-state={m.state}>
      <td className="mono">
        <Link href={`/migrations/${encodeURIComponent(m.id)}`} title={m.id}>
          {shortId(m.id, 8, 4)}
        </Link>
      </td>
      <td>
        <StateBadge state={m.state} />
        {(m.inject ?? []).length > 0 && (
          // An injected failure is never to be read as a real one, in history either.
          <span className="lab-badge" data-testid="row-injected" title={`faults injected from the fault lab: ${m.inject.join(', ')}`}>
            fault lab: {m.inject.length <= 2 ? m.inject.join(', ') : `${m.inject.slice(0, 2).join(', ')} +${m.inject.length - 2}`}
          </span>
        )}
      </td>
      <td className="num">{m.channels}</td>
      <td className="mono" title={m.destination}>
        {/* Between two agents, the hosts say more than the address. */}
        {m.agents ? `${m.agents.source} → ${m.agents.destination}` : m.destination}
      </td>
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
