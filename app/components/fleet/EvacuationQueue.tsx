'use client';

/**
 * An evacuation as it goes: one row per guest in queue order (queued, migrating, completed,
 * failed or skipped; where it went; its migration's live view; why it failed), a summary
 * line, and Cancel while it runs (queued guests are skipped; migrations already running
 * finish). Live by 'evacuations:changed'.
 */
import Link from 'next/link';
import type { EvacuationItem, EvacuationView } from '../../../lib/contracts/console';
import { api } from '../../lib/api';
import { formatBytes, formatDuration, shortId } from '../../lib/format';
import { useAction } from '../../lib/use-action';
import { StateBadge } from '../StateBadge';

export function EvacuationQueue({ evacuation: e, onChanged }: { evacuation: EvacuationView; onChanged: (e: EvacuationView) => void }) {
  const cancel = useAction();
  async function onCancel() {
    const v = await cancel.run(e.id, () => api.cancelEvacuation(e.id));
    if (v) onChanged(v);
  }
  return (
    <div className="evacuation" data-testid="evacuation" data-id={e.id} data-state={e.state}>
      <div className="panel-head">
        <h3>
          Evacuation <StateBadge state={e.state} testId="evacuation-state" />
        </h3>
        {e.state === 'running' && (
          <button type="button" className="small danger" data-testid="cancel-evacuation" disabled={cancel.pending.has(e.id)} onClick={onCancel}>
            {cancel.pending.has(e.id) ? 'Cancelling…' : 'Cancel'}
          </button>
        )}
      </div>
      <p className="mono" data-testid="evacuation-summary">
        {summaryLine(e)}
      </p>
      {cancel.error && (
        <p className="error-text" role="alert">
          {cancel.error}
        </p>
      )}
      {e.items.length === 0 ? (
        <p className="muted">No running guest to move.</p>
      ) : (
        <div className="table-wrap">
          <table className="table" data-testid="evacuation-queue">
            <thead>
              <tr>
                <th>guest</th>
                <th className="num">RAM</th>
                <th>state</th>
                <th>destination</th>
                <th>migration</th>
                <th className="num">took</th>
                <th>error</th>
              </tr>
            </thead>
            <tbody>
              {e.items.map((it) => (
                <Row key={it.guest} it={it} />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

/** "3 of 3 completed · 0 failed · 0 skipped …": counts first, then what bounded them. */
function summaryLine(e: EvacuationView): string {
  const s = e.summary;
  const parts = [`${s.completed} of ${e.items.length} completed`, `${s.failed} failed`, `${s.skipped} skipped`];
  if (s.migrating > 0) parts.push(`${s.migrating} migrating`);
  if (s.queued > 0) parts.push(`${s.queued} queued`);
  const took = e.endedAt !== null ? ` in ${formatDuration(e.endedAt - e.startedAt)}` : '';
  return `${e.state}${took}: ${parts.join(' · ')} — at most ${e.peakInFlight} at once (limits: ${e.limits.maxInFlight} in flight, ${e.limits.maxOutboundPerHost} out of this host)`;
}

function Row({ it }: { it: EvacuationItem }) {
  return (
    <tr data-testid="evacuation-row" data-guest={it.guest} data-state={it.state}>
      <td>
        {it.name} <span className="mono muted" title={it.guest}>{shortId(it.guest)}</span>
      </td>
      <td className="num">{formatBytes(it.ramSize)}</td>
      <td>
        <StateBadge state={it.state} />
      </td>
      <td className="mono">{it.destination ?? '—'}</td>
      <td className="mono">
        {it.migrationId ? (
          <Link href={`/migrations/${encodeURIComponent(it.migrationId)}`} title={it.migrationId} data-testid="evacuation-migration">
            {shortId(it.migrationId, 8, 4)}
          </Link>
        ) : (
          '—'
        )}
      </td>
      <td className="num">{it.startedAt !== null && it.endedAt !== null ? formatDuration(it.endedAt - it.startedAt) : ''}</td>
      <td className="error-text wrap">{it.error ?? ''}</td>
    </tr>
  );
}
