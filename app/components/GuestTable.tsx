'use client';

/** Guests this host runs (created here or arrived by a migration), updated by `guests:changed`. */
import Link from 'next/link';
import { useState } from 'react';
import type { GuestSummary } from '../../lib/contracts/console';
import { ApiError, api } from '../lib/api';
import { formatBytes, shortId } from '../lib/format';
import { migrateGuest } from '../lib/guest-events';
import { useGuests } from '../lib/hooks';
import { StateBadge } from './StateBadge';

export function GuestTable() {
  const { items, error, replace } = useGuests();
  const [stopping, setStopping] = useState<ReadonlySet<string>>(new Set());
  const [actionError, setActionError] = useState<string | null>(null);
  const [stoppingIdle, setStoppingIdle] = useState(false);

  async function stop(uuid: string) {
    const g = items?.find((x) => x.uuid === uuid);
    if (!window.confirm(`Stop guest ${g?.name ?? ''} (${uuid})? Its RAM is released and it cannot run again.`)) return;
    setActionError(null);
    setStopping((s) => new Set(s).add(uuid));
    try {
      replace(await api.stopGuest(uuid));
    } catch (err) {
      setActionError(err instanceof ApiError ? `${err.code}: ${err.message}` : String(err));
    } finally {
      setStopping((s) => {
        const n = new Set(s);
        n.delete(uuid);
        return n;
      });
    }
  }

  async function stopIdle() {
    const idle = (items ?? []).filter((g) => g.state !== 'stopped' && g.migrating === null);
    if (!window.confirm(`Stop ${idle.length} idle guest${idle.length === 1 ? '' : 's'} (every guest not migrating)? Their RAM is released.`)) return;
    setActionError(null);
    setStoppingIdle(true);
    try {
      for (const g of await api.stopIdleGuests()) replace(g);
    } catch (err) {
      setActionError(err instanceof ApiError ? `${err.code}: ${err.message}` : String(err));
    } finally {
      setStoppingIdle(false);
    }
  }

  if (items === null) return error ? <p className="error-text">{error}</p> : <p className="muted">Loading guests…</p>;
  // A stopped guest is gone from this host (the server lists only the others).
  const guests = items.filter((g) => g.state !== 'stopped');
  const idleCount = guests.filter((g) => g.migrating === null).length;
  return (
    <>
      {idleCount > 0 && (
        <div className="actions">
          <button type="button" className="small" data-testid="stop-idle-guests" disabled={stoppingIdle} onClick={() => void stopIdle()}>
            {stoppingIdle ? 'Stopping…' : `Stop idle guests (${idleCount})`}
          </button>
        </div>
      )}
      {(error || actionError) && (
        <p className="error-text" role="alert">
          {actionError ?? error}
        </p>
      )}
      {guests.length === 0 ? (
        <p className="muted">No guests on this host. Starting a migration creates one.</p>
      ) : (
        <div className="table-wrap">
          <table className="table" data-testid="guests">
            <thead>
              <tr>
                <th>guest</th>
                <th>uuid</th>
                <th className="num">RAM</th>
                <th>state</th>
                <th>workload</th>
                <th>origin</th>
                <th>migrating</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {guests.map((g) => (
                <Row key={g.uuid} g={g} stopping={stopping.has(g.uuid)} onStop={stop} />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

function Row({ g, stopping, onStop }: { g: GuestSummary; stopping: boolean; onStop: (uuid: string) => void }) {
  return (
    <tr data-testid="guest-row" data-uuid={g.uuid} data-state={g.state} data-origin={g.origin}>
      <td>{g.name}</td>
      <td className="mono" title={g.uuid}>
        {g.uuid}
      </td>
      <td className="num">{formatBytes(g.ramSize)}</td>
      <td>
        <StateBadge state={g.state} />
      </td>
      <td className="mono">{g.workload}</td>
      <td>{g.origin}</td>
      <td className="mono">
        {g.migrating ? (
          <Link href={`/migrations/${encodeURIComponent(g.migrating)}`} title={g.migrating}>
            {shortId(g.migrating, 8, 4)}
          </Link>
        ) : (
          ''
        )}
      </td>
      <td className="row-actions">
        {g.state !== 'stopped' && g.migrating === null && (
          <button type="button" className="small" data-testid="migrate-guest" onClick={() => migrateGuest(g.uuid)} title="choose this guest in the new-migration form">
            Migrate
          </button>
        )}
        {g.state === 'running' && (
          <button type="button" className="small" data-testid="stop-guest" disabled={stopping} onClick={() => onStop(g.uuid)}>
            {stopping ? 'Stopping…' : 'Stop'}
          </button>
        )}
      </td>
    </tr>
  );
}
