export default function Loading() {
  return <p className="muted loading">Loading the console…</p>;
}
