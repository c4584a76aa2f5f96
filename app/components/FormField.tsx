/**
 * A form box's label, hint and messages, as both "New migration" forms show them. Ids and
 * test ids start with the form's prefix ('' or 'qemu-'): both forms stay mounted under their
 * tabs. The box itself takes its id from useMigrationForm's `input`.
 */
import type { ReactNode, SelectHTMLAttributes } from 'react';
import { COMPRESSION_METHODS } from '../../lib/contracts';

export function Field({ prefix, name, label, hint, errors, children }: { prefix: string; name: string; label: string; hint: ReactNode; errors?: string[]; children: ReactNode }) {
  return (
    <div className={errors?.length ? 'field invalid' : 'field'}>
      <label htmlFor={`${prefix}field-${name}`}>{label}</label>
      {children}
      <p className="hint" id={`${prefix}hint-${name}`}>
        {hint}
      </p>
      <FieldError prefix={prefix} name={name} errors={errors} />
    </div>
  );
}

/** A name's messages, announced (role=alert) unless `alert` is false. */
export function FieldError({ prefix, name, errors, alert = true }: { prefix: string; name: string; errors?: string[]; alert?: boolean }) {
  if (!errors?.length) return null;
  return (
    <p className="field-error" data-testid={`${prefix}error-${name}`} id={`${prefix}error-${name}`} role={alert ? 'alert' : undefined}>
      {errors.join(' · ')}
    </p>
  );
}

/** Messages about names the form has no box for (a 422 may carry some), under the form. */
export function OtherErrors({ prefix, errors, alert }: { prefix: string; errors: [string, string[]][]; alert: boolean }) {
  if (errors.length === 0) return null;
  return (
    <ul className="field-errors">
      {errors.map(([k, msgs]) => (
        <li key={k}>
          <FieldError prefix={prefix} name={k} errors={msgs} alert={alert} />
        </li>
      ))}
    </ul>
  );
}

/** The compression method, as every migration form offers it (the hint says what it applies to). */
export function CompressionField({ field, select, hint }: { field: { prefix: string; name: string; errors?: string[] }; select: SelectHTMLAttributes<HTMLSelectElement>; hint: ReactNode }) {
  return (
    <Field {...field} label="Compression" hint={hint}>
      <select {...select}>
        {COMPRESSION_METHODS.map((m) => (
          <option key={m} value={m}>
            {m}
          </option>
        ))}
      </select>
    </Field>
  );
}
