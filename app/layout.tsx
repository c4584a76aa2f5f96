import type { Metadata, Viewport } from 'next';
import Link from 'next/link';
import type { ReactNode } from 'react';
import { ConnectionStatus } from './components/ConnectionStatus';
import './globals.css';

export const metadata: Metadata = {
  title: { default: 'multifd console', template: '%s · multifd' },
  description: 'Start, watch and debug live migrations channel by channel.',
  icons: { icon: { url: '/favicon.svg', type: 'image/svg+xml' } },
};

export const viewport: Viewport = {
  colorScheme: 'light',
};

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body>
        <header className="site-header">
          <Link href="/" className="brand">
            multifd
          </Link>
          <nav aria-label="main">
            <Link href="/">Console</Link>
            <Link href="/history">History</Link>
            <Link href="/agents">Agents</Link>
          </nav>
          <ConnectionStatus />
        </header>
        <main className="site-main">{children}</main>
      </body>
    </html>
  );
}
