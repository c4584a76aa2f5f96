import type { Metadata } from 'next';
import { LoginForm } from '../components/LoginForm';

export const metadata: Metadata = { title: 'Log in' };

/**
 * Shown when the console listens beyond loopback and this browser has not logged in: the
 * operator's token (MULTIFD_CONSOLE_TOKEN, or the one the console printed at its first start).
 */
export default function LoginPage() {
  return (
    <section className="panel login" aria-labelledby="login-title">
      <h1 id="login-title">Log in</h1>
      <LoginForm />
    </section>
  );
}
