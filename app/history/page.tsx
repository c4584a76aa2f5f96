import type { Metadata } from 'next';
import { HistoryTable } from '../components/HistoryTable';

export const metadata: Metadata = { title: 'History' };

/** Every migration this console ran, newest first; each links to its view. */
export default function HistoryPage() {
  return (
    <section className="panel" aria-labelledby="history-title">
      <h1 id="history-title">History</h1>
      <HistoryTable />
    </section>
  );
}
