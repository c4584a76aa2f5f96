'use client';

/**
 * The live view of one migration (DESIGN §10). Subscribes to its room; the reply carries the
 * detail and the timeline so far, then batches of events of both sides arrive a few times a
 * second. Everything lands in one mutable model kept in a ref; a timer re-renders at most
 * FRAME_MS apart, and only when the model changed, however fast batches come. A migration
 * that is over is shown the same way from GET detail + timeline.
 */
import { useRouter } from 'next/navigation';
import { useEffect, useMemo, useRef, useState } from 'react';
import type { EventBatch, GuestSummary } from '../../../lib/contracts/console';
import { ApiError, api, exportUrl } from '../../lib/api';
import { formatBytes, formatCount, formatDuration, formatEta, formatPercent, formatRate, formatRatio, shortId } from '../../lib/format';
import {
  applyEvents,
  coveredBytes,
  createModel,
  eta as etaOf,
  failureOf,
  isQemuMode,
  isTerminal,
  loadBase,
  PAGE_SIZE,
  phaseSteps,
  qemuProgress,
  roundProgress,
  type Eta,
  type LiveModel,
  type RoundProgress,
} from '../../lib/live-model';
import { diagnose, injectedSpecs } from '../../lib/diagnosis';
import { useGuests } from '../../lib/hooks';
import { getSocket } from '../../lib/socket';
import { StateBadge } from '../StateBadge';
import { ChannelGrid, channelViews } from './ChannelGrid';
import { DiagnosisPanel } from './Diagnosis';
import { FailurePanel, Rejections } from './FailurePanel';
import { PhaseTimeline } from './PhaseTimeline';
import { QemuPanel } from './QemuPanel';
import { RoundTable } from './RoundTable';
import { ThroughputChart } from './ThroughputChart';

/** At most ~4 renders a second. */
const FRAME_MS = 250;
/** Fault-lab specs spelled out in the header; the rest are counted (all in its title). */
const INJECT_SHOWN = 4;

type Status = { kind: 'loading' } | { kind: 'ready' } | { kind: 'missing'; message: string } | { kind: 'error'; message: string };

