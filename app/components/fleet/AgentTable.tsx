'use client';

/**
 * The fleet's agents, one row each: whether the console can reach it (with why not), when it
 * last answered, where migrations arrive, its guests and the migrations it is in. Remove
 * forgets an agent (and its token) here; the agent itself runs on.
 */
import { useEffect, useState } from 'react';
import type { AgentView } from '../../../lib/contracts/console';
import { api } from '../../lib/api';
import { shown } from '../../lib/fleet';
import { formatClock, formatDateTime, formatDuration } from '../../lib/format';
import type { Listed } from '../../lib/hooks';
import { useAction } from '../../lib/use-action';
import { StateBadge } from '../StateBadge';

export function AgentTable({ agents }: { agents: Listed<AgentView> }) {
  const remove = useAction();
  const { items, error } = agents;

  async function onRemove(name: string) {
    // Removing forgets the agent here; its guests and migrations go on on its host.
    if (!window.confirm(`Remove agent ${name} from this console? Its guests keep running on its host; add it again to see them.`)) return;
    if ((await remove.run(name, () => api.removeAgent(name))) !== undefined) agents.drop(name);
  }

  if (items === null) return error ? <p className="error-text">{error}</p> : <p className="muted">Loading agents…</p>;
  return (
    <>
      {(error || remove.error) && (
        <p className="error-text" role="alert">
          {remove.error ?? error}
        </p>
      )}
      {items.length === 0 ? (
        <p className="muted" data-testid="no-agents">
          No agents yet: start <code>multifd agent</code> on a host and add it with the form.
        </p>
      ) : (
        <div className="table-wrap">
          <table className="table" data-testid="agents">
            <thead>
              <tr>
                <th>agent</th>
                <th>state</th>
                <th>last seen</th>
                <th>migration address</th>
                <th className="num">guests</th>
                <th className="num">in flight</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {items.map((a) => (
                <Row key={a.name} a={a} removing={remove.pending.has(a.name)} onRemove={onRemove} />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

function Row({ a, removing, onRemove }: { a: AgentView; removing: boolean; onRemove: (name: string) => void }) {
  return (
    <tr data-testid="agent-row" data-agent={a.name} data-state={a.state}>
      <td>
        <a href={`#agent-${a.name}`} className="mono">
          {a.name}
        </a>
        <div className="mono muted small-text">{a.url}</div>
      </td>
      <td className="agent-state">
        <StateBadge state={a.state} testId="agent-state" />
        {a.state !== 'up' && a.error && (
          <div className="error-text small-text wrap" data-testid="agent-error">
            {a.error}
          </div>
        )}
      </td>
      <td className="mono">
        <LastSeen at={a.lastSeen} live={a.state === 'up'} />
      </td>
      <td className="mono">{a.migrationAddress ?? '—'}</td>
      <td className="num" data-testid="agent-guest-count">
        {shown(a.guests).length}
      </td>
      <td className="num" data-testid="agent-in-flight">
        {a.inFlight}
      </td>
      <td>
        <button type="button" className="small" data-testid="remove-agent" disabled={removing} onClick={() => onRemove(a.name)}>
          {removing ? 'Removing…' : 'Remove'}
        </button>
      </td>
    </tr>
  );
}

/**
 * When the agent last answered. While it is up that is about now (its socket is live); once
 * it is not, how long ago, counting.
 */
function LastSeen({ at, live }: { at: number | null; live: boolean }) {
  const [now, setNow] = useState<number | null>(null);
  useEffect(() => {
    if (live || at === null) return;
    setNow(Date.now());
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [live, at]);
  if (at === null) return <span className="muted">never</span>;
  // Up: the console hears it on every poll; a fixed clock time would look stale.
  if (live) {
    return (
      <span title={`answering; last heard ${formatDateTime(at)}`} data-testid="agent-last-seen">
        now
      </span>
    );
  }
  return (
    <span title={formatDateTime(at)} data-testid="agent-last-seen">
      {formatClock(at)}
      {!live && now !== null && <span className="muted"> ({formatDuration(Math.max(0, Math.round((now - at) / 1000) * 1000))} ago)</span>}
    </span>
  );
}
