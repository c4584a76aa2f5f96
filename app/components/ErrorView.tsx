'use client';

/** What every route segment's error.tsx shows: the message, the digest, and a retry. */
import { useEffect } from 'react';

export interface ErrorProps {
  error: unknown;
  retry?: () => void;
  reset?: () => void;
}

export function ErrorView({ what, error, retry, reset }: ErrorProps & { what: string }) {
  useEffect(() => {
    console.error(error);
  }, [error]);
  const message = error instanceof Error ? error.message : String(error);
  const digest = error instanceof Error ? (error as Error & { digest?: string }).digest : undefined;
  const again = retry ?? reset;
  return (
    <section className="panel" role="alert" data-testid="error-view">
      <h1>{what} failed to render</h1>
      <p className="error-text">{message}</p>
      {digest && <p className="muted mono">digest {digest}</p>}
      {again && (
        <button type="button" onClick={() => again()}>
          Try again
        </button>
      )}
    </section>
  );
}
