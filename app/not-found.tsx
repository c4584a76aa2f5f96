import Link from 'next/link';

export default function NotFound() {
  return (
    <section className="panel">
      <h1>Not found</h1>
      <p>
        No such page. <Link href="/">Back to the console</Link>
      </p>
    </section>
  );
}
