/**
 * A button's action on a row (stop a guest, remove an agent, cancel an evacuation): which rows
 * have one in flight (their buttons wait), and the last failure in words, for the list to
 * show. The list itself changes by broadcast; the caller may apply the answer ahead of it.
 * For client components only.
 */
import { useState } from 'react';
import { ApiError } from './api';

export function describeError(err: unknown): string {
  return err instanceof ApiError ? `${err.code}: ${err.message}` : String(err);
}

export function useAction() {
  const [pending, setPending] = useState<ReadonlySet<string>>(new Set());
  const [error, setError] = useState<string | null>(null);

  /** Runs `fn` for row `key`; its answer, or undefined once its failure is shown. */
  async function run<T>(key: string, fn: () => Promise<T>): Promise<T | undefined> {
    setError(null);
    setPending((s) => new Set(s).add(key));
    try {
      return await fn();
    } catch (err) {
      setError(describeError(err));
      return undefined;
    } finally {
      setPending((s) => {
        const n = new Set(s);
        n.delete(key);
        return n;
      });
    }
  }

  return { pending, error, run };
}
