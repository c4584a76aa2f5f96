'use client';

/**
 * "New migration" in QEMU mode: two running QEMUs, reached over QMP (the destination started
 * with `-incoming defer`), which the console migrates through its relay to watch each channel.
 * Same conventions as NewMigrationForm: operator units, the server's schema checked first,
 * messages next to their field, a 422's `fields` shown the same way. QEMU's own refusals
 * (502) are shown as QEMU worded them.
 *
 * Ids and test ids carry a `qemu-` prefix: both forms stay mounted under their tabs.
 */
import { useRouter } from 'next/navigation';
import { useEffect, useState, type ChangeEvent, type FormEvent, type ReactNode } from 'react';
import {
  fieldErrors,
  RELAY_INJECT_KINDS,
  StartQemuMigrationSchema,
  type FieldErrors,
  type InjectKind,
  type StartQemuMigrationInput,
} from '../../lib/contracts/console';
import { ApiError, api } from '../lib/api';
import { defaultArg, faultProblems, freeChannel, KIND_INFO, rowSpec, type FaultRow } from '../lib/fault-lab';
import { MiB } from '../lib/format';

interface Values {
  sourceQmp: string;
  destinationQmp: string;
  channels: string;
  maxBandwidth: string;
  migrationHost: string;
  relayHost: string;
}

const DEFAULTS: Values = {
  sourceQmp: '',
  destinationQmp: '',
  channels: '4',
  maxBandwidth: '0',
  migrationHost: '127.0.0.1',
  relayHost: '127.0.0.1',
};

/** The relay can only put faults into traffic it forwards: the handshake ones, and drop. */
const RELAY_KINDS = RELAY_INJECT_KINDS.map((kind) => KIND_INFO.get(kind)!);

/** An empty box is "no number", not 0: the schema then says what it wants. */
const num = (s: string): number => (s.trim() === '' ? Number.NaN : Number(s));

/** Operator units to the API's: MiB/s → bytes/s. */
function toInput(v: Values, record: boolean, faults: readonly FaultRow[]): StartQemuMigrationInput {
  return {
    sourceQmp: v.sourceQmp.trim(),
    destinationQmp: v.destinationQmp.trim(),
    channels: num(v.channels),
    maxBandwidth: Math.round(num(v.maxBandwidth) * MiB),
    migrationHost: v.migrationHost.trim(),
    relayHost: v.relayHost.trim(),
    record,
    inject: faults.map(rowSpec),
  };
}

const FIELDS = ['sourceQmp', 'destinationQmp', 'channels', 'maxBandwidth', 'migrationHost', 'relayHost', 'record', 'inject'] as const;

