import type { Metadata } from 'next';
import { FleetConsole } from '../components/fleet/FleetConsole';

export const metadata: Metadata = { title: 'Agents' };

/**
 * The fleet: the agents this console was given (a `multifd agent` per host), their health,
 * their guests, and host evacuations. Migrations between two of them start from the console's
 * Fleet tab.
 */
export default function AgentsPage() {
  return <FleetConsole />;
}
