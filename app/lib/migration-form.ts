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
import { useRef, useState, type Dispatch, type SetStateAction } from 'react';
import type { z } from 'zod';
import type { FieldErrors } from '../../lib/contracts/console';
import { defaultArg, faultProblems, freeChannel, type FaultRow } from './fault-lab';
import { useSchemaForm, type FormError } from './schema-form';

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

export type { FormError };

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
  const router = useRouter();
  // The lab clears the form's message about faults; the form is made after the lab.
  const clearInject = useRef<(name: string) => void>(() => {});
  const lab = useFaultLab(() => clearInject.current('inject'));
  const form = useSchemaForm({
    prefix: spec.prefix,
    testIds: false,
    defaults: spec.defaults,
    fields: spec.fields,
    schema: spec.schema,
    toInput: (values: V) => spec.toInput(values, lab.rows),
    // The fault rows, as far as the form can tell (the server parses each fully).
    check: (input): FieldErrors => {
      const problems = faultProblems(lab.rows, Number((input as { channels?: number }).channels));
      return problems.length > 0 ? { inject: problems } : {};
    },
    onErrors: (found) => {
      if (found.inject) lab.setOpen(true);
    },
    submit: spec.start,
    onDone: (summary) => router.push(`/migrations/${encodeURIComponent(summary.id)}`),
    after: (sent) => sent,
    stayPending: true,
  });
  clearInject.current = form.clearError;
  return { ...form, lab };
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