export function LiveView({ id }: { id: string }) {
  const modelRef = useRef<LiveModel>(createModel(id));
  const [, setFrame] = useState(0);
  const [status, setStatus] = useState<Status>({ kind: 'loading' });
  const [subscribed, setSubscribed] = useState(false);
  /** Since when the console stopped answering (the socket dropped); null while it answers. */
  const [offlineSince, setOfflineSince] = useState<number | null>(null);
  const [cancelState, setCancelState] = useState<{ pending: boolean; error: string | null }>({ pending: false, error: null });
  const [retryState, setRetryState] = useState<{ pending: boolean; error: string | null }>({ pending: false, error: null });
  const { items: guests } = useGuests();
  const router = useRouter();

  // Re-render from the model, at most once per frame and only when it moved.
  useEffect(() => {
    let shown = -1;
    const timer = setInterval(() => {
      const v = modelRef.current.version;
      if (v !== shown) {
        shown = v;
        setFrame(v);
      }
    }, FRAME_MS);
    return () => clearInterval(timer);
  }, []);

  useEffect(() => {
    const m = createModel(id);
    modelRef.current = m;
    setStatus({ kind: 'loading' });
    setSubscribed(false);
    let active = true;
    /** 'live' once a subscribe reply is in: it is never older than what REST said. */
    let base: 'none' | 'rest' | 'live' = 'none';
    let restMissing: string | null = null;
    const socket = getSocket();

    const onBatch = (b: EventBatch) => {
      if (b.id === id) applyEvents(m, b.events);
    };
    const subscribe = () => {
      socket.emit('migration:subscribe', id, (r) => {
        if (!active) return;
        if (r.ok) {
          loadBase(m, r.detail, r.timeline);
          base = 'live';
          setSubscribed(true);
          setStatus({ kind: 'ready' });
        } else if (base === 'none' && restMissing !== null) {
          setStatus({ kind: 'missing', message: r.message });
        }
      });
    };
    const onDisconnect = () => {
      setSubscribed(false);
      setOfflineSince((t) => t ?? Date.now());
    };
    const onConnectError = () => setOfflineSince((t) => t ?? Date.now());
    const onConnect = () => {
      setOfflineSince(null);
      subscribe();
    };

    socket.on('migration:events', onBatch);
    socket.on('connect', onConnect);
    socket.on('disconnect', onDisconnect);
    socket.on('connect_error', onConnectError);
    if (socket.connected) subscribe();

    // REST in parallel: shows a finished migration even if the socket is slow or down.
    Promise.all([api.migration(id), api.timeline(id).catch(() => [])]).then(
      ([detail, timeline]) => {
        if (!active || base !== 'none') return;
        loadBase(m, detail, timeline);
        base = 'rest';
        setStatus({ kind: 'ready' });
      },
      (err: unknown) => {
        if (!active || base !== 'none') return;
        if (err instanceof ApiError && err.status === 404) {
          restMissing = err.message;
          setStatus({ kind: 'missing', message: err.message });
        } else {
          setStatus({ kind: 'error', message: err instanceof ApiError ? `${err.code}: ${err.message}` : String(err) });
        }
      },
    );

    return () => {
      active = false;
      socket.off('migration:events', onBatch);
      socket.off('connect', onConnect);
      socket.off('disconnect', onDisconnect);
      socket.off('connect_error', onConnectError);
      if (socket.connected) socket.emit('migration:unsubscribe', id);
    };
  }, [id]);

  async function cancel() {
    setCancelState({ pending: true, error: null });
    try {
      await api.cancel(id);
      setCancelState({ pending: false, error: null });
      // Without the socket no events will say so: read where it stands now.
      if (!subscribed) {
        const [detail, timeline] = await Promise.all([api.migration(id), api.timeline(id).catch(() => [])]);
        loadBase(modelRef.current, detail, timeline);
      }
    } catch (err) {
      setCancelState({ pending: false, error: err instanceof ApiError ? `${err.code}: ${err.message}` : String(err) });
    }
  }

  const m = modelRef.current;
  const s = m.snapshot;
  // Derived once per model change (a frame at most every FRAME_MS), not per render.
  const version = m.version;
  const views = useMemo(() => channelViews(m), [m, version]);
  const diagnosis = useMemo(() => diagnose(m), [m, version]);

  if (status.kind === 'missing' && !s) {
    return (
      <section className="panel">
        <h1>Migration {id}</h1>
        <p className="error-text" data-testid="not-found">
          {status.message}
        </p>
      </section>
    );
  }
  if (status.kind === 'error' && !s) {
    return (
      <section className="panel">
        <h1>Migration {id}</h1>
        <p className="error-text" role="alert">
          {status.message}
        </p>
      </section>
    );
  }
  if (!s) {
    return (
      <section className="panel">
        <h1>Migration {id}</h1>
        <p className="muted">Loading…</p>
      </section>
    );
  }

  const now = Date.now();
  const progress = roundProgress(m);
  const eta = etaOf(m, progress);
  const steps = phaseSteps(m);
  const error = failureOf(m);
  const terminal = isTerminal(s.state);
  // Only a live migration can be out of date.
  const offline = terminal ? null : offlineSince;
  const rounds = [...m.rounds.values()].sort((a, b) => a.round - b.round);
  const last = m.samples[m.samples.length - 1];
  const peer = m.peerSide;
  // Once over, the sliding window says little: the whole run's average does.
  const average = m.summary?.throughput ?? (s.totalTimeMs ? (s.pageBytes * 1000) / s.totalTimeMs : null);
  const inject = injectedSpecs(m);
  const qemu = isQemuMode(m);
  // The console's own migration of a built-in guest: its guest is in this host's list, by uuid.
  const own = !qemu && !m.summary?.agents && s.role === 'source';
  const here = own && guests ? (guests.find((g) => g.uuid === s.uuid && g.state !== 'stopped') ?? null) : null;
  const canRetry = own && m.config !== null && (s.state === 'failed' || s.state === 'cancelled') && here !== null && here.migrating === null;

  const uuid = s.uuid;
  async function retry() {
    if (!m.config) return;
    setRetryState({ pending: true, error: null });
    try {
      // The same migration of the same guest with the diagnosis' fix; never the fault lab's faults again.
      const fix = diagnosis?.fix;
      const next = await api.startMigration({ ...m.config, guest: uuid ?? undefined, inject: [], ...(fix?.channels ? { channels: fix.channels } : {}) });
      router.push(`/migrations/${encodeURIComponent(next.id)}`);
    } catch (err) {
      setRetryState({ pending: false, error: err instanceof ApiError ? `${err.code}: ${err.message}` : String(err) });
    }
  }

  return (
    <article className="live" data-testid="live-view" data-id={id}>
      <header className="live-head">
        <div className="title-row">
          <h1>
            Migration{' '}
            <span className="mono" title={id}>
              {shortId(id)}
            </span>
          </h1>
          <div className="headline mono">
            <StateBadge state={s.state} testId="migration-state" />
            <span>
              {/* The engine numbers the switchover's last pass as one more round; QEMU counts its
                  passes by dirty-bitmap syncs (the relay's own count of sync points is no round). */}
              {qemu ? (
                // A failed QEMU reports no figures: nothing rather than a dash.
                m.qemu?.source?.figures.dirtySyncCount != null && (
                  <span title="QEMU's dirty-sync-count: one per pass over RAM">
                    dirty sync <span data-testid="round">{m.qemu.source.figures.dirtySyncCount}</span>
                  </span>
                )
              ) : m.switchover ? (
                <>
                  <span data-testid="round">{m.rounds.size}</span> round{m.rounds.size === 1 ? '' : 's'} + switchover
                </>
              ) : (
                <>
                  round <span data-testid="round">{s.round}</span>
                </>
              )}
            </span>
            {terminal ? (
              <span data-testid="throughput" data-bps={average ?? 0} title="guest RAM moved per second, averaged over the whole migration (before compression)">
                avg {formatRate(average)} of RAM
              </span>
            ) : (
              <span data-testid="throughput" data-bps={s.transferRate} title="bytes on the wire per second, over the last 2 s">
                {formatRate(s.transferRate)}
              </span>
            )}
            {terminal ? (
              <span data-testid="total-time">took {formatDuration(s.totalTimeMs)}</span>
            ) : (
              <span data-testid="eta">ETA {eta?.ms != null && offline === null ? formatEta(eta.ms) : '—'}</span>
            )}
          </div>
          {inject.length > 0 && (
            // An injected failure must never be mistaken for a real one.
            <span className="lab-badge" data-testid="injected" title={`faults injected from the fault lab (asked for, not real): ${inject.join(', ')}`}>
              fault lab: {inject.slice(0, INJECT_SHOWN).join(', ')}
              {inject.length > INJECT_SHOWN && ` +${inject.length - INJECT_SHOWN} more`}
            </span>
          )}
          <div className="actions">
            {!terminal && (
              <button
                type="button"
                className="danger"
                data-testid="cancel"
                onClick={cancel}
                disabled={cancelState.pending || s.state === 'cancelling' || offline !== null}
                title={offline !== null ? 'the console is not answering: nothing can be cancelled from here now' : undefined}
              >
                {s.state === 'cancelling' || cancelState.pending ? 'Cancelling…' : 'Cancel'}
              </button>
            )}
            {canRetry && (
              <button type="button" data-testid="retry" onClick={() => void retry()} disabled={retryState.pending} title="start the same migration again with this guest">
                {retryState.pending ? 'Starting…' : (diagnosis?.fix?.label ?? (inject.length > 0 ? 'Retry without the faults' : 'Retry with this guest'))}
              </button>
            )}
            <a className="button" data-testid="export" href={exportUrl(id)} download>
              Export
            </a>
          </div>
        </div>
        {offline !== null && (
          <p className="error-text" role="status" data-testid="offline">
            The console has not answered since {new Date(offline).toLocaleTimeString()}: what is shown is the last state it sent; the
            migration may have gone on or ended. This view reconnects by itself.
          </p>
        )}
        <p className="why mono" data-testid="eta-why">
          {whyLine(m, eta, progress, own ? (guests === null ? undefined : here) : undefined)}
        </p>
        {retryState.error && (
          <p className="error-text" role="alert" data-testid="retry-error">
            {retryState.error}
          </p>
        )}
        <p className="ids">
          <span>
            id <span className="mono" data-testid="migration-id">{id}</span>
          </span>
          {s.uuid && (
            <span>
              guest <span className="mono">{s.uuid}</span>
            </span>
          )}
          {qemu ? (
            <span>
              to QEMU <span className="mono" data-testid="qemu-to">{m.qemu?.destinationQmp ?? m.summary?.destination ?? '—'}</span>
              {m.qemu?.relay && (
                <>
                  {' '}
                  via relay <span className="mono" data-testid="qemu-via">{m.qemu.relay}</span>
                </>
              )}
              {m.qemu?.sourceQmp && (
                <>
                  {' '}
                  · from QEMU <span className="mono">{m.qemu.sourceQmp}</span>
                </>
              )}
            </span>
          ) : (
            <span>
              to <span className="mono">{m.summary?.destination ?? s.peer ?? '—'}</span>
              {m.summary?.destination === 'embedded' && s.peer ? <span className="mono muted"> ({s.peer})</span> : null}
            </span>
          )}
          <span>
            <span className="mono">{s.channelCount}</span> channels · RAM <span className="mono">{formatBytes(s.ramSize)}</span>
            <span data-testid="channel-security">
              {' · '}
              {s.tls ? <span title="every channel, the main one included">TLS {s.tls}</span> : <span className="muted">in clear</span>}
            </span>
            {s.compression && s.compression !== 'none' && (
              <span data-testid="compression">
                {' · '}
                {s.compression}
                {s.pageBytes > 0 && s.transferred > 0 && <span className="mono"> {(s.pageBytes / s.transferred).toFixed(2)}×</span>}
              </span>
            )}
          </span>
          {!terminal && <span className={subscribed ? 'muted' : 'warn'}>{subscribed ? 'live' : 'not live: reconnecting…'}</span>}
        </p>
        {cancelState.error && (
          <p className="error-text" role="alert">
            {cancelState.error}
          </p>
        )}
      </header>

      <PhaseTimeline steps={steps} t0={s.startedAt} now={s.endedAt ?? now} />

      {qemu ? <QemuProgressLine m={m} /> : <ProgressLine m={m} progress={progress} />}

      {m.qemu && (
        <QemuPanel
          source={m.qemu.source}
          destination={m.qemu.destination}
          sourceQmp={m.qemu.sourceQmp}
          destinationQmp={m.qemu.destinationQmp}
          relay={m.qemu.relay}
          recordDir={m.qemu.recordDir}
        />
      )}

      {(s.digest || s.verified) && (
        <p className="completion">
          digest <span className="mono" data-testid="digest">{s.digest}</span>
          {s.verified ? (
            <span className="verified" data-testid="verified">
              verified
            </span>
          ) : (
            <span className="muted"> (waiting for the destination to verify)</span>
          )}
          {s.downtimeMs !== null && <span className="muted"> · downtime {formatDuration(s.downtimeMs)}</span>}
          {s.setupTimeMs !== null && <span className="muted"> · setup {formatDuration(s.setupTimeMs)}</span>}
        </p>
      )}

      {error && (s.state === 'failed' || s.state === 'cancelled' || s.state === 'cancelling') && (
        <FailurePanel
          error={error}
          cancelled={error.code === 'MIGRATION_CANCELLED'}
          cause={diagnosis ? null : undefined}
          hideVersus={!!diagnosis?.uuid.some((u) => u.expected === error.expected && u.received === error.received)}
        />
      )}

      {diagnosis && <DiagnosisPanel d={diagnosis} rows={views} />}

      <ThroughputChart samples={m.samples} stamp={`${m.samples.length}:${last?.t ?? 0}`} channelCount={s.channelCount} ended={terminal} />

      <ChannelGrid rows={views} compression={s.compression} />

      <RoundTable rounds={rounds} switchover={m.switchover} downtimeMs={s.downtimeMs} />

      {peer && (
        <section className="panel" aria-labelledby="peer-title">
          <h2 id="peer-title">{peer.role === 'destination' ? 'Destination' : peer.role === 'relay' ? 'Relay' : 'Source'} side</h2>
          <p className="mono" data-testid="peer-side" data-state={peer.state}>
            <StateBadge state={peer.state} /> · received {formatBytes(peer.transferred)} · {formatCount(coveredBytes(peer) / PAGE_SIZE)} pages placed
            {peer.digest && <> · digest {peer.digest}</>}
            {peer.verified && <> · verified</>}
          </p>
        </section>
      )}

      <Rejections list={m.rejections} t0={s.startedAt} />
    </article>
  );
}

