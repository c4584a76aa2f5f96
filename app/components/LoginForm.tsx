'use client';

/**
 * The operator's token, once per browser: the server answers with a session cookie
 * (HttpOnly), then the page it was asked for loads with a full navigation, so its socket
 * connects with the cookie too.
 */
import { useEffect, useState, type FormEvent } from 'react';

/** Only a path of this console: never another site (an open redirect), however it is spelled. */
function nextPath(): string {
  const next = new URLSearchParams(window.location.search).get('next') ?? '/';
  try {
    // '/\\evil.com' and '//evil.com' resolve to another origin: refused by resolving, not by pattern.
    const url = new URL(next, window.location.origin);
    if (url.origin !== window.location.origin || !next.startsWith('/') || url.pathname === '/login') return '/';
    return `${url.pathname}${url.search}${url.hash}`;
  } catch {
    return '/';
  }
}

export function LoginForm() {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [pending, setPending] = useState(false);
  const [ready, setReady] = useState(false);
  useEffect(() => setReady(true), []);

  async function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    if (pending) return;
    setPending(true);
    setError(null);
    try {
      const res = await fetch('/api/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: token.trim() }) });
      if (res.ok) {
        window.location.assign(nextPath());
        return;
      }
      const body = (await res.json().catch(() => ({}))) as { message?: string };
      setError(body.message ?? `the console answered ${res.status}`);
    } catch (err) {
      setError(`the console did not answer (${(err as Error).message})`);
    }
    setPending(false);
  }

  return (
    <form onSubmit={onSubmit} data-testid="login-form" noValidate>
      <div className={error ? 'field invalid' : 'field'}>
        <label htmlFor="login-token">Console token</label>
        <input
          id="login-token"
          name="token"
          type="password"
          autoComplete="current-password"
          value={token}
          onChange={(e) => setToken(e.target.value)}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? 'login-error' : 'login-hint'}
          data-testid="login-token"
        />
        <p className="hint" id="login-hint">
          MULTIFD_CONSOLE_TOKEN, or the token the console printed when it first started (kept in its data directory, console.token)
        </p>
        {error && (
          <p className="field-error" id="login-error" role="alert" data-testid="login-error">
            {error}
          </p>
        )}
      </div>
      <div className="actions">
        <button type="submit" data-testid="login-submit" disabled={!ready || pending || token.trim() === ''}>
          {pending ? 'Logging in…' : 'Log in'}
        </button>
      </div>
    </form>
  );
}