export function QemuMigrationForm() {
  const router = useRouter();
  const [values, setValues] = useState<Values>(DEFAULTS);
  const [record, setRecord] = useState(false);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formError, setFormError] = useState<{ code: string; message: string } | null>(null);
  const [pending, setPending] = useState(false);
  const [faults, setFaults] = useState<FaultRow[]>([]);
  const [labOpen, setLabOpen] = useState(false);
  const [nextKey, setNextKey] = useState(1);
  // Prerendered: until React has taken the form over, a click would submit natively.
  const [ready, setReady] = useState(false);
  useEffect(() => setReady(true), []);

  const clearError = (name: string) => {
    if (errors[name]) setErrors(({ [name]: _gone, ...rest }) => rest);
  };

  function onChange(e: ChangeEvent<HTMLInputElement>) {
    const name = e.target.name as keyof Values;
    setValues((v) => ({ ...v, [name]: e.target.value }));
    // The message goes with the value it was about.
    clearError(name);
  }

  async function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    if (pending) return;
    setFormError(null);
    const input = toInput(values, record, faults);
    const parsed = StartQemuMigrationSchema.safeParse(input);
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
      const summary = await api.startQemuMigration(parsed.data);
      router.push(`/migrations/${encodeURIComponent(summary.id)}`);
    } catch (err) {
      setPending(false);
      if (err instanceof ApiError && err.fields && Object.keys(err.fields).length > 0) {
        // 422: a QMP socket it could not reach names its field; fields without a box are listed below.
        setErrors(err.fields);
        if (err.fields.inject) setLabOpen(true);
      } else if (err instanceof ApiError) {
        // 502: QEMU refused a command; its message is QEMU's own and is shown as it is.
        setFormError({ code: err.code, message: err.message });
      } else {
        setFormError({ code: 'ERROR', message: String(err) });
      }
    }
  }

  const described = (name: string) => [`qemu-hint-${name}`, errors[name]?.length ? `qemu-error-${name}` : null].filter(Boolean).join(' ');
  const common = (name: keyof Values) => ({
    id: `qemu-field-${name}`,
    'data-testid': `qemu-field-${name}`,
    name,
    value: values[name],
    onChange,
    'aria-describedby': described(name),
    'aria-invalid': errors[name]?.length ? true : undefined,
  });
  const otherErrors = Object.entries(errors).filter(([k]) => !(FIELDS as readonly string[]).includes(k));

  function changeFaults(next: (rows: FaultRow[]) => FaultRow[]) {
    setFaults(next);
    clearError('inject');
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
    <form data-testid="qemu-migration" className="new-migration qemu-migration" onSubmit={onSubmit} noValidate>
      <Field name="sourceQmp" label="Source QMP" hint={<>the source QEMU&apos;s QMP socket: a unix socket path or HOST:PORT</>} errors={errors.sourceQmp}>
        <input {...common('sourceQmp')} type="text" autoComplete="off" spellCheck={false} placeholder="/run/qemu/src.qmp" />
      </Field>
      <Field
        name="destinationQmp"
        label="Destination QMP"
        hint={
          <>
            the destination QEMU&apos;s, started with <code>-incoming defer</code> and the same <code>-uuid</code>
          </>
        }
        errors={errors.destinationQmp}
      >
        <input {...common('destinationQmp')} type="text" autoComplete="off" spellCheck={false} placeholder="/run/qemu/dst.qmp" />
      </Field>
      <Field name="channels" label="Channels" hint="multifd channels, 1 to 255, set on both QEMUs" errors={errors.channels}>
        <input {...common('channels')} type="number" inputMode="numeric" min={1} max={255} step={1} />
      </Field>
      <Field name="maxBandwidth" label="Max bandwidth (MiB/s)" hint="0 = uncapped (QEMU's default cap of 128 MiB/s is lifted)" errors={errors.maxBandwidth}>
        <input {...common('maxBandwidth')} type="number" inputMode="decimal" min={0} step="any" />
      </Field>
      <Field name="migrationHost" label="Migration host" hint={<>where the destination QEMU listens (<code>migrate-incoming tcp:HOST:0</code>)</>} errors={errors.migrationHost}>
        <input {...common('migrationHost')} type="text" autoComplete="off" spellCheck={false} />
      </Field>
      <Field name="relayHost" label="Relay host" hint="where the console's relay listens for the source QEMU" errors={errors.relayHost}>
        <input {...common('relayHost')} type="text" autoComplete="off" spellCheck={false} />
      </Field>
      <div className={errors.record?.length ? 'field check invalid' : 'field check'}>
        <label htmlFor="qemu-field-record">
          <input
            id="qemu-field-record"
            data-testid="qemu-field-record"
            name="record"
            type="checkbox"
            checked={record}
            onChange={(e) => {
              setRecord(e.target.checked);
              clearError('record');
            }}
            aria-describedby={described('record')}
          />{' '}
          Record for inspect
        </label>
        <p className="hint" id="qemu-hint-record">
          keep each connection&apos;s bytes in the console&apos;s data directory, for <code>multifd inspect</code>
        </p>
        <FieldError name="record" errors={errors.record} />
      </div>
      <fieldset
        className={injectInvalid ? 'fault-lab has-error' : 'fault-lab'}
        data-testid="qemu-fault-lab"
        aria-describedby={injectInvalid ? 'qemu-error-inject' : 'qemu-hint-inject'}
      >
        <legend>
          <button
            type="button"
            className="lab-toggle"
            data-testid="qemu-fault-lab-toggle"
            aria-expanded={labOpen}
            aria-controls="qemu-fault-lab-body"
            onClick={() => setLabOpen((o) => !o)}
          >
            {labOpen ? '▾' : '▸'} Fault lab
          </button>
          {faults.length > 0 && (
            <span className="lab-badge" data-testid="qemu-fault-count">
              {faults.length} fault{faults.length === 1 ? '' : 's'} will be injected
            </span>
          )}
        </legend>
        {labOpen && (
          <div id="qemu-fault-lab-body">
            <p className="hint" id="qemu-hint-inject">
              The relay alters QEMU&apos;s real traffic on purpose, one fault per channel: handshake faults, and drop. The migration is marked as a fault-lab run everywhere it is shown.
            </p>
            {faults.length > 0 && (
              <ul className="fault-rows">
                {faults.map((r, i) => (
                  <QemuFaultRow
                    key={r.key}
                    row={r}
                    index={i}
                    onEdit={(patch) => editFault(r.key, patch)}
                    onRemove={() => changeFaults((rows) => rows.filter((x) => x.key !== r.key))}
                  />
                ))}
              </ul>
            )}
            <button type="button" className="small" data-testid="qemu-add-fault" onClick={addFault} disabled={faults.length >= 255}>
              Add fault
            </button>
          </div>
        )}
        {injectInvalid && (
          <p className="field-error" data-testid="qemu-error-inject" id="qemu-error-inject" role="alert">
            {errors.inject!.join(' · ')}
          </p>
        )}
      </fieldset>
      {otherErrors.length > 0 && (
        <ul className="field-errors">
          {otherErrors.map(([k, msgs]) => (
            <li key={k}>
              <FieldError name={k} errors={msgs} />
            </li>
          ))}
        </ul>
      )}
      {formError && (
        <p className="form-error" role="alert" data-testid="qemu-form-error" data-code={formError.code}>
          <span className="form-error-code">{formError.code}</span>
          <span data-testid="qemu-form-error-message">{formError.message}</span>
        </p>
      )}
      <div className="actions">
        <button type="submit" data-testid="qemu-start" disabled={pending || !ready}>
          {pending ? 'Starting…' : 'Start QEMU migration'}
        </button>
      </div>
    </form>
  );
}