/**
 * `guest`: the migration's guest as this host lists it now (null: not here), or undefined when
 * that is not known or does not apply (QEMU, the fleet, a migration arriving here).
 */
function whyLine(m: LiveModel, eta: Eta | null, progress: RoundProgress | null, guest?: GuestSummary | null): string {
  const s = m.snapshot!;
  if (!eta) return '';
  if (isQemuMode(m)) return qemuWhyLine(m, eta);
  const left = formatBytes(eta.left);
  switch (eta.kind) {
    case 'setup': {
      const accepted = s.channels.filter((c) => c.times.accepted !== null).length;
      const limit = m.config?.setupTimeoutMs;
      return `setting up: ${accepted} of ${s.channelCount} channels accepted${limit ? ` (all within ${formatDuration(limit)})` : ''}`;
    }
    case 'no-rate':
      return `${left} left; no transfer rate measured yet`;
    case 'copying':
      if (s.round <= 1 || !progress?.resend) return `why this ETA: ${left} left at ${formatRate(eta.rate)}; dirty rate measured after round 1`;
      return `why this ETA: ${left} left at ${formatRate(eta.rate)}; guest dirties ${formatRate(eta.dirtyRate)} (ratio ${formatRatio(eta.ratio)})`;
    case 'later-pass':
      return ''; // QEMU mode only
    case 'not-converging':
      return `why no ETA: ${left} left at ${formatRate(eta.rate)}; guest dirties ${formatRate(eta.dirtyRate)} (ratio ${formatRatio(eta.ratio)} ≥ 1: not converging; switchover at the round limit${m.config ? `, ${m.config.roundLimit}` : ''})`;
    case 'switchover':
      return `guest paused: final pass of ${left}, expected downtime ${formatDuration(s.expectedDowntimeMs)}${m.switchover ? ` (limit ${formatDuration(m.switchover.downtimeLimitMs)})` : ''}`;
    case 'ended':
      if (s.state === 'cancelling') return 'cancelling: the source guest keeps running';
      if (s.state === 'completed') {
        const n = m.rounds.size;
        const where = guest === undefined ? '' : guest ? `; the guest runs on this host (${guest.origin})` : "; the guest runs at the destination, the source's copy stopped";
        return `completed in ${formatDuration(s.totalTimeMs)}: ${formatBytes(s.transferred)} over ${s.channelCount} channels, ${n} pre-copy round${n === 1 ? '' : 's'} and the switchover pass${where}`;
      }
      if (guest === null) return `${s.state} after ${formatDuration(s.totalTimeMs)}; the source guest is no longer on this host (stopped since, or the console restarted)`;
      return `${s.state} after ${formatDuration(s.totalTimeMs)}; the source guest keeps running, unchanged`;
  }
}

