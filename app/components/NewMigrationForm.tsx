'use client';

/**
 * "New migration": the operator's fields in operator units (MiB, MiB/s, ms), checked with the
 * same schema the server uses, messages shown next to their field. Nothing is sent while a
 * field is invalid; a 422's `fields` are shown the same way.
 */
import { useRouter } from 'next/navigation';
import { useEffect, useState, type ChangeEvent, type FormEvent, type ReactNode } from 'react';
import {
  fieldErrors,
  INJECT_HEADER_FIELDS,
  INJECT_KINDS,
  StartMigrationSchema,
  type FieldErrors,
  type InjectKind,
  type StartMigrationInput,
} from '../../lib/contracts/console';
import { ApiError, api } from '../lib/api';
import { defaultArg, faultProblems, freeChannel, KIND_INFO, rowSpec, type FaultRow } from '../lib/fault-lab';
import { MiB } from '../lib/format';

interface Values {
  destination: string;
  channels: string;
  ramSize: string;
  fill: 'random' | 'zero';
  workload: string;
  maxBandwidth: string;
  downtimeLimitMs: string;
  setupTimeoutMs: string;
}

const DEFAULTS: Values = {
  destination: 'embedded',
  channels: '4',
  ramSize: '256',
  fill: 'random',
  workload: 'idle',
  maxBandwidth: '0',
  downtimeLimitMs: '300',
  setupTimeoutMs: '10000',
};

/** An empty box is "no number", not 0: the schema then says what it wants. */
const num = (s: string): number => (s.trim() === '' ? Number.NaN : Number(s));

/** Operator units to the API's: MiB → bytes, MiB/s → bytes/s. */
function toInput(v: Values, faults: readonly FaultRow[]): StartMigrationInput {
  return {
    destination: v.destination.trim(),
    channels: num(v.channels),
    ramSize: num(v.ramSize) * MiB,
    fill: v.fill,
    workload: v.workload.trim(),
    // A rate has no page alignment to keep: whole bytes per second are close enough.
    maxBandwidth: Math.round(num(v.maxBandwidth) * MiB),
    downtimeLimitMs: num(v.downtimeLimitMs),
    setupTimeoutMs: num(v.setupTimeoutMs),
    inject: faults.map(rowSpec),
  };
}

const FIELDS = ['destination', 'channels', 'ramSize', 'fill', 'workload', 'maxBandwidth', 'downtimeLimitMs', 'setupTimeoutMs', 'inject'] as const;

