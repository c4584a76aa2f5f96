'use client';

/**
 * Evacuate one agent: every running guest off it, to the other agents that are up, within
 * two limits like KubeVirt's: fleet migrations at once (all of them counted) and migrations
 * out of one host at once. The queue shows below (EvacuationQueue), live.
 */
import { EvacuateSchema, type EvacuateInput, type EvacuationView } from '../../../lib/contracts/console';
import { api } from '../../lib/api';
import { num } from '../../lib/migration-form';
import { useSchemaForm } from '../../lib/schema-form';
import { CompressionField, Field, OtherErrors } from '../FormField';

interface Values {
  maxInFlight: string;
  maxOutboundPerHost: string;
  compression: 'none' | 'zlib' | 'zstd';
}

/** KubeVirt's defaults: parallelMigrationsPerCluster 5, parallelOutboundMigrationsPerNode 2. */
const DEFAULTS: Values = { maxInFlight: '5', maxOutboundPerHost: '2', compression: 'none' };
const FIELDS = ['maxInFlight', 'maxOutboundPerHost', 'compression'] as const;

function toInput(v: Values): EvacuateInput {
  return { maxInFlight: num(v.maxInFlight), maxOutboundPerHost: num(v.maxOutboundPerHost), compression: v.compression };
}

export function EvacuateForm({ agent, disabled, onStarted }: { agent: string; disabled: boolean; onStarted: (e: EvacuationView) => void }) {
  // One form per agent on the page: ids name the agent.
  const P = `${agent}-evacuate-`;
  const form = useSchemaForm({
    prefix: P,
    defaults: DEFAULTS,
    fields: FIELDS,
    schema: EvacuateSchema,
    toInput,
    submit: (input) => api.evacuate(agent, input),
    onDone: onStarted,
    // Limits are a policy: the next evacuation likely uses the same.
    after: (sent) => sent,
  });
  const { field, input, formError } = form;

  return (
    <form
      data-testid="evacuate"
      className="fleet-form inline"
      onSubmit={(e) => {
        if (!window.confirm(`Evacuate ${agent}: migrate every running guest off it to the other agents that are up?`)) {
          e.preventDefault();
          return;
        }
        form.onSubmit(e);
      }}
      noValidate
    >
      <Field {...field('maxInFlight')} label="In flight at most" hint="fleet migrations at once, all counted">
        <input {...input('maxInFlight')} type="number" inputMode="numeric" min={1} max={100} step={1} />
      </Field>
      <Field {...field('maxOutboundPerHost')} label="Out of a host at most" hint="migrations leaving one host at once">
        <input {...input('maxOutboundPerHost')} type="number" inputMode="numeric" min={1} max={50} step={1} />
      </Field>
      <CompressionField field={field('compression')} select={input('compression')} hint="every guest's migration; a destination agent may refuse a method" />
      {/* A 422 about the agent itself (down, already being evacuated) names `agent`. */}
      <OtherErrors prefix={P} errors={form.otherErrors} alert />
      {formError && (
        <p className="form-error" role="alert" data-testid="evacuate-error">
          {formError.code === null ? formError.message : `${formError.code}: ${formError.message}`}
        </p>
      )}
      <div className="actions">
        <button type="submit" className="danger" data-testid="evacuate-submit" disabled={form.pending || !form.ready || disabled}>
          {form.pending ? 'Starting…' : `Evacuate ${agent}`}
        </button>
      </div>
    </form>
  );
}
