/**
 * What the fleet's pages derive from the agent list: which agents and guests a migration can
 * be between. Pure: imports only the contracts' types.
 */
import type { AgentView, GuestSummary } from '../../lib/contracts/console';

/** An agent a migration can use: up, and it told the console where migrations arrive. */
export const usable = (a: AgentView) => a.state === 'up' && a.migrationAddress !== null;

/** A guest that can leave its agent: running, not already in a migration. */
export const movable = (g: GuestSummary) => g.state === 'running' && g.migrating === null;

/** The guests an agent shows: a stopped one is gone from its host (as on the console's own list). */
export const shown = (guests: readonly GuestSummary[]) => guests.filter((g) => g.state !== 'stopped');

export interface FleetChoice {
  sourceAgent: string;
  guest: string;
  destinationAgent: string;
}

export interface FleetChoices {
  value: FleetChoice;
  sources: AgentView[];
  guests: GuestSummary[];
  destinations: AgentView[];
}

/** `value` if it is still among `choices`, else the first of them, else ''. */
const keepOrFirst = (value: string, choices: readonly string[]) => (choices.includes(value) ? value : (choices[0] ?? ''));

/**
 * The fleet form's three selects, from the live agent list and what was picked: each choice
 * depends on the one before (the guests are the source's; the destination is another agent).
 * A pick that stopped being possible (its agent went down, the guest left or is migrating)
 * falls back to the first that is, so what the selects show is what would be sent.
 */
export function fleetChoices(agents: readonly AgentView[], picked: FleetChoice): FleetChoices {
  const sources = agents.filter(usable);
  const sourceAgent = keepOrFirst(picked.sourceAgent, sources.map((a) => a.name));
  const guests = sources.find((a) => a.name === sourceAgent)?.guests.filter(movable) ?? [];
  const guest = keepOrFirst(picked.guest, guests.map((g) => g.uuid));
  const destinations = sources.filter((a) => a.name !== sourceAgent);
  const destinationAgent = keepOrFirst(picked.destinationAgent, destinations.map((a) => a.name));
  return { value: { sourceAgent, guest, destinationAgent }, sources, guests, destinations };
}
