/**
 * What the "New migration" forms (built-in guest, QEMU, fleet) do the same way: their text boxes,
 * their messages, their fault lab rows, and the submit flow. The schema the server uses is
 * checked first and the fault rows as far as the form can tell; nothing is sent while either
 * has a problem. A 422's `fields` are shown the same way; other failures as the form's error.
 * Then the page of the migration it started.
 *
 * Ids carry the form's prefix ('', 'qemu-' or 'fleet-'): the forms stay mounted under their tabs.
 * For client components only.
 */
import { useRouter } from 'next/navigation';
import { useEffect, useState, type ChangeEvent, type Dispatch, type FormEvent, type SetStateAction } from 'react';
import type { z } from 'zod';
import { fieldErrors, type FieldErrors } from '../../lib/contracts/console';
import { ApiError } from './api';
import { defaultArg, faultProblems, freeChannel, type FaultRow } from './fault-lab';

/** An empty box is "no number", not 0: the schema then says what it wants. */
export const num = (s: string): number => (s.trim() === '' ? Number.NaN : Number(s));

export interface MigrationFormSpec<V extends { [K in keyof V]: string }, Out> {
  /** '', 'qemu-' or 'fleet-': the start of every id the form gives out. */
  prefix: string;
  defaults: V;
  /** The names the form shows errors next to; a 422 may name others (listed under the form). */
  fields: readonly string[];
  schema: z.ZodType<Out>;
  /** The boxes and fault rows in the API's units, as the schema takes them. */
  toInput: (values: V, faults: readonly FaultRow[]) => { channels?: number };
  start: (input: Out) => Promise<{ id: string }>;
}

/** A failure that is not about one field. `code` is null when it is no ApiError (then it has none). */
export interface FormError {
  code: string | null;
  message: string;
}

/** The fault lab's rows and whether it is open. */
export interface FaultLabState {
  rows: FaultRow[];
  open: boolean;
  setOpen: Dispatch<SetStateAction<boolean>>;
  add(): void;
  edit(key: number, patch: Partial<FaultRow>): void;
  remove(key: number): void;
}

export function useMigrationForm<V extends { [K in keyof V]: string }, Out>(spec: MigrationFormSpec<V, Out>) {
  const { prefix } = spec;
  const router = useRouter();
  const [values, setValues] = useState<V>(spec.defaults);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formError, setFormError] = useState<FormError | null>(null);
  const [pending, setPending] = useState(false);
  // The form is prerendered: until React has taken it over, a click would submit natively
  // and typing would be reset, so the submit button stays disabled until then.
  const [ready, setReady] = useState(false);
  useEffect(() => setReady(true), []);

  const clearError = (name: string) => {
    if (errors[name]) setErrors(({ [name]: _gone, ...rest }) => rest);
  };
  const lab = useFaultLab(() => clearError('inject'));

  /** Field problems: the lab opens when one is about its faults. */
  function showErrors(found: FieldErrors) {
    setErrors(found);
    if (found.inject) lab.setOpen(true);
  }

  function onChange(e: ChangeEvent<HTMLInputElement | HTMLSelectElement>) {
    const name = e.target.name as keyof V & string;
    setValues((v) => ({ ...v, [name]: e.target.value }));
    // The message goes with the value it was about.
    clearError(name);
  }

  async function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    if (pending) return;
    setFormError(null);
    const input = spec.toInput(values, lab.rows);
    const parsed = spec.schema.safeParse(input);
    const found = parsed.success ? {} : fieldErrors(parsed.error);
    const problems = faultProblems(lab.rows, Number(input.channels));
    if (problems.length > 0) found.inject = [...new Set([...(found.inject ?? []), ...problems])];
    if (!parsed.success || problems.length > 0) {
      showErrors(found);
      return;
    }
    setErrors({});
    setPending(true);
    try {
      const summary = await spec.start(parsed.data);
      router.push(`/migrations/${encodeURIComponent(summary.id)}`);
    } catch (err) {
      setPending(false);
      if (err instanceof ApiError && err.fields && Object.keys(err.fields).length > 0) {
        // 422: fields the form has no box for (e.g. `guest`) are listed under the form.
        showErrors(err.fields);
      } else if (err instanceof ApiError) {
        setFormError({ code: err.code, message: err.message });
      } else {
        setFormError({ code: null, message: String(err) });
      }
    }
  }

  const described = (name: string) => [`${prefix}hint-${name}`, errors[name]?.length ? `${prefix}error-${name}` : null].filter(Boolean).join(' ');
  /** A box's own props: its id, value and messages. */
  const input = (name: keyof V & string) => ({
    id: `${prefix}field-${name}`,
    name,
    value: values[name],
    onChange,
    'aria-describedby': described(name),
    'aria-invalid': errors[name]?.length ? true : undefined,
  });
  /** What <Field> needs to label a box and show its messages. */
  const field = (name: string) => ({ prefix, name, errors: errors[name] });
  const otherErrors = Object.entries(errors).filter(([k]) => !spec.fields.includes(k));

  return { values, errors, formError, pending, ready, lab, onSubmit, clearError, described, input, field, otherErrors };
}

function useFaultLab(clearInjectError: () => void): FaultLabState {
  const [rows, setRows] = useState<FaultRow[]>([]);
  const [open, setOpen] = useState(false);
  const [nextKey, setNextKey] = useState(1);

  // The message about the faults goes with the rows it was about.
  function change(next: (rows: FaultRow[]) => FaultRow[]) {
    setRows(next);
    clearInjectError();
  }
  return {
    rows,
    open,
    setOpen,
    add() {
      change((rs) => [...rs, { key: nextKey, channel: String(freeChannel(rows)), kind: 'uuid', arg: '' }]);
      setNextKey((k) => k + 1);
      setOpen(true);
    },
    edit(key, patch) {
      // A new kind starts from its own default argument.
      change((rs) => rs.map((r) => (r.key !== key ? r : patch.kind && patch.kind !== r.kind ? { ...r, ...patch, arg: defaultArg(patch.kind) } : { ...r, ...patch })));
    },
    remove(key) {
      change((rs) => rs.filter((x) => x.key !== key));
    },
  };
}
