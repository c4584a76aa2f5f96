'use client';

/**
 * The Agents page: add an agent, the table of agents, then one panel per agent (its guests,
 * a new guest, its evacuation). One agent list and one evacuation list for the whole page,
 * each fetched once and then replaced by 'agents:changed' / 'evacuations:changed'.
 *
 * Everything shown comes from the console's own lists, which answer at once: an agent that
 * is down is shown as down with its reason, nothing waits on it. Only an action on it (a
 * new guest, a stop) asks it, and says so when it does not answer.
 */
import { useAgents, useEvacuations } from '../../lib/hooks';
import { AddAgentForm } from './AddAgentForm';
import { AgentPanel } from './AgentPanel';
import { AgentTable } from './AgentTable';

export function FleetConsole() {
  const agents = useAgents();
  const evacuations = useEvacuations();

  return (
    <>
      <div className="console-grid">
        <section className="panel" aria-labelledby="add-agent-title">
          <h1 id="add-agent-title">Add an agent</h1>
          <AddAgentForm onAdded={agents.upsert} />
        </section>
        <section className="panel" aria-labelledby="agents-title">
          <h2 id="agents-title">Agents</h2>
          <AgentTable agents={agents} />
        </section>
      </div>
      {agents.items?.map((a) => (
        <AgentPanel
          key={a.name}
          agent={a}
          // Newest first: the first one of this agent is the one to show.
          evacuation={evacuations.items?.find((e) => e.agent === a.name) ?? null}
          onEvacuation={evacuations.upsert}
          othersUp={agents.items!.filter((o) => o.name !== a.name && o.state === 'up').length}
        />
      ))}
      {evacuations.error && <p className="error-text">{evacuations.error}</p>}
    </>
  );
}
