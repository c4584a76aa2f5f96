/**
 * QEMU mode: what each QEMU itself says of the migration (QMP query-migrate), side by side,
 * beside the relay's per-channel view. Statuses and error-desc are QEMU's words, shown as
 * they are; figures are QEMU's, only put in the console's units.
 */
import { memo } from 'react';
import type { QemuFigures } from '../../../lib/contracts';
import { formatBytes, formatCount, formatDuration, formatRate } from '../../lib/format';
import type { QemuSide } from '../../lib/live-model';
import { StateBadge } from '../StateBadge';

interface Row {
  key: string;
  label: string;
  /** what QEMU calls it, for the tooltip */
  qmp: string;
  value: (f: QemuFigures) => number | null;
  format: (n: number | null) => string;
  /** the exact number on hover (a count or a byte figure, rounded for display) */
  exact?: boolean;
}

const ROWS: Row[] = [
  { key: 'total', label: 'total time', qmp: 'total-time', value: (f) => f.totalTimeMs, format: formatDuration },
  { key: 'setup', label: 'setup', qmp: 'setup-time', value: (f) => f.setupTimeMs, format: formatDuration },
  { key: 'downtime', label: 'downtime', qmp: 'downtime', value: (f) => f.downtimeMs, format: formatDuration },
  { key: 'expected-downtime', label: 'expected downtime', qmp: 'expected-downtime', value: (f) => f.expectedDowntimeMs, format: formatDuration },
  { key: 'ram', label: 'RAM', qmp: 'ram.total', value: (f) => f.ramTotal, format: formatBytes, exact: true },
  { key: 'transferred', label: 'transferred', qmp: 'ram.transferred', value: (f) => f.transferred, format: formatBytes, exact: true },
  { key: 'multifd', label: 'multifd bytes', qmp: 'ram.multifd-bytes', value: (f) => f.multifdBytes, format: formatBytes, exact: true },
  { key: 'remaining', label: 'remaining', qmp: 'ram.remaining', value: (f) => f.remaining, format: formatBytes, exact: true },
  { key: 'normal', label: 'normal pages', qmp: 'ram.normal', value: (f) => f.normalPages, format: formatCount, exact: true },
  { key: 'zero', label: 'zero pages', qmp: 'ram.duplicate', value: (f) => f.zeroPages, format: formatCount, exact: true },
  { key: 'syncs', label: 'dirty syncs', qmp: 'ram.dirty-sync-count', value: (f) => f.dirtySyncCount, format: formatCount },
  // QEMU's ram.mbps is megabits (10^6 bits) per second; the console speaks bytes/s.
  { key: 'throughput', label: 'throughput', qmp: 'ram.mbps (Mbit/s)', value: (f) => f.mbps, format: (mbps) => formatRate(mbps === null ? null : (mbps * 1e6) / 8), exact: true },
];

const SIDES = ['source', 'destination'] as const;

interface Props {
  source: QemuSide | null;
  destination: QemuSide | null;
  sourceQmp: string | null;
  destinationQmp: string | null;
  relay: string | null;
  recordDir: string | null;
}

export const QemuPanel = memo(function QemuPanel({ source, destination, sourceQmp, destinationQmp, relay, recordDir }: Props) {
  const sides = { source, destination };
  const qmp = { source: source?.qmp || sourceQmp, destination: destination?.qmp || destinationQmp };
  const errors = SIDES.filter((k) => sides[k]?.figures.errorDesc);
  // QEMU's destination, and a QEMU that failed, answer with their status alone: say so once.
  const statusOnly = SIDES.filter((k) => sides[k] && ROWS.every((r) => r.value(sides[k]!.figures) === null));
  return (
    <section className="panel qemu-panel" data-testid="qemu-panel" aria-labelledby="qemu-title">
      <h2 id="qemu-title">QEMU&apos;s own figures</h2>
      <p className="muted">
        query-migrate on each QEMU, as it answered; the channel grid is the relay&apos;s view of the same traffic
        {relay && (
          <>
            {' '}
            (relay <span className="mono" data-testid="qemu-relay">{relay}</span>)
          </>
        )}
        .
      </p>
      <div className="table-wrap">
        <table className="table qemu-figures" data-testid="qemu-figures">
          <thead>
            <tr>
              <th scope="col" />
              {SIDES.map((k) => (
                <th key={k} scope="col" className="num">
                  {k} <span className="mono muted qmp">{qmp[k] ?? '—'}</span>
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            <tr>
              <th scope="row">status</th>
              {SIDES.map((k) => (
                <td key={k} className="num">
                  {sides[k] ? <StateBadge state={sides[k]!.figures.status} testId={`qemu-status-${k}`} /> : <span className="muted" data-testid={`qemu-status-${k}`}>not heard yet</span>}
                </td>
              ))}
            </tr>
            {ROWS.map((r) => (
              <tr key={r.key} data-testid={`qemu-row-${r.key}`}>
                <th scope="row" title={`QEMU's ${r.qmp}`}>
                  {r.label}
                </th>
                {SIDES.map((k) => {
                  const n = sides[k] ? r.value(sides[k]!.figures) : null;
                  return (
                    <td key={k} className="num" title={r.exact && n !== null ? String(n) : undefined}>
                      {r.format(n)}
                    </td>
                  );
                })}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {statusOnly.length > 0 && (
        <p className="muted" data-testid="qemu-status-only">
          {statusOnly.join(' and ')} QEMU reported {statusOnly.length === 1 ? 'its status' : 'their status'} only.
        </p>
      )}
      {errors.map((k) => (
        <p key={k} className="qemu-error" data-testid="qemu-error" data-side={k}>
          <span className="label">{k} QEMU says</span> <code>{sides[k]!.figures.errorDesc}</code>
        </p>
      ))}
      {recordDir && (
        <p className="muted">
          recorded for <code>multifd inspect</code> in <span className="mono" data-testid="qemu-record-dir">{recordDir}</span>
        </p>
      )}
    </section>
  );
});
