export default function Loading() {
  return <p className="muted loading">Loading the migration…</p>;
}
