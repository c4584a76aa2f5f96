/**
 * Diagnosis (issue 4): why a migration failed or is struggling, at a glance. One line of
 * likely cause, then the evidence: UUIDs side by side with the differing characters marked,
 * duplicate claims with both connections, missing and out-of-range ids, stragglers, and the
 * handshake lines of the channels it points at (the channel grid's, not computed again).
 */
import { memo } from 'react';
import type { Diagnosis, Endpoint } from '../../lib/diagnosis';
import { formatIds } from '../../lib/diagnosis';
import type { ChannelRowView } from './ChannelGrid';
import { Marked } from './FailurePanel';

/** Handshake lines shown; the rest are in the channel grid (filter "failed"). */
const MAX_LINES = 16;
/** Items of each kind of evidence shown (a flood of refusals stays readable). */
const MAX_ITEMS = 8;

function endpoint(e: Endpoint | null): string {
  if (!e) return 'unknown';
  const parts: string[] = [];
  if (e.connection !== null) parts.push(`connection #${e.connection}`);
  if (e.peer) parts.push(`from ${e.peer}`);
  if (e.source !== null) parts.push(`(source channel ${e.source})`);
  return parts.length ? parts.join(' ') : 'a connection';
}

function More({ n, what }: { n: number; what: string }) {
  return n > 0 ? <li className="muted">… and {n} more {what}</li> : null;
}

export const DiagnosisPanel = memo(function DiagnosisPanel({ d, rows }: { d: Diagnosis; rows: readonly ChannelRowView[] }) {
  const byId = new Map<number, ChannelRowView>();
  for (const r of rows) byId.set(r.id, r);
  const lines = d.channels.slice(0, MAX_LINES);
  return (
    <section className="panel diagnosis" data-testid="diagnosis" aria-labelledby="diagnosis-title">
      <h2 id="diagnosis-title">Diagnosis</h2>
      <p className="likely-cause">
        <span className="label">likely cause</span>{' '}
        <span data-testid="likely-cause">{d.cause}</span>
        {d.injected && (
          <span className="lab-badge" data-testid="cause-injected" title="this fault was injected from the fault lab">
            injected: {d.injected}
          </span>
        )}
      </p>
      {d.advice && (
        <p className="advice">
          <span className="label">what to do</span> <span data-testid="advice">{d.advice}</span>
        </p>
      )}

      <ul className="evidence">
        {d.uuid.slice(0, MAX_ITEMS).map((u) => (
          <li key={u.key} data-testid="uuid-diff" data-channel={u.channel ?? undefined}>
            <span className="what">
              {u.claimed === null && u.channel === null ? 'main channel' : `channel ${u.channel ?? u.claimed}`}
              {u.connection !== null && ` · connection #${u.connection}`}
              {u.peer && <span className="mono"> · {u.peer}</span>}: UUID mismatch
            </span>
            <dl className="versus">
              <dt>expected</dt>
              <dd>
                <Marked text={u.expected} other={u.received} testId="uuid-expected" />
              </dd>
              <dt>received</dt>
              <dd>
                <Marked text={u.received} other={u.expected} testId="uuid-received" />
              </dd>
            </dl>
          </li>
        ))}
        <More n={d.uuid.length - MAX_ITEMS} what="UUID mismatches" />

        {d.duplicates.slice(0, MAX_ITEMS).map((dup) => (
          <li key={dup.channel} data-testid="duplicate" data-channel={dup.channel}>
            <span className="what">channel {dup.channel} claimed twice:</span>{' '}
            <span className="mono">
              {endpoint(dup.accepted)} <span className="ok">accepted</span>
              {dup.others.map((o, i) => (
                <span key={i}>
                  {' · '}
                  {endpoint(o)} <span className="bad">refused</span>
                </span>
              ))}
            </span>
          </li>
        ))}
        <More n={d.duplicates.length - MAX_ITEMS} what="duplicate ids" />

        {d.missing.length > 0 && (
          <li>
            <span className="what">missing {d.missing.length === 1 ? 'channel' : `channels (${d.missing.length})`}:</span>{' '}
            <span className="mono" data-testid="missing-ids">
              {formatIds(d.missing)}
            </span>
          </li>
        )}

        {d.outOfRange.slice(0, MAX_ITEMS).map((o) => (
          <li key={o.key} data-testid="out-of-range" data-claimed={o.claimed}>
            <span className="what">{o.channel !== null ? `channel ${o.channel}` : 'a connection'} claimed id</span>{' '}
            <span className="mono">
              <mark>{o.claimed}</mark> vs range {o.range}
            </span>
            {(o.connection !== null || o.peer) && (
              <span className="muted mono">
                {' '}
                ({o.connection !== null ? `connection #${o.connection}` : ''}
                {o.peer ? ` from ${o.peer}` : ''})
              </span>
            )}
          </li>
        ))}
        <More n={d.outOfRange.length - MAX_ITEMS} what="out-of-range ids" />

        {d.stragglers.length > 0 && (
          <li data-testid="diagnosis-stragglers">
            <span className="what">straggler{d.stragglers.length === 1 ? '' : 's'}:</span>{' '}
            <span className="mono">
              {d.stragglers
                .slice(0, MAX_ITEMS)
                .map((s) => `channel ${s.channel} holds sync ${s.round}`)
                .join(' · ')}
              {d.stragglers.length > MAX_ITEMS && ` … and ${d.stragglers.length - MAX_ITEMS} more`}
            </span>
          </li>
        )}
      </ul>

      {lines.length > 0 && (
        <div className="table-wrap">
          <table className="table handshakes" data-testid="diagnosis-handshakes">
            <thead>
              <tr>
                <th className="num">#</th>
                <th>state</th>
                <th>handshake (source)</th>
                {/* In QEMU mode the relay checked each handshake as it forwarded it. */}
                <th>{d.seenBy}</th>
                <th>error</th>
              </tr>
            </thead>
            <tbody>
              {lines.map((id) => {
                const r = byId.get(id);
                return (
                  <tr key={id} data-testid="diagnosis-channel" data-channel={id}>
                    <td className="num">{id}</td>
                    <td>{r ? <span className={`state ch-${r.state}`}>{r.state}</span> : '—'}</td>
                    <td className="mono">{r?.handshake ?? '—'}</td>
                    <td className="mono">{d.destinationSaw.get(id) ?? '—'}</td>
                    <td className="mono code" title={r?.errorMessage ?? undefined}>
                      {r?.errorCode ?? ''}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          {d.channels.length > lines.length && (
            <p className="muted">
              {d.channels.length - lines.length} more channels: see the channel grid (filter “failed”).
            </p>
          )}
        </div>
      )}
    </section>
  );
});
