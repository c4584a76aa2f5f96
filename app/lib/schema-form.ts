/**
 * How the console's forms work: boxes in operator units, the server's schema checked first
 * (and whatever else the form can tell, `check`), messages next to their field, a 422's
 * `fields` shown the same way, other failures as the form's error. The fleet's small forms
 * (add an agent, a new guest, evacuate) use it as it is and stay on the page after a success;
 * the "New migration" forms add the fault lab and go to the migration's page
 * (app/lib/migration-form.ts).
 *
 * Ids and test ids carry the form's prefix: an agent's forms repeat once per agent on the
 * page, so theirs name the agent. For client components only.
 */
import { useEffect, useRef, useState, type ChangeEvent, type FormEvent } from 'react';
import type { z } from 'zod';
import { fieldErrors, type FieldErrors } from '../../lib/contracts/console';
import { ApiError } from './api';
/** A failure that is not about one field. `code` is null when it is no ApiError (then it has none). */
export interface FormError {
  code: string | null;
  message: string;
}

export interface SchemaFormSpec<V extends { [K in keyof V]: string }, Out, R> {
  /** The start of every id and test id the form gives out. */
  prefix: string;
  /** Boxes carry a data-testid named like their id (default true). */
  testIds?: boolean;
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
  /** More problems than the schema can see (the fault rows), by field; any of them stops the submit. */
  check?: (input: unknown) => FieldErrors;
  /** Field problems are being shown (the fault lab opens for its own). */
  onErrors?: (found: FieldErrors) => void;
  /** After a success the form stays busy: the page is about to change. */
  stayPending?: boolean;
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

  const clearError = (name: string) => {
    if (errors[name]) setErrors(({ [name]: _gone, ...rest }) => rest);
  };

  // After a refused submit the first box in error takes the focus (and comes into view): its
  // message may be off screen, and a keyboard user lands where the fix goes.
  const focusFirstError = useRef(false);
  useEffect(() => {
    if (!focusFirstError.current) return;
    focusFirstError.current = false;
    const box = document.querySelector<HTMLElement>(`[id^="${prefix}field-"][aria-invalid="true"]`);
    if (box) {
      box.focus({ preventScroll: true });
      box.scrollIntoView({ block: 'center' });
    }
  }, [errors, prefix]);

  function showErrors(found: FieldErrors) {
    focusFirstError.current = true;
    setErrors(found);
    spec.onErrors?.(found);
  }

  function onChange(e: ChangeEvent<HTMLInputElement | HTMLSelectElement>) {
    const name = e.target.name;
    setValues((v) => ({ ...v, [name]: e.target.value }));
    // The message goes with the value it was about.
    clearError(name);
  }

  async function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    if (pending) return;
    setFormError(null);
    const input = spec.toInput(values);
    const parsed = spec.schema.safeParse(input);
    const found = parsed.success ? {} : fieldErrors(parsed.error);
    for (const [k, msgs] of Object.entries(spec.check?.(input) ?? {})) found[k] = [...new Set([...(found[k] ?? []), ...msgs])];
    if (!parsed.success || Object.keys(found).length > 0) {
      showErrors(found);
      return;
    }
    setErrors({});
    setPending(true);
    let done = false;
    try {
      const result = await spec.submit(parsed.data);
      done = true;
      setValues(spec.after ? spec.after(values) : spec.defaults);
      spec.onDone?.(result);
    } catch (err) {
      if (err instanceof ApiError && err.fields && Object.keys(err.fields).length > 0) {
        // A 422: fields the form has no box for are listed under the form.
        showErrors(err.fields);
      } else if (err instanceof ApiError) setFormError({ code: err.code, message: err.message });
      else setFormError({ code: null, message: String(err) });
    } finally {
      if (!(done && spec.stayPending)) setPending(false);
    }
  }

  const described = (name: string) => [`${prefix}hint-${name}`, errors[name]?.length ? `${prefix}error-${name}` : null].filter(Boolean).join(' ');
  /** A box's own props: its id, value, messages, and (unless told otherwise) a test id of the same name. */
  const input = (name: keyof V & string) => ({
    id: `${prefix}field-${name}`,
    ...(spec.testIds === false ? {} : { 'data-testid': `${prefix}field-${name}` }),
    name,
    value: values[name],
    onChange,
    'aria-describedby': described(name),
    'aria-invalid': errors[name]?.length ? true : undefined,
  });
  /** What <Field> needs to label a box and show its messages. */
  const field = (name: string) => ({ prefix, name, errors: errors[name] });
  const otherErrors = Object.entries(errors).filter(([k]) => !spec.fields.includes(k));

  /** Sets a box from outside it (another part of the page chose a value), its message cleared. */
  function setValue(name: keyof V & string, value: string) {
    setValues((v) => ({ ...v, [name]: value }));
    clearError(name);
  }

  return { values, errors, formError, pending, ready, onSubmit, clearError, described, input, field, otherErrors, setValue };
}
