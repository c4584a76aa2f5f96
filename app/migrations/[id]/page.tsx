import type { Metadata } from 'next';
import Link from 'next/link';
import { LiveView } from '../../components/live/LiveView';

interface Props {
  params: Promise<{ id: string }>;
}

export async function generateMetadata({ params }: Props): Promise<Metadata> {
  const { id } = await params;
  return { title: `Migration ${id.length > 13 ? `${id.slice(0, 8)}…` : id}` };
}

/** The live view of one migration; the same view for one that is over. */
export default async function MigrationPage({ params }: Props) {
  const { id } = await params;
  return (
    <>
      <nav className="crumbs" aria-label="breadcrumb">
        <Link href="/">Console</Link> / <Link href="/history">History</Link> / <span className="mono">{id}</span>
      </nav>
      <LiveView id={id} />
    </>
  );
}
