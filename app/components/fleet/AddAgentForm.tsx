'use client';

/**
 * Add an agent: its control URL and its token (what `multifd agent` printed the path of).
 * The console asks the agent who it is with that token before keeping anything: a wrong
 * token comes back on the token's field, an address nobody answers on the URL's, a name
 * already in the fleet on the name's. The token is never shown again, nor sent back.
 */
import { AddAgentSchema, type AgentView } from '../../../lib/contracts/console';
import { api } from '../../lib/api';
import { useSchemaForm } from '../../lib/schema-form';
import { Field, OtherErrors } from '../FormField';

interface Values {
  url: string;
  token: string;
  name: string;
}

const DEFAULTS: Values = { url: '', token: '', name: '' };
const FIELDS = ['url', 'token', 'name'] as const;
const P = 'agent-';

function toInput(v: Values) {
  // An empty name means "the agent's own": left out, not sent as ''.
  return { url: v.url.trim(), token: v.token.trim(), name: v.name.trim() === '' ? undefined : v.name.trim() };
}

export function AddAgentForm({ onAdded }: { onAdded: (agent: AgentView) => void }) {
  const form = useSchemaForm({ prefix: P, defaults: DEFAULTS, fields: FIELDS, schema: AddAgentSchema, toInput, submit: api.addAgent, onDone: onAdded });
  const { field, input, formError } = form;

  return (
    <form data-testid="add-agent" className="fleet-form" onSubmit={form.onSubmit} noValidate>
      <Field {...field('url')} label="URL" hint={<>the agent&apos;s control API, as <code>multifd agent --listen</code> printed it, e.g. http://10.0.0.2:7070</>}>
        <input {...input('url')} type="url" autoComplete="off" spellCheck={false} placeholder="http://10.0.0.2:7070" />
      </Field>
      <Field {...field('token')} label="Token" hint="the contents of the agent's --token-file (at least 32 characters); kept by the console, never shown">
        <input {...input('token')} type="password" autoComplete="off" spellCheck={false} />
      </Field>
      <Field {...field('name')} label="Name (optional)" hint="how the console shows it; default: the agent's own --name">
        <input {...input('name')} type="text" autoComplete="off" spellCheck={false} />
      </Field>
      <OtherErrors prefix={P} errors={form.otherErrors} alert />
      {formError && (
        <p className="form-error" role="alert" data-testid="agent-form-error">
          {formError.code === null ? formError.message : `${formError.code}: ${formError.message}`}
        </p>
      )}
      <div className="actions">
        <button type="submit" data-testid="add-agent-submit" disabled={form.pending || !form.ready}>
          {form.pending ? 'Asking the agent…' : 'Add agent'}
        </button>
      </div>
    </form>
  );
}
