'use client';

/**
 * One row per channel: state, handshake steps, bytes, pages, throughput and its sparkline,
 * error, and when the other side is known (the embedded destination, or the destination agent
 * of a fleet migration) what it saw of the same channel: what was sent beside what arrived. Rows are memoised on a flat view of their values, so a frame re-renders only the
 * channels that changed: 255 channels at 4 frames a second stay cheap.
 */
import { memo, useState } from 'react';
import type { ChannelState } from '../../../lib/contracts';
import { formatBytes, formatCount, formatOffset, formatRate } from '../../lib/format';
import { isChannelFailed, SPARK_SAMPLES, type ChannelSnapshot, type LiveModel } from '../../lib/live-model';

export interface ChannelRowView {
  id: number;
  state: ChannelState;
  slow: boolean;
  handshake: string;
  bytes: number;
  pages: number;
  zeroPages: number;
  /** null: the channel carries nothing any more (closed, failed, or the migration ended). */
  throughput: number | null;
  /** the sparkline's path, on a scale shared by every channel */
  spark: string;
  failed: boolean;
  errorCode: string | null;
  errorMessage: string | null;
  note: string | null;
  /** What protects the channel ("TLSv1.3 … x509"), null in clear. */
  security: string | null;
  /** Page bytes / payload bytes on the wire, when the migration compresses and pages have moved. */
  ratio: number | null;
  /** The same channel as the other side saw it (the destination's accept and bytes), when there is one. */
  peer: { state: ChannelState; bytes: number } | null;
}

const SPARK_W = 90;
const SPARK_H = 18;

function handshakeText(c: ChannelSnapshot, t0: number): string {
  const at = (t: number) => formatOffset(t - t0);
  const steps: string[] = [];
  if (c.times.connecting !== null) steps.push(`connect ${at(c.times.connecting)}`);
  if (c.times.secured != null) steps.push(`tls ${at(c.times.secured)}`);
  if (c.times.handshakeSent !== null) steps.push(`sent ${at(c.times.handshakeSent)}`);
  if (c.times.accepted !== null) steps.push(`accepted ${at(c.times.accepted)}`);
  if (c.times.rejected !== null) steps.push(`rejected ${at(c.times.rejected)}`);
  return steps.length ? steps.join(' · ') : '—';
}

function sparkPath(values: readonly number[] | undefined, max: number): string {
  if (!values || values.length === 0 || max <= 0) return '';
  const step = SPARK_W / (SPARK_SAMPLES - 1);
  const x0 = SPARK_W - (values.length - 1) * step;
  let d = '';
  for (let i = 0; i < values.length; i++) {
    const x = x0 + i * step;
    const y = SPARK_H - 1 - (Math.min(values[i], max) / max) * (SPARK_H - 2);
    d += `${i === 0 ? 'M' : 'L'}${x.toFixed(1)},${y.toFixed(1)}`;
  }
  return d;
}

export function channelViews(m: LiveModel): ChannelRowView[] {
  const s = m.snapshot;
  if (!s) return [];
  let max = 0;
  for (const a of m.spark.values()) for (const v of a) if (v > max) max = v;
  // `slow` is the last tick's: once a migration completed or was cancelled no sync waits.
  const live = s.state !== 'completed' && s.state !== 'cancelled';
  const peers = new Map((m.peerSide?.channels ?? []).map((c) => [c.id, c]));
  const compressed = s.compression !== undefined && s.compression !== 'none';
  return s.channels.map((c) => ({
    id: c.id,
    state: c.state,
    slow: c.slow && live,
    handshake: handshakeText(c, s.startedAt),
    bytes: c.bytes,
    pages: c.pages,
    zeroPages: c.zeroPages,
    // A "now" for a channel that ended would be its last window's, shown for ever.
    throughput: !terminalState(s.state) && c.state !== 'closed' && c.state !== 'failed' && c.state !== 'rejected' ? c.throughput : null,
    spark: sparkPath(m.spark.get(c.id), max),
    failed: isChannelFailed(c),
    errorCode: c.error?.code ?? null,
    errorMessage: c.error?.message ?? null,
    // A slow channel holds up the SYNC that ends this round.
    note: c.slow && live ? `holds sync ${s.round}` : null,
    peer: peers.has(c.id) ? { state: peers.get(c.id)!.state, bytes: peers.get(c.id)!.bytes } : null,
    security: c.security ?? null,
    ratio: compressed && c.payloadBytes ? (c.pages * 4096) / c.payloadBytes : null,
  }));
}

type Filter = 'all' | 'failed' | 'slow';

const CHUNK = 32;

function chunks<T>(list: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += CHUNK) out.push(list.slice(i, i + CHUNK));
  return out;
}

/** Fixed widths: each table is laid out from these, not from its rows' content. */
function Cols({ peer, ratio }: { peer: boolean; ratio: boolean }) {
  return (
    <colgroup>
      <col style={{ width: '3.5rem' }} />
      <col style={{ width: '9.5rem' }} />
      <col />
      <col style={{ width: '7rem' }} />
      <col style={{ width: '5.5rem' }} />
      <col style={{ width: '7.5rem' }} />
      <col style={{ width: '12rem' }} />
      {ratio && <col style={{ width: '5rem' }} />}
      {peer && <col style={{ width: '11rem' }} />}
      <col style={{ width: '17rem' }} />
    </colgroup>
  );
}