/** One fault: channel, one of the relay's kinds, its argument, and the spec it makes. */
function QemuFaultRow({ row: r, index: i, onEdit, onRemove }: { row: FaultRow; index: number; onEdit: (patch: Partial<FaultRow>) => void; onRemove: () => void }) {
  const info = KIND_INFO.get(r.kind);
  return (
    <li className="fault-row" data-testid="qemu-fault-row">
      <label>
        <span>channel</span>
        <input
          name={`inject.${i}.channel`}
          data-testid="qemu-fault-channel"
          type="number"
          inputMode="numeric"
          min={0}
          max={254}
          step={1}
          value={r.channel}
          onChange={(e) => onEdit({ channel: e.target.value })}
        />
      </label>
      <label>
        <span>fault</span>
        <select name={`inject.${i}.kind`} data-testid="qemu-fault-kind" value={r.kind} onChange={(e) => onEdit({ kind: e.target.value as InjectKind })}>
          {RELAY_KINDS.map((k) => (
            <option key={k.kind} value={k.kind} title={k.label}>
              {k.kind === 'id' ? 'id-N' : k.kind}
            </option>
          ))}
        </select>
      </label>
      <label>
        <span>{info?.arg ? info.arg.label : 'argument'}</span>
        <input
          name={`inject.${i}.arg`}
          data-testid="qemu-fault-arg"
          type="text"
          inputMode="numeric"
          autoComplete="off"
          spellCheck={false}
          disabled={!info?.arg}
          placeholder={info?.arg ? (info.arg.required ? 'required' : 'optional') : '—'}
          value={r.arg}
          onChange={(e) => onEdit({ arg: e.target.value })}
        />
      </label>
      <p className="fault-what">
        <code className="fault-spec" data-testid="qemu-fault-spec">
          {rowSpec(r)}
        </code>{' '}
        <span className="hint">{info?.label}</span>
      </p>
      <button type="button" className="small" data-testid="qemu-remove-fault" aria-label={`remove fault ${rowSpec(r)}`} onClick={onRemove}>
        Remove
      </button>
    </li>
  );
}

function FieldError({ name, errors }: { name: string; errors?: string[] }) {
  if (!errors?.length) return null;
  return (
    <p className="field-error" data-testid={`qemu-error-${name}`} id={`qemu-error-${name}`} role="alert">
      {errors.join(' · ')}
    </p>
  );
}

function Field({ name, label, hint, errors, children }: { name: string; label: string; hint: ReactNode; errors?: string[]; children: ReactNode }) {
  return (
    <div className={errors?.length ? 'field invalid' : 'field'}>
      <label htmlFor={`qemu-field-${name}`}>{label}</label>
      {children}
      <p className="hint" id={`qemu-hint-${name}`}>
        {hint}
      </p>
      <FieldError name={name} errors={errors} />
    </div>
  );
}
