/**
 * The fleet's small forms (add an agent, a new guest on one, evacuate one) the way the
 * "New migration" forms work (app/lib/migration-form.ts): boxes in operator units, the
 * server's schema checked first, messages next to their field, a 422's `fields` shown the
 * same way, other failures as the form's error. What differs: no fault lab, and a success
 * stays on the page (the caller gets the answer, the boxes are reset as the form says).
 *
 * Ids and test ids carry the form's prefix: an agent's forms repeat once per agent on the
 * page, so theirs name the agent. For client components only.
 */
import { useEffect, useState, type ChangeEvent, type FormEvent } from 'react';
import type { z } from 'zod';
import { fieldErrors, type FieldErrors } from '../../lib/contracts/console';
import { ApiError } from './api';
import type { FormError } from './migration-form';

export interface SchemaFormSpec<V extends { [K in keyof V]: string }, Out, R> {
  /** The start of every id and test id the form gives out. */
  prefix: string;
  defaults: V;
  /** The names the form shows errors next to; a 422 may name others (listed under the form). */
  fields: readonly string[];
  schema: z.ZodType<Out>;
  /** The boxes in the API's units, as the schema takes them. */
  toInput: (values: V) => unknown;
  submit: (input: Out) => Promise<R>;
  /** After a success: the server's answer. */
  onDone?: (result: R) => void;
  /** The boxes after a success, from what was sent; default: back to the defaults (a secret is not kept). */
  after?: (sent: V) => V;
}

export function useSchemaForm<V extends { [K in keyof V]: string }, Out, R>(spec: SchemaFormSpec<V, Out, R>) {
  const { prefix } = spec;
  const [values, setValues] = useState<V>(spec.defaults);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formError, setFormError] = useState<FormError | null>(null);
  const [pending, setPending] = useState(false);
  // Prerendered: until React has taken the form over, a click would submit it natively.
  const [ready, setReady] = useState(false);
  useEffect(() => setReady(true), []);

  function onChange(e: ChangeEvent<HTMLInputElement | HTMLSelectElement>) {
    const name = e.target.name;
    setValues((v) => ({ ...v, [name]: e.target.value }));
    // The message goes with the value it was about.
    if (errors[name]) setErrors(({ [name]: _gone, ...rest }) => rest);
  }

  async function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    if (pending) return;
    setFormError(null);
    const parsed = spec.schema.safeParse(spec.toInput(values));
    if (!parsed.success) {
      setErrors(fieldErrors(parsed.error));
      return;
    }
    setErrors({});
    setPending(true);
    try {
      const result = await spec.submit(parsed.data);
      setValues(spec.after ? spec.after(values) : spec.defaults);
      spec.onDone?.(result);
    } catch (err) {
      if (err instanceof ApiError && err.fields && Object.keys(err.fields).length > 0) setErrors(err.fields);
      else if (err instanceof ApiError) setFormError({ code: err.code, message: err.message });
      else setFormError({ code: null, message: String(err) });
    } finally {
      setPending(false);
    }
  }

  const described = (name: string) => [`${prefix}hint-${name}`, errors[name]?.length ? `${prefix}error-${name}` : null].filter(Boolean).join(' ');
  /** A box's own props: its id, value, messages, and a test id of the same name. */
  const input = (name: keyof V & string) => ({
    id: `${prefix}field-${name}`,
    'data-testid': `${prefix}field-${name}`,
    name,
    value: values[name],
    onChange,
    'aria-describedby': described(name),
    'aria-invalid': errors[name]?.length ? true : undefined,
  });
  /** What <Field> needs to label a box and show its messages. */
  const field = (name: string) => ({ prefix, name, errors: errors[name] });
  const otherErrors = Object.entries(errors).filter(([k]) => !spec.fields.includes(k));

  return { errors, formError, pending, ready, onSubmit, input, field, otherErrors };
}
