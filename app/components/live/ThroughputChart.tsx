/**
 * Aggregate throughput over time as inline SVG: one band per channel, stacked, when there are
 * few enough to tell apart (STACK_MAX_CHANNELS), the aggregate area otherwise.
 */
import { memo } from 'react';
import { formatDuration, formatRate } from '../../lib/format';
import type { Sample } from '../../lib/live-model';

const W = 720;
const H = 140;

/** Golden-angle hues, alternating lightness: neighbours never look alike, 16 stay distinct. */
function bandColor(i: number): string {
  return `hsl(${Math.round((i * 137.508) % 360)} 60% ${i % 2 === 0 ? 48 : 64}%)`;
}

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const exp = Math.pow(2, Math.ceil(Math.log2(v)));
  // Steps of 1, 1.25, 1.5, 1.75 × a power of two: the axis label stays round in binary units.
  for (const f of [0.5, 0.625, 0.75, 0.875, 1]) if (v <= exp * f) return exp * f;
  return exp;
}

interface Props {
  samples: readonly Sample[];
  /** changes whenever `samples` (mutated in place) changed */
  stamp: string;
  channelCount: number;
  /** over: no more samples will come */
  ended: boolean;
}

export const ThroughputChart = memo(
  function ThroughputChart({ samples, ended }: Props) {
    if (samples.length < 2) {
      return (
        <section className="panel" aria-labelledby="chart-title">
          <h2 id="chart-title">Throughput</h2>
          <p className="muted">{ended ? 'No throughput was recorded.' : 'Waiting for samples…'}</p>
        </section>
      );
    }
    const t0 = samples[0].t;
    const t1 = samples[samples.length - 1].t;
    const span = Math.max(1, t1 - t0);
    const peak = niceMax(Math.max(...samples.map((s) => Math.max(s.total, s.perChannel ? s.perChannel.reduce((a, b) => a + b, 0) : 0))));
    const x = (t: number) => ((t - t0) / span) * W;
    const y = (v: number) => H - (Math.min(v, peak) / peak) * H;
    const stacked = samples.every((s) => s.perChannel !== null && s.perChannel.length === samples[0].perChannel!.length);
    const now = samples[samples.length - 1].total;

    let bands: { d: string; color: string }[] = [];
    if (stacked) {
      const n = samples[0].perChannel!.length;
      const below = samples.map(() => 0);
      for (let c = 0; c < n; c++) {
        const top = samples.map((s, i) => below[i] + s.perChannel![c]);
        let d = '';
        samples.forEach((s, i) => (d += `${i === 0 ? 'M' : 'L'}${x(s.t).toFixed(1)},${y(top[i]).toFixed(1)}`));
        for (let i = samples.length - 1; i >= 0; i--) d += `L${x(samples[i].t).toFixed(1)},${y(below[i]).toFixed(1)}`;
        d += 'Z';
        bands.push({ d, color: bandColor(c) });
        top.forEach((v, i) => (below[i] = v));
      }
    } else {
      let d = `M0,${H}`;
      for (const s of samples) d += `L${x(s.t).toFixed(1)},${y(s.total).toFixed(1)}`;
      d += `L${W},${H}Z`;
      bands = [{ d, color: 'var(--accent)' }];
    }
    let line = '';
    samples.forEach((s, i) => (line += `${i === 0 ? 'M' : 'L'}${x(s.t).toFixed(1)},${y(s.total).toFixed(1)}`));

    return (
      <section className="panel" aria-labelledby="chart-title">
        <div className="panel-head">
          <h2 id="chart-title">Throughput</h2>
          <span className="muted mono" data-testid="chart-head" title="bytes on the wire per second (after compression), over a 2 s window">
            {ended ? `ended · peak ${formatRate(Math.max(...samples.map((x) => x.total)))}` : `now ${formatRate(now)}`} · on the wire · {formatDuration(span)} ·{' '}
            {stacked ? 'channels stacked' : 'aggregate'}
          </span>
        </div>
        <div className="chart">
          <span className="axis-max mono">{formatRate(peak)}</span>
          <svg
            viewBox={`0 0 ${W} ${H}`}
            preserveAspectRatio="none"
            role="img"
            aria-label={`aggregate throughput over the last ${formatDuration(span)}, now ${formatRate(now)}`}
            data-testid="throughput-chart"
          >
            <line x1="0" y1={H / 2} x2={W} y2={H / 2} className="grid" />
            {bands.map((b, i) => (
              <path key={i} d={b.d} fill={b.color} fillOpacity={stacked ? 0.75 : 0.3} stroke="none" />
            ))}
            <path d={line} className="total-line" vectorEffect="non-scaling-stroke" />
          </svg>
          <div className="chart-axis mono muted" data-testid="chart-axis">
            <span>{ended ? 'start' : `−${formatDuration(span)}`}</span>
            <span>{ended ? `+${formatDuration(span)}` : 'now'}</span>
          </div>
        </div>
        {stacked && (
          <ul className="chart-legend mono" data-testid="chart-legend">
            {samples[0].perChannel!.map((_, c) => (
              <li key={c}>
                <span className="swatch" style={{ background: bandColor(c) }} aria-hidden="true" />
                ch{c}
              </li>
            ))}
          </ul>
        )}
      </section>
    );
  },
  (a, b) => a.stamp === b.stamp && a.channelCount === b.channelCount && a.ended === b.ended,
);
