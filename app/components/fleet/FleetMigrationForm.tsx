'use client';

/**
 * "New migration" between two agents of the fleet: a running guest of one agent (not already
 * migrating) to another agent that is up. Same conventions as the other two forms
 * (app/lib/migration-form.ts): operator units, the server's schema checked first, messages
 * next to their field, a 422's `fields` shown the same way; an agent that does not answer
 * (502 AGENT_DOWN) is the form's error, naming it.
 *
 * The selects follow the agent list live ('agents:changed'); a pick that stopped being
 * possible falls back to the first that is (app/lib/fleet.ts), so what they show is what is
 * sent. Ids and test ids carry a `fleet-` prefix: the forms stay mounted under their tabs.
 */
import Link from 'next/link';
import { INJECT_KINDS, StartFleetMigrationSchema, type AgentView, type StartFleetMigrationInput } from '../../../lib/contracts/console';
import { api } from '../../lib/api';
import { rowSpec, type FaultRow } from '../../lib/fault-lab';
import { fleetChoices, type FleetChoice } from '../../lib/fleet';
import { MiB, formatBytes, shortId } from '../../lib/format';
import { useAgents } from '../../lib/hooks';
import { num, useMigrationForm } from '../../lib/migration-form';
import { FaultLab } from '../FaultLab';
import { CompressionField, Field, OtherErrors } from '../FormField';

interface Values extends FleetChoice {
  channels: string;
  compression: 'none' | 'zlib' | 'zstd';
  maxBandwidth: string;
  downtimeLimitMs: string;
}

const DEFAULTS: Values = {
  sourceAgent: '',
  guest: '',
  destinationAgent: '',
  channels: '4',
  compression: 'none',
  maxBandwidth: '0',
  downtimeLimitMs: '300',
};

const P = 'fleet-';

/** Operator units to the API's: MiB/s → bytes/s. Round and setup limits keep the schema's defaults. */
function toInput(v: Values, faults: readonly FaultRow[]): StartFleetMigrationInput {
  return {
    sourceAgent: v.sourceAgent,
    guest: v.guest,
    destinationAgent: v.destinationAgent,
    channels: num(v.channels),
    compression: v.compression,
    maxBandwidth: Math.round(num(v.maxBandwidth) * MiB),
    downtimeLimitMs: num(v.downtimeLimitMs),
    inject: faults.map(rowSpec),
  };
}

const FIELDS = ['sourceAgent', 'guest', 'destinationAgent', 'channels', 'compression', 'maxBandwidth', 'downtimeLimitMs', 'inject'] as const;
const NO_AGENTS: AgentView[] = [];

export function FleetMigrationForm() {
  const agents = useAgents();
  const list = agents.items ?? NO_AGENTS;
  // The picks as typed are kept; what is shown and sent is what is still possible.
  const choose = (v: Values): Values => ({ ...v, ...fleetChoices(list, v).value });
  const form = useMigrationForm({
    prefix: P,
    defaults: DEFAULTS,
    fields: FIELDS,
    schema: StartFleetMigrationSchema,
    toInput: (values, faults) => toInput(choose(values), faults),
    start: api.startFleetMigration,
  });
  const { errors, formError, field } = form;
  const input = (name: keyof Values) => ({ ...form.input(name), 'data-testid': `${P}field-${name}` });
  // The picks resolved against the live list: the selects show these, not the raw values.
  const c = fleetChoices(list, form.values);
  const complete = c.value.sourceAgent !== '' && c.value.guest !== '' && c.value.destinationAgent !== '';
  const errorCode = formError?.code ?? 'ERROR';

  return (
    <form data-testid="fleet-migration" className="new-migration fleet-migration" onSubmit={form.onSubmit} noValidate>
      <FleetNote agents={agents.items} error={agents.error} sources={c.sources.length} />
      <Field {...field('sourceAgent')} label="Source agent" hint="an agent that is up; the guest leaves it">
        <select {...input('sourceAgent')} value={c.value.sourceAgent} disabled={c.sources.length === 0}>
          {c.sources.length === 0 && <option value="">no agent is up</option>}
          {c.sources.map((a) => (
            <option key={a.name} value={a.name}>
              {a.name} ({a.guests.filter((g) => g.state === 'running').length} running)
            </option>
          ))}
        </select>
      </Field>
      <Field {...field('guest')} label="Guest" hint="a running guest of the source agent, not already migrating">
        <select {...input('guest')} value={c.value.guest} disabled={c.guests.length === 0}>
          {c.guests.length === 0 && <option value="">{c.value.sourceAgent ? `no guest to move on ${c.value.sourceAgent}` : '—'}</option>}
          {c.guests.map((g) => (
            <option key={g.uuid} value={g.uuid}>
              {g.name} · {shortId(g.uuid)} · {formatBytes(g.ramSize)}
            </option>
          ))}
        </select>
      </Field>
      <Field {...field('destinationAgent')} label="Destination agent" hint="another agent that is up; the guest runs there afterwards">
        <select {...input('destinationAgent')} value={c.value.destinationAgent} disabled={c.destinations.length === 0}>
          {c.destinations.length === 0 && <option value="">no other agent is up</option>}
          {c.destinations.map((a) => (
            <option key={a.name} value={a.name}>
              {a.name} ({a.migrationAddress})
            </option>
          ))}
        </select>
      </Field>
      <Field {...field('channels')} label="Channels" hint="multifd channels, 1 to 255">
        <input {...input('channels')} type="number" inputMode="numeric" min={1} max={255} step={1} />
      </Field>
      <CompressionField field={field('compression')} select={input('compression')} hint="page payloads; the destination agent may refuse a method" />
      <Field {...field('maxBandwidth')} label="Max bandwidth (MiB/s)" hint="0 = uncapped">
        <input {...input('maxBandwidth')} type="number" inputMode="decimal" min={0} step="any" />
      </Field>
      <Field {...field('downtimeLimitMs')} label="Downtime limit (ms)" hint="switch over once the expected downtime is under this">
        <input {...input('downtimeLimitMs')} type="number" inputMode="numeric" min={1} step={1} />
      </Field>
      <FaultLab
        prefix={P}
        kinds={INJECT_KINDS}
        hint="The source agent misbehaves on purpose, one fault per channel (the kinds: the README, under Faults for testing). The migration is marked as a fault-lab run everywhere it is shown."
        lab={form.lab}
        errors={errors.inject}
      />
      <OtherErrors prefix={P} errors={form.otherErrors} alert />
      {formError && (
        <p className="form-error" role="alert" data-testid="fleet-form-error" data-code={errorCode}>
          <span className="form-error-code">{errorCode}</span> {formError.message}
        </p>
      )}
      <div className="actions">
        <button type="submit" data-testid="fleet-start" disabled={form.pending || !form.ready || !complete}>
          {form.pending ? 'Starting…' : 'Start fleet migration'}
        </button>
      </div>
    </form>
  );
}

/** Why the selects may be empty, and where agents are added. */
function FleetNote({ agents, error, sources }: { agents: AgentView[] | null; error: string | null; sources: number }) {
  if (error) return <p className="error-text">{error}</p>;
  if (agents === null) return <p className="muted">Loading agents…</p>;
  if (sources >= 2) return null;
  return (
    <p className="muted" data-testid="fleet-note">
      {agents.length === 0 ? 'No agents yet.' : `${sources} of ${agents.length} agent${agents.length === 1 ? '' : 's'} up; a migration needs two.`}{' '}
      <Link href="/agents">Add or check agents →</Link>
    </p>
  );
}