/** The bar both modes' progress lines start with: a fraction from 0 to 1, as a percentage. */
function ProgressBar({ fraction }: { fraction: number }) {
  return (
    <div className="bar" role="progressbar" aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(fraction * 100)} data-testid="progress">
      <div className="bar-fill" style={{ transform: `scaleX(${fraction.toFixed(4)})` }} />
    </div>
  );
}

/** Pages sent against RAM, and what this round re-sends: progress never silently goes back. */
function ProgressLine({ m, progress }: { m: LiveModel; progress: RoundProgress | null }) {
  const s = m.snapshot!;
  const covered = coveredBytes(s);
  return (
    <section className="progress-panel" aria-label="progress">
      <ProgressBar fraction={progress?.fraction ?? 0} />
      <p className="mono">
        {s.state === 'completed'
          ? `done: all ${formatBytes(s.ramSize)} of RAM on the destination`
          : progress
          ? progress.round === 1 || !progress.resend
            ? `round ${progress.round}: ${formatBytes(progress.sent)} of ${formatBytes(progress.total)} (${formatPercent(progress.fraction)})`
            : `round ${progress.round}: ${formatBytes(progress.sent)} of ${formatBytes(progress.total)} re-sent (${formatPercent(progress.fraction)})`
          : s.state === 'setup'
            ? 'setting up channels'
            : 'no round started'}
        <span className="muted">
          {' '}
          · pages sent {formatCount(covered / PAGE_SIZE)} ({formatBytes(covered)}) / RAM {formatBytes(s.ramSize)} ({formatCount(s.ramSize / PAGE_SIZE)} pages) · wire{' '}
          {formatBytes(s.transferred)}
        </span>
      </p>
      {progress?.resend && (
        <p className="resend" data-testid="resend-note">
          {progress.resend.final
            ? `switchover re-sends ${formatBytes(progress.resend.bytes)} dirtied since round ${progress.resend.since}`
            : `round ${progress.resend.round} re-sends ${formatBytes(progress.resend.bytes)} dirtied since round ${progress.resend.since}`}
        </p>
      )}
    </section>
  );
}

