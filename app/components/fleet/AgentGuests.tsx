'use client';

/** An agent's guests, as it reported them (created there or arrived by a migration), with Stop. */
import Link from 'next/link';
import type { AgentView, GuestSummary } from '../../../lib/contracts/console';
import { api } from '../../lib/api';
import { shown } from '../../lib/fleet';
import { formatBytes, shortId } from '../../lib/format';
import { useAction } from '../../lib/use-action';
import { StateBadge } from '../StateBadge';

export function AgentGuests({ agent: a }: { agent: AgentView }) {
  // The answer needs no applying: the agent's 'guests:changed' reaches this list through the console.
  const stop = useAction();
  const guests = shown(a.guests);
  return (
    <>
      {stop.error && (
        <p className="error-text" role="alert" data-testid="agent-guests-error">
          {stop.error}
        </p>
      )}
      {guests.length === 0 ? (
        <p className="muted" data-testid="no-agent-guests">
          No guests on {a.name}.
        </p>
      ) : (
        <div className="table-wrap">
          <table className="table" data-testid="agent-guests">
            <thead>
              <tr>
                <th>guest</th>
                <th>uuid</th>
                <th className="num">RAM</th>
                <th>state</th>
                <th>migrating</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {guests.map((g) => (
                <Row key={g.uuid} g={g} stopping={stop.pending.has(g.uuid)} canStop={a.state === 'up'} onStop={() => {
                    if (!window.confirm(`Stop guest ${g.name} (${g.uuid}) on ${a.name}? Its RAM is released and it cannot run again.`)) return;
                    void stop.run(g.uuid, () => api.stopAgentGuest(a.name, g.uuid));
                  }}
                />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

function Row({ g, stopping, canStop, onStop }: { g: GuestSummary; stopping: boolean; canStop: boolean; onStop: () => void }) {
  return (
    <tr data-testid="agent-guest-row" data-uuid={g.uuid} data-name={g.name} data-state={g.state} data-migrating={g.migrating ?? ''}>
      <td>{g.name}</td>
      <td className="mono" title={g.uuid}>
        {shortId(g.uuid)}
      </td>
      <td className="num">{formatBytes(g.ramSize)}</td>
      <td>
        <StateBadge state={g.state} />
      </td>
      <td className="mono">
        {g.migrating ? (
          <Link href={`/migrations/${encodeURIComponent(g.migrating)}`} title={g.migrating} data-testid="agent-guest-migration">
            {shortId(g.migrating, 8, 4)}
          </Link>
        ) : (
          ''
        )}
      </td>
      <td>
        {g.state === 'running' && (
          <button
            type="button"
            className="small"
            data-testid="stop-agent-guest"
            // Stopping a guest under migration would fail the migration: cancel that first.
            disabled={stopping || !canStop || g.migrating !== null}
            title={g.migrating ? 'in a migration: cancel it first' : undefined}
            onClick={onStop}
          >
            {stopping ? 'Stopping…' : 'Stop'}
          </button>
        )}
      </td>
    </tr>
  );
}