export function ChannelGrid({ rows, compression }: { rows: ChannelRowView[]; compression?: string }) {
  const [filter, setFilter] = useState<Filter>('all');
  const failed = rows.filter((r) => r.failed).length;
  const slow = rows.filter((r) => r.slow).length;
  const shown = filter === 'all' ? rows : rows.filter((r) => (filter === 'failed' ? r.failed : r.slow));
  const counts: Record<Filter, number> = { all: rows.length, failed, slow };
  const peer = rows.some((r) => r.peer !== null);
  const ratio = compression !== undefined && compression !== 'none';
  return (
    <section className="panel" aria-labelledby="channels-title">
      <div className="panel-head">
        <h2 id="channels-title">
          Channels <span className="mono">{rows.length}</span>
        </h2>
        <div className="filters" role="group" aria-label="show channels">
          {(['all', 'failed', 'slow'] as const).map((f) => (
            <button
              key={f}
              type="button"
              className={filter === f ? 'filter active' : 'filter'}
              aria-pressed={filter === f}
              data-testid={`filter-${f}`}
              onClick={() => setFilter(f)}
            >
              {f} <span className="mono">{counts[f]}</span>
            </button>
          ))}
        </div>
      </div>
      {/* Rows come in chunks of CHUNK, each its own fixed-layout table inside a box the browser
          skips while it is off screen (content-visibility): a frame that touches 255 rows lays
          out and paints only the visible ones. Same column widths everywhere, so they line up. */}
      <div className="table-wrap channels-wrap" data-testid="channels">
        <table className="table channels">
          <Cols peer={peer} ratio={ratio} />
          <thead>
            <tr>
              <th className="num">#</th>
              <th>state</th>
              <th>handshake</th>
              <th className="num">bytes</th>
              <th className="num">pages</th>
              <th className="num">now</th>
              <th>last {SPARK_SAMPLES} samples</th>
              {ratio && (
                <th className="num" title={`page bytes ÷ bytes on the wire (${compression})`}>
                  ratio
                </th>
              )}
              {peer && <th title="the destination's view of the same channel">destination saw</th>}
              <th>error</th>
            </tr>
          </thead>
        </table>
        {chunks(shown).map((part, i) => (
          <div className="channels-chunk" key={i}>
            <table className="table channels">
              <Cols peer={peer} ratio={ratio} />
              <tbody>
                {part.map((r) => (
                  <ChannelRow key={r.id} v={r} peer={peer} ratio={ratio} />
                ))}
              </tbody>
            </table>
          </div>
        ))}
        {shown.length === 0 && <p className="muted">{rows.length === 0 ? 'No channels yet.' : `No ${filter} channels.`}</p>}
      </div>
    </section>
  );
}

function sameRow(a: ChannelRowView, b: ChannelRowView): boolean {
  return (
    a.id === b.id &&
    a.state === b.state &&
    a.slow === b.slow &&
    a.handshake === b.handshake &&
    a.bytes === b.bytes &&
    a.pages === b.pages &&
    a.zeroPages === b.zeroPages &&
    a.throughput === b.throughput &&
    a.spark === b.spark &&
    a.errorCode === b.errorCode &&
    a.errorMessage === b.errorMessage &&
    a.note === b.note &&
    a.security === b.security &&
    a.ratio === b.ratio &&
    a.peer?.state === b.peer?.state &&
    a.peer?.bytes === b.peer?.bytes
  );
}

const ChannelRow = memo(
  function ChannelRow({ v, peer, ratio }: { v: ChannelRowView; peer: boolean; ratio: boolean }) {
    const idle = v.bytes === 0 && v.pages === 0;
    return (
      <tr data-testid="channel-row" data-channel={v.id} data-state={v.state} data-slow={v.slow ? 'true' : undefined} className={v.failed ? 'row-failed' : v.slow ? 'row-slow' : undefined}>
        <td className="num">{v.id}</td>
        <td>
          <span className={`state ch-${v.state}`}>{v.state}</span>
          {v.slow && <span className="flag-slow">slow</span>}
        </td>
        <td className="mono handshake" data-testid="channel-handshake" data-security={v.security ?? undefined} title={v.security ?? 'in clear'}>
          {v.security && (
            <span className="lock" aria-label={`secured: ${v.security}`}>
              🔒{' '}
            </span>
          )}
          {v.handshake}
        </td>
        <td className="num">{idle && v.failed ? '—' : formatBytes(v.bytes)}</td>
        <td className="num" title={`${v.pages} pages, ${v.zeroPages} zero pages`}>
          {idle && v.failed ? '—' : formatCount(v.pages)}
        </td>
        <td className="num" data-testid="channel-throughput" data-bps={v.throughput ?? 0}>
          {v.throughput === null ? '—' : formatRate(v.throughput)}
        </td>
        <td>
          <div className="spark-cell">
            <svg className="spark" viewBox={`0 0 ${SPARK_W} ${SPARK_H}`} width={SPARK_W} height={SPARK_H} aria-hidden="true">
              {v.spark && <path d={v.spark} />}
            </svg>
            {v.note && (
              <span className="note" data-testid="straggler">
                {v.note}
              </span>
            )}
          </div>
        </td>
        {ratio && (
          <td className="num" data-testid="channel-ratio" data-ratio={v.ratio ?? undefined}>
            {v.ratio === null ? '—' : `${v.ratio.toFixed(2)}×`}
          </td>
        )}
        {peer && (
          <td className="mono" data-testid="channel-peer" data-state={v.peer?.state}>
            {v.peer ? `${v.peer.state} · ${formatBytes(v.peer.bytes)}` : '—'}
          </td>
        )}
        <td className="mono code" title={v.errorMessage ?? undefined}>
          {v.errorCode ?? ''}
        </td>
      </tr>
    );
  },
  (a, b) => a.peer === b.peer && a.ratio === b.ratio && sameRow(a.v, b.v),
);

function terminalState(state: string): boolean {
  return state === 'completed' || state === 'failed' || state === 'cancelled';
}