/** QEMU mode: the relay's channels and rate, QEMU's passes and timings; no rounds, no digest. */
function qemuWhyLine(m: LiveModel, eta: Eta): string {
  const s = m.snapshot!;
  const src = m.qemu?.source?.figures ?? null;
  const left = formatBytes(eta.left);
  switch (eta.kind) {
    case 'setup': {
      const accepted = s.channels.filter((c) => c.times.accepted !== null).length;
      return `setting up: QEMU's source connects through the relay; ${accepted} of ${s.channelCount} multifd channels through so far`;
    }
    case 'no-rate':
      return eta.left === null ? 'waiting for QEMU to report what is left' : `${left} left; no transfer rate measured yet`;
    case 'copying':
      return `why this ETA: ${left} left of QEMU's first pass at ${formatRate(eta.rate)} (the relay's rate); a running guest dirties pages that later passes re-send`;
    case 'later-pass':
      return `why no ETA: QEMU is in pass ${src?.dirtySyncCount ?? '?'} (${left} left) at ${formatRate(eta.rate)}; what it re-sends depends on the guest's dirty rate, which QEMU does not report here${src?.expectedDowntimeMs != null ? `; QEMU expects ${formatDuration(src.expectedDowntimeMs)} of downtime` : ''}`;
    case 'switchover':
      return `guest paused: QEMU's final pass${eta.left !== null ? ` of ${left}` : ''} (QEMU status ${src?.status ?? 'device'})`;
    case 'not-converging':
      return '';
    case 'ended': {
      if (s.state === 'cancelling') return "cancelling: migrate_cancel sent to QEMU's source; its guest stays there";
      if (s.state === 'completed') {
        const syncs = src?.dirtySyncCount;
        return `completed in ${formatDuration(s.totalTimeMs)}: QEMU sent ${formatBytes(src?.transferred ?? s.transferred)} over ${s.channelCount} multifd channels and the main channel${syncs != null ? `, ${syncs} dirty sync${syncs === 1 ? '' : 's'}` : ''}; the guest is on the destination QEMU`;
      }
      return `${s.state} after ${formatDuration(s.totalTimeMs)}; the guest stays on QEMU's source`;
    }
  }
}

