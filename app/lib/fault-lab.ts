/**
 * The fault lab's rows, shared by both forms (built-in guest and QEMU): one row is a channel,
 * a kind and its argument, rendered as `chK:KIND[:ARG]` with injectSpec. What the form can
 * tell about them before sending is checked here; the server parses each fully.
 *
 * Pure: imports only the contracts.
 */
import { INJECT_HEADER_FIELDS, INJECT_KINDS, injectSpec, type InjectKind } from '../../lib/contracts/console';

/** One fault lab row: channel K, a kind, its argument; rendered as `chK:KIND[:ARG]`. */
export interface FaultRow {
  key: number;
  channel: string;
  kind: InjectKind;
  arg: string;
}

/** A kind the lab offers: its name, what it does, the argument it takes. */
export type KindInfo = (typeof INJECT_KINDS)[number];
export const KIND_INFO = new Map(INJECT_KINDS.map((k) => [k.kind, k]));
export const defaultArg = (kind: InjectKind) => (kind === 'bad-header' ? INJECT_HEADER_FIELDS[0] : '');
export const rowSpec = (r: FaultRow) => injectSpec(r.channel.trim(), r.kind, r.arg);

/**
 * What the form can tell about the fault rows before sending (the server parses each fully):
 * a channel number, the argument a kind needs, one fault per channel, a channel that exists.
 */
export function faultProblems(rows: readonly FaultRow[], channels: number): string[] {
  const out: string[] = [];
  const seen = new Map<number, string>();
  for (const r of rows) {
    const spec = rowSpec(r);
    const info = KIND_INFO.get(r.kind);
    const ch = r.channel.trim();
    if (!/^\d{1,3}$/.test(ch)) {
      out.push(`fault ${spec}: the channel must be a whole number from 0`);
      continue;
    }
    const k = Number(ch);
    if (Number.isInteger(channels) && channels >= 1 && k >= channels) {
      out.push(`fault ${spec}: channel ${k} does not exist (channels are 0..${channels - 1})`);
    }
    const arg = r.arg.trim();
    if (info?.arg?.required && arg === '') out.push(`fault ${spec}: ${r.kind} needs ${info.arg.label}`);
    else if (arg !== '' && r.kind !== 'bad-header' && !/^\d+$/.test(arg)) out.push(`fault ${spec}: ${info?.arg?.label ?? 'the argument'} must be a whole number`);
    const earlier = seen.get(k);
    if (earlier !== undefined) out.push(`fault ${spec}: channel ${k} already has a fault (${earlier}); at most one per channel`);
    else seen.set(k, spec);
  }
  return out;
}

/** The lowest channel no row uses yet: where a new row starts. */
export function freeChannel(rows: readonly FaultRow[]): number {
  const used = new Set(rows.map((f) => Number(f.channel)));
  let channel = 0;
  while (used.has(channel)) channel++;
  return channel;
}
