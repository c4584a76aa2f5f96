/** Why a migration failed: code, channel, peer, expected vs received side by side, the message. */
import { likelyCause } from '../../lib/causes';
import { formatOffset } from '../../lib/format';
import { comparable, diffSegments } from '../../lib/diff';
import type { RejectionEvent, SerializedError } from '../../lib/live-model';

/** `text` with the characters that differ from `other` marked (when the two are comparable). */
export function Marked({ text, other, testId }: { text: string; other: string | null; testId: string }) {
  if (other === null || !comparable(text, other)) return <code data-testid={testId}>{text}</code>;
  return (
    <code data-testid={testId}>
      {diffSegments(text, other).map((s, i) => (s.differs ? <mark key={i}>{s.text}</mark> : <span key={i}>{s.text}</span>))}
    </code>
  );
}

export function FailurePanel({
  error,
  cancelled,
  cause: causeLine,
  hideVersus = false,
}: {
  error: SerializedError;
  cancelled: boolean;
  /** The code's generic hint unless given; null: none here (the diagnosis says it). */
  cause?: string | null;
  /** The diagnosis shows expected vs received itself (a UUID mismatch): not twice. */
  hideVersus?: boolean;
}) {
  const cause = causeLine === undefined ? likelyCause(error.code) : causeLine;
  return (
    <section className={cancelled ? 'failure cancelled' : 'failure'} data-testid="failure" data-code={error.code} aria-labelledby="failure-title">
      <h2 id="failure-title">
        {cancelled ? 'Cancelled' : 'Failure'} <span className="mono code" data-testid="failure-code">{error.code}</span>
        {error.channel !== null && (
          <>
            {' · '}channel <span className="mono" data-testid="failure-channel">{error.channel}</span>
          </>
        )}
        {error.peer && (
          <>
            {' · '}
            <span className="mono" data-testid="failure-peer">{error.peer}</span>
          </>
        )}
      </h2>
      {!hideVersus && (error.expected !== null || error.received !== null) && (
        <dl className="versus">
          <dt>expected</dt>
          <dd>{error.expected !== null ? <Marked text={error.expected} other={error.received} testId="expected" /> : '—'}</dd>
          <dt>received</dt>
          <dd>{error.received !== null ? <Marked text={error.received} other={error.expected} testId="received" /> : '—'}</dd>
        </dl>
      )}
      {error.missing && error.missing.length > 0 && (
        <p>
          missing channels: <span className="mono" data-testid="failure-missing">{error.missing.join(', ')}</span>
        </p>
      )}
      {error.field && (
        <p>
          field: <span className="mono">{error.field}</span>
        </p>
      )}
      <p className="message" data-testid="failure-message">
        {error.message}
      </p>
      {cause && <p className="cause">likely cause: {cause}</p>}
    </section>
  );
}

/** Connections a side refused: the destination's view of stray or bad channels. */
export function Rejections({ list, t0 }: { list: RejectionEvent[]; t0: number | null }) {
  if (list.length === 0) return null;
  return (
    <section className="panel" aria-labelledby="rejections-title">
      <h2 id="rejections-title">Refused connections</h2>
      <div className="table-wrap">
        <table className="table" data-testid="rejections">
          <thead>
            <tr>
              <th>at</th>
              <th>seen by</th>
              <th>code</th>
              <th className="num">channel</th>
              <th>peer</th>
              <th>message</th>
            </tr>
          </thead>
          <tbody>
            {list.map((r, i) => (
              <tr key={i} data-testid="rejection-row" data-code={r.code}>
                <td className="num">{t0 !== null ? formatOffset(r.time - t0) : ''}</td>
                <td>{r.role}</td>
                <td className="mono code">{r.code}</td>
                <td className="num">{r.channel ?? '—'}</td>
                <td className="mono">{r.peer ?? '—'}</td>
                <td>{r.message}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