/**
 * QEMU mode's progress: QEMU's own RAM figures (how much of this pass is left), and what the
 * relay saw go by on the wire.
 */
function QemuProgressLine({ m }: { m: LiveModel }) {
  const s = m.snapshot!;
  const p = qemuProgress(m);
  const covered = coveredBytes(s);
  return (
    <section className="progress-panel" aria-label="progress">
      <ProgressBar fraction={p?.fraction ?? 0} />
      <p className="mono">
        {s.state === 'completed'
          ? `done: all ${formatBytes(p?.total ?? s.ramSize)} of RAM on the destination QEMU`
          : p && p.remaining !== null
            ? `QEMU${p.pass !== null ? ` pass ${p.pass}` : ''}: ${formatBytes(p.remaining)} left of ${formatBytes(p.total)} RAM (${formatPercent(p.fraction)} done)`
            : s.state === 'setup'
              ? 'setting up: QEMU has not started sending'
              : `${formatBytes(p?.done ?? 0)} of ${formatBytes(p?.total ?? s.ramSize)} seen by the relay`}
        <span className="muted">
          {' '}
          · relay: {formatCount(covered / PAGE_SIZE)} pages ({formatBytes(covered)}) on {s.channels.length} multifd channel{s.channels.length === 1 ? '' : 's'} · wire{' '}
          {formatBytes(s.transferred)}
        </span>
      </p>
    </section>
  );
}
