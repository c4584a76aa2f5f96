/** One row per pre-copy round (from `round` events), then the switchover's final pass. */
import { formatBytes, formatCount, formatDuration, formatRate } from '../../lib/format';
import { PAGE_SIZE, type RoundEvent, type SwitchoverEvent } from '../../lib/live-model';

interface Props {
  rounds: RoundEvent[];
  switchover: SwitchoverEvent | null;
  downtimeMs: number | null;
}

export function RoundTable({ rounds, switchover, downtimeMs }: Props) {
  if (rounds.length === 0 && !switchover) return null;
  return (
    <section className="panel" aria-labelledby="rounds-title">
      <h2 id="rounds-title">Rounds</h2>
      <div className="table-wrap">
        <table className="table" data-testid="rounds">
          <thead>
            <tr>
              <th className="num">round</th>
              <th className="num">pages</th>
              <th className="num">bytes</th>
              <th className="num">duration</th>
              <th className="num">bandwidth</th>
              <th className="num">dirtied</th>
              <th className="num">dirty rate</th>
              <th className="num">expected downtime</th>
            </tr>
          </thead>
          <tbody>
            {rounds.map((r) => (
              <tr key={r.round} data-testid="round-row" data-round={r.round}>
                <td className="num">{r.round}</td>
                <td className="num" title={`${r.pages} pages, ${r.zeroPages} zero pages`}>
                  {formatCount(r.pages)}
                  {r.zeroPages > 0 && <span className="muted"> +{formatCount(r.zeroPages)} zero</span>}
                </td>
                <td className="num">{formatBytes(r.bytes)}</td>
                <td className="num">{formatDuration(r.durationMs)}</td>
                <td className="num">{formatRate(r.bandwidth)}</td>
                <td className="num">{formatBytes(r.dirtyPages * PAGE_SIZE)}</td>
                <td className="num">{formatRate(r.dirtyRate)}</td>
                <td className="num">{formatDuration(r.expectedDowntimeMs)}</td>
              </tr>
            ))}
            {switchover && (
              <tr data-testid="round-row" data-round="switchover">
                <td className="num">switchover</td>
                <td className="num" colSpan={4}>
                  final pass of {formatBytes(switchover.remaining)} after round {switchover.round} ({switchover.reason === 'downtime' ? 'expected downtime under the limit' : 'round limit reached'})
                </td>
                <td className="num" colSpan={2}>
                  limit {formatDuration(switchover.downtimeLimitMs)}
                </td>
                <td className="num">
                  {formatDuration(switchover.expectedDowntimeMs)}
                  {downtimeMs !== null && <span className="muted"> (actual {formatDuration(downtimeMs)})</span>}
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
    </section>
  );
}
