'use client';

/**
 * One agent: its guests (Stop each), a new guest, and evacuation (every guest off it, within
 * the limits) with the queue of the latest one. While the agent is not up, what it last
 * reported stays listed and the actions that would ask it wait.
 */
import type { AgentView, EvacuationView } from '../../../lib/contracts/console';
import { StateBadge } from '../StateBadge';
import { AgentGuests } from './AgentGuests';
import { EvacuateForm } from './EvacuateForm';
import { EvacuationQueue } from './EvacuationQueue';
import { NewGuestForm } from './NewGuestForm';

export function AgentPanel({
  agent: a,
  evacuation,
  onEvacuation,
  othersUp,
}: {
  agent: AgentView;
  evacuation: EvacuationView | null;
  onEvacuation: (e: EvacuationView) => void;
  /** Other agents that are up: where an evacuation could send guests. */
  othersUp: number;
}) {
  const up = a.state === 'up';
  const evacuating = evacuation?.state === 'running';
  return (
    <section className="panel agent-panel" id={`agent-${a.name}`} data-testid="agent-panel" data-agent={a.name} data-state={a.state} aria-labelledby={`agent-${a.name}-title`}>
      <div className="panel-head">
        <h2 id={`agent-${a.name}-title`}>
          <span className="mono">{a.name}</span> <StateBadge state={a.state} />
        </h2>
        <span className="mono muted">{a.url}</span>
      </div>
      {!up && (
        <p className="warn" data-testid="agent-not-up">
          {a.state === 'connecting' ? 'Reaching the agent…' : `Not reachable${a.error ? `: ${a.error}` : ''}.`} The guests below are as it last reported them.
        </p>
      )}
      <div className="agent-grid">
        <div>
          <h3>Guests</h3>
          <AgentGuests agent={a} />
        </div>
        <div>
          <h3>New guest</h3>
          <NewGuestForm agent={a.name} disabled={!up} />
          <h3>Evacuate</h3>
          {othersUp === 0 && (
            <p className="muted" data-testid="evacuate-nowhere">
              No other agent is up to take {a.name}&apos;s guests: add one, or wait for one to answer.
            </p>
          )}
          <EvacuateForm agent={a.name} disabled={!up || evacuating || othersUp === 0} onStarted={onEvacuation} />
        </div>
      </div>
      {evacuation && <EvacuationQueue evacuation={evacuation} onChanged={onEvacuation} />}
    </section>
  );
}
