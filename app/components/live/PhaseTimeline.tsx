/** setup ▸ round 1 ▸ … ▸ switchover ▸ completed, each with when it began and how long it took. */
import { formatDuration, formatOffset } from '../../lib/format';
import type { PhaseStep } from '../../lib/live-model';

/** With many rounds, the first few and the last few tell the story. */
const HEAD = 3;
const TAIL = 4;

export function PhaseTimeline({ steps, t0, now }: { steps: PhaseStep[]; t0: number | null; now: number }) {
  const rounds = steps.filter((s) => s.key.startsWith('round-'));
  let shown: (PhaseStep | { key: 'gap'; hidden: number })[] = steps;
  if (rounds.length > HEAD + TAIL + 1) {
    const hide = new Set(rounds.slice(HEAD, rounds.length - TAIL).map((s) => s.key));
    shown = [];
    let gapAdded = false;
    for (const s of steps) {
      if (!hide.has(s.key)) shown.push(s);
      else if (!gapAdded) {
        shown.push({ key: 'gap', hidden: hide.size });
        gapAdded = true;
      }
    }
  }
  return (
    <ol className="phases" data-testid="phases" aria-label="phases">
      {shown.map((s) =>
        'hidden' in s ? (
          <li key="gap" className="phase phase-gap">
            <span className="phase-label">… {s.hidden} rounds</span>
          </li>
        ) : (
          <li key={s.key} className={`phase phase-${s.status}`} data-testid="phase" data-phase={s.key} data-status={s.status}>
            <span className="phase-label">{s.label}</span>
            <span className="phase-time mono">
              {s.start !== null && t0 !== null ? formatOffset(s.start - t0) : '\u00a0'}
              {s.start !== null && s.status !== 'pending' && !isEnd(s) && (
                <> · {formatDuration((s.end ?? now) - s.start)}</>
              )}
            </span>
            {s.note && <span className="phase-note">{s.note}</span>}
          </li>
        ),
      )}
    </ol>
  );
}

/** The terminal step is a moment, not a span. */
const isEnd = (s: PhaseStep) => s.key === 'completed' || s.key === 'failed' || s.key === 'cancelled';
