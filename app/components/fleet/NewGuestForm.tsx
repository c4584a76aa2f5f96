'use client';

/**
 * A new running guest on one agent: its name, RAM (MiB), initial contents and workload, the
 * fields a migration's new guest has. The agent checks it too; its 422 comes back on the
 * fields, an agent that does not answer as the form's error. The new guest appears in the
 * agent's list by broadcast.
 */
import { CreateGuestSchema, type CreateGuestInput } from '../../../lib/contracts/console';
import { api } from '../../lib/api';
import { MiB } from '../../lib/format';
import { num } from '../../lib/migration-form';
import { useSchemaForm } from '../../lib/schema-form';
import { Field, OtherErrors } from '../FormField';

interface Values {
  name: string;
  ramSize: string;
  fill: 'random' | 'zero';
  workload: string;
}

const DEFAULTS: Values = { name: '', ramSize: '256', fill: 'random', workload: 'idle' };
const FIELDS = ['name', 'ramSize', 'fill', 'workload'] as const;

/** Operator units to the API's: MiB → bytes; an empty name lets the agent choose one. */
function toInput(v: Values): CreateGuestInput {
  return { name: v.name.trim() === '' ? undefined : v.name.trim(), ramSize: num(v.ramSize) * MiB, fill: v.fill, workload: v.workload.trim() };
}

export function NewGuestForm({ agent, disabled }: { agent: string; disabled: boolean }) {
  // One form per agent on the page: ids name the agent.
  const P = `${agent}-guest-`;
  const form = useSchemaForm({
    prefix: P,
    defaults: DEFAULTS,
    fields: FIELDS,
    schema: CreateGuestSchema,
    toInput,
    submit: (input) => api.createAgentGuest(agent, input),
    // The next guest is probably alike: RAM, fill and workload stay; a name is one guest's.
    after: (sent) => ({ ...sent, name: '' }),
  });
  const { field, input, formError } = form;

  return (
    <form data-testid="new-guest" className="fleet-form inline" onSubmit={form.onSubmit} noValidate>
      <Field {...field('name')} label="Name" hint="optional">
        <input {...input('name')} type="text" autoComplete="off" spellCheck={false} />
      </Field>
      <Field {...field('ramSize')} label="RAM (MiB)" hint="a multiple of 4 KiB">
        <input {...input('ramSize')} type="number" inputMode="decimal" min={1} step="any" />
      </Field>
      <Field {...field('fill')} label="Fill" hint="initial RAM">
        <select {...input('fill')}>
          <option value="random">random</option>
          <option value="zero">zero</option>
        </select>
      </Field>
      <Field
        {...field('workload')}
        label="Workload"
        hint={
          <>
            <code>idle</code>, <code>random:RATE</code>…
          </>
        }
      >
        <input {...input('workload')} type="text" autoComplete="off" spellCheck={false} />
      </Field>
      <OtherErrors prefix={P} errors={form.otherErrors} alert />
      {formError && (
        <p className="form-error" role="alert" data-testid="new-guest-error">
          {formError.code === null ? formError.message : `${formError.code}: ${formError.message}`}
        </p>
      )}
      <div className="actions">
        <button type="submit" data-testid="new-guest-submit" disabled={form.pending || !form.ready || disabled}>
          {form.pending ? 'Creating…' : 'Create guest'}
        </button>
      </div>
    </form>
  );
}
