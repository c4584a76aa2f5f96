/**
 * Marks where two values differ, character by character, so a UUID mismatch reads at a
 * glance: `7c9e…0ae7` vs `7c9e…0ae8` with the differing characters highlighted.
 */

export interface Segment {
  text: string;
  differs: boolean;
}

/** Segments of `text` with the characters that differ from `other` at the same position marked. */
export function diffSegments(text: string, other: string): Segment[] {
  const out: Segment[] = [];
  for (let i = 0; i < text.length; i++) {
    const differs = i >= other.length || text[i] !== other[i];
    const last = out[out.length - 1];
    if (last && last.differs === differs) last.text += text[i];
    else out.push({ text: text[i], differs });
  }
  return out;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const HEX = /^[0-9a-f]+$/i;

/** Worth a character diff: two UUIDs, or two hex strings (digests, magics) of one length. */
export function comparable(a: string | null, b: string | null): boolean {
  if (a === null || b === null) return false;
  if (UUID.test(a) && UUID.test(b)) return true;
  return a.length === b.length && HEX.test(a) && HEX.test(b);
}