export function NewMigrationForm() {
  const router = useRouter();
  const [values, setValues] = useState<Values>(DEFAULTS);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [pending, setPending] = useState(false);
  const [faults, setFaults] = useState<FaultRow[]>([]);
  const [labOpen, setLabOpen] = useState(false);
  const [nextKey, setNextKey] = useState(1);
  // The form is prerendered: until React has taken it over, a click would submit natively
  // and typing would be reset, so Start stays disabled until then.
  const [ready, setReady] = useState(false);
  useEffect(() => setReady(true), []);

  function onChange(e: ChangeEvent<HTMLInputElement | HTMLSelectElement>) {
    const name = e.target.name as keyof Values;
    setValues((v) => ({ ...v, [name]: e.target.value }));
    // The message goes with the value it was about.
    if (errors[name]) {
      setErrors(({ [name]: _gone, ...rest }) => rest);
    }
  }

  async function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    if (pending) return;
    setFormError(null);
    const input = toInput(values, faults);
    const parsed = StartMigrationSchema.safeParse(input);
    const found = parsed.success ? {} : fieldErrors(parsed.error);
    const problems = faultProblems(faults, Number(input.channels));
    if (problems.length > 0) found.inject = [...new Set([...(found.inject ?? []), ...problems])];
    if (!parsed.success || problems.length > 0) {
      setErrors(found);
      if (found.inject) setLabOpen(true);
      return;
    }
    setErrors({});
    setPending(true);
    try {
      const summary = await api.startMigration(parsed.data);
      router.push(`/migrations/${encodeURIComponent(summary.id)}`);
    } catch (err) {
      setPending(false);
      if (err instanceof ApiError && err.fields && Object.keys(err.fields).length > 0) {
        // Fields the form has no box for (e.g. `guest`) are listed under the form.
        setErrors(err.fields);
        if (err.fields.inject) setLabOpen(true);
      } else if (err instanceof ApiError) {
        setFormError(`${err.code}: ${err.message}`);
      } else {
        setFormError(String(err));
      }
    }
  }

  const described = (name: string) => [`hint-${name}`, errors[name]?.length ? `error-${name}` : null].filter(Boolean).join(' ');
  const common = (name: keyof Values) => ({
    id: `field-${name}`,
    name,
    value: values[name],
    onChange,
    'aria-describedby': described(name),
    'aria-invalid': errors[name]?.length ? true : undefined,
  });
  const otherErrors = Object.entries(errors).filter(([k]) => !(FIELDS as readonly string[]).includes(k));

  function changeFaults(next: (rows: FaultRow[]) => FaultRow[]) {
    setFaults(next);
    if (errors.inject) setErrors(({ inject: _gone, ...rest }) => rest);
  }
  function addFault() {
    changeFaults((rows) => [...rows, { key: nextKey, channel: String(freeChannel(faults)), kind: 'uuid', arg: '' }]);
    setNextKey((k) => k + 1);
    setLabOpen(true);
  }
  function editFault(key: number, patch: Partial<FaultRow>) {
    changeFaults((rows) =>
      rows.map((r) => (r.key !== key ? r : patch.kind && patch.kind !== r.kind ? { ...r, ...patch, arg: defaultArg(patch.kind) } : { ...r, ...patch })),
    );
  }
  const injectInvalid = !!errors.inject?.length;

  return (
    <form data-testid="new-migration" className="new-migration" onSubmit={onSubmit} noValidate>
      <Field name="destination" label="Destination" hint={<>embedded, or HOST:PORT of a <code>multifd dest</code></>} errors={errors.destination}>
        <input {...common('destination')} type="text" autoComplete="off" spellCheck={false} />
      </Field>
      <Field name="channels" label="Channels" hint="multifd channels, 1 to 255" errors={errors.channels}>
        <input {...common('channels')} type="number" inputMode="numeric" min={1} max={255} step={1} />
      </Field>
      <Field name="ramSize" label="RAM (MiB)" hint="guest RAM in MiB, a multiple of 4 KiB" errors={errors.ramSize}>
        <input {...common('ramSize')} type="number" inputMode="decimal" min={1} step="any" />
      </Field>
      <Field name="fill" label="Fill" hint="initial RAM contents" errors={errors.fill}>
        <select {...common('fill')}>
          <option value="random">random</option>
          <option value="zero">zero</option>
        </select>
      </Field>
      <Field
        name="workload"
        label="Workload"
        hint={
          <>
            <code>idle</code> · <code>random:RATE[:WS]</code> · <code>random:max</code> · <code>hotset:SIZE[:RATE]</code> ·{' '}
            <code>sweep[:RATE]</code> (RATE in MiB/s, e.g. <code>random:32</code>)
          </>
        }
        errors={errors.workload}
      >
        <input {...common('workload')} type="text" autoComplete="off" spellCheck={false} />
      </Field>
      <Field name="maxBandwidth" label="Max bandwidth (MiB/s)" hint="0 = uncapped" errors={errors.maxBandwidth}>
        <input {...common('maxBandwidth')} type="number" inputMode="decimal" min={0} step="any" />
      </Field>
      <Field name="downtimeLimitMs" label="Downtime limit (ms)" hint="switch over once the expected downtime is under this" errors={errors.downtimeLimitMs}>
        <input {...common('downtimeLimitMs')} type="number" inputMode="numeric" min={1} step={1} />
      </Field>
      <Field name="setupTimeoutMs" label="Channel-setup timeout (ms)" hint="every channel must be accepted within this" errors={errors.setupTimeoutMs}>
        <input {...common('setupTimeoutMs')} type="number" inputMode="numeric" min={10} step={1} />
      </Field>
      <fieldset className={injectInvalid ? 'fault-lab has-error' : 'fault-lab'} data-testid="fault-lab" aria-describedby={injectInvalid ? 'error-inject' : 'hint-inject'}>
        <legend>
          <button
            type="button"
            className="lab-toggle"
            data-testid="fault-lab-toggle"
            aria-expanded={labOpen}
            aria-controls="fault-lab-body"
            onClick={() => setLabOpen((o) => !o)}
          >
            {labOpen ? '▾' : '▸'} Fault lab
          </button>
          {faults.length > 0 && (
            <span className="lab-badge" data-testid="fault-count">
              {faults.length} fault{faults.length === 1 ? '' : 's'} will be injected
            </span>
          )}
        </legend>
        {labOpen && (
          <div id="fault-lab-body">
            <p className="hint" id="hint-inject">
              Make the source misbehave on purpose, one fault per channel (DESIGN 7.2). The migration is marked as a fault-lab run everywhere it is shown.
            </p>
            {faults.length > 0 && (
              <ul className="fault-rows">
                {faults.map((r, i) => {
                  const info = KIND_INFO.get(r.kind);
                  return (
                    <li key={r.key} className="fault-row" data-testid="fault-row">
                      <label>
                        <span>channel</span>
                        <input
                          name={`inject.${i}.channel`}
                          data-testid="fault-channel"
                          type="number"
                          inputMode="numeric"
                          min={0}
                          max={254}
                          step={1}
                          value={r.channel}
                          onChange={(e) => editFault(r.key, { channel: e.target.value })}
                        />
                      </label>
                      <label>
                        <span>fault</span>
                        <select name={`inject.${i}.kind`} data-testid="fault-kind" value={r.kind} onChange={(e) => editFault(r.key, { kind: e.target.value as InjectKind })}>
                          {INJECT_KINDS.map((k) => (
                            <option key={k.kind} value={k.kind} title={k.label}>
                              {k.kind === 'id' ? 'id-N' : k.kind}
                            </option>
                          ))}
                        </select>
                      </label>
                      <label>
                        <span>{info?.arg ? info.arg.label : 'argument'}</span>
                        {r.kind === 'bad-header' ? (
                          <select name={`inject.${i}.arg`} data-testid="fault-arg" value={r.arg} onChange={(e) => editFault(r.key, { arg: e.target.value })}>
                            {INJECT_HEADER_FIELDS.map((f) => (
                              <option key={f} value={f}>
                                {f}
                              </option>
                            ))}
                          </select>
                        ) : (
                          <input
                            name={`inject.${i}.arg`}
                            data-testid="fault-arg"
                            type="text"
                            inputMode="numeric"
                            autoComplete="off"
                            spellCheck={false}
                            disabled={!info?.arg}
                            placeholder={info?.arg ? (info.arg.required ? 'required' : 'optional') : '—'}
                            value={r.arg}
                            onChange={(e) => editFault(r.key, { arg: e.target.value })}
                          />
                        )}
                      </label>
                      <p className="fault-what">
                        <code className="fault-spec" data-testid="fault-spec">
                          {rowSpec(r)}
                        </code>{' '}
                        <span className="hint">{info?.label}</span>
                      </p>
                      <button type="button" className="small" data-testid="remove-fault" aria-label={`remove fault ${rowSpec(r)}`} onClick={() => changeFaults((rows) => rows.filter((x) => x.key !== r.key))}>
                        Remove
                      </button>
                    </li>
                  );
                })}
              </ul>
            )}
            <button type="button" className="small" data-testid="add-fault" onClick={addFault} disabled={faults.length >= 255}>
              Add fault
            </button>
          </div>
        )}
        {injectInvalid && (
          <p className="field-error" data-testid="error-inject" id="error-inject" role="alert">
            {errors.inject!.join(' · ')}
          </p>
        )}
      </fieldset>
      {otherErrors.length > 0 && (
        <ul className="field-errors">
          {otherErrors.map(([k, msgs]) => (
            <li key={k}>
              <p className="field-error" data-testid={`error-${k}`} id={`error-${k}`}>
                {msgs.join(' · ')}
              </p>
            </li>
          ))}
        </ul>
      )}
      {formError && (
        <p className="form-error" role="alert" data-testid="form-error">
          {formError}
        </p>
      )}
      <div className="actions">
        <button type="submit" data-testid="start" disabled={pending || !ready}>
          {pending ? 'Starting…' : 'Start migration'}
        </button>
      </div>
    </form>
  );
}

function Field({ name, label, hint, errors, children }: { name: string; label: string; hint: ReactNode; errors?: string[]; children: ReactNode }) {
  return (
    <div className={errors?.length ? 'field invalid' : 'field'}>
      <label htmlFor={`field-${name}`}>{label}</label>
      {children}
      <p className="hint" id={`hint-${name}`}>
        {hint}
      </p>
      {errors?.length ? (
        <p className="field-error" data-testid={`error-${name}`} id={`error-${name}`} role="alert">
          {errors.join(' · ')}
        </p>
      ) : null}
    </div>
  );
}
