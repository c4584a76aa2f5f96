/**
 * `multifd inspect FILE...`: reads a capture, one file per connection (the source's bytes,
 * as `multifd relay --record DIR` writes them), says what each file is, decodes it, flags
 * what is invalid with the engine's error codes, and with --ram-out rebuilds the guest RAM.
 * Exit 0 when every file decoded cleanly, 1 when any file has an error.
 */
import { parseArgs } from 'node:util';
import { formatBytes } from '../../lib/guest/units';
import { uuidToBytes } from '../../lib/protocol';
import { inspectCapture, type CaptureFileReport, type InspectResult } from '../../lib/qemu/capture';
import { EXIT_FAILED, EXIT_OK, UsageError, int, parsed } from './args';

export const INSPECT_USAGE = `usage: multifd inspect [options] FILE...

  FILE...            one capture file per connection: QEMU's main stream ("QEVM") and each
                     multifd channel, in any order (the files of 'multifd relay --record DIR')
  --ram-out FILE     rebuild the guest RAM into FILE (all RAM blocks back to back) and print its sha256
  --block NAME       only this RAM block into --ram-out (e.g. the memory backend's id, "mem" or "pc.ram")
  --uuid UUID        expected guest UUID (default: the main stream's, else the one most channels carry)
  --channels N       expected multifd channel count (default: the number of multifd files)
  --json             print the whole report as JSON on stdout

Exit status: 0 when every file decoded without error, 1 otherwise, 2 on bad usage.
`;

export async function inspectCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      'ram-out': { type: 'string' },
      block: { type: 'string' },
      uuid: { type: 'string' },
      channels: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(INSPECT_USAGE);
    return EXIT_OK;
  }
  if (positionals.length === 0) throw new UsageError('give at least one capture file');
  if (values.uuid !== undefined) parsed('uuid', values.uuid, uuidToBytes);
  const result = inspectCapture(positionals, {
    ramOut: values['ram-out'] ?? null,
    block: values.block ?? null,
    uuid: values.uuid ?? null,
    channels: int('channels', values.channels, 1, 255) ?? null,
  });
  if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else process.stdout.write(describe(result));
  return result.errors === 0 ? EXIT_OK : EXIT_FAILED;
}

/** The human report: one block per file, then the channels as a table, then the RAM. */
export function describe(r: InspectResult): string {
  const lines: string[] = [];
  for (const f of r.files) lines.push(...describeFile(f));
  const channels = r.files.filter((f) => f.channel).map((f) => f.channel!).sort((a, b) => a.id - b.id);
  if (channels.length > 0) {
    lines.push('', 'channel  packets  sync  pages   zero  payload      packet_num   uuid');
    for (const c of channels) {
      lines.push(
        [
          String(c.id).padEnd(7),
          String(c.packets).padStart(8),
          String(c.syncs).padStart(5),
          String(c.pages).padStart(6),
          String(c.zeroPages).padStart(6),
          formatBytes(c.payloadBytes).padStart(10),
          `${c.firstPacketNum ?? '-'}..${c.lastPacketNum ?? '-'}${c.repeatedPacketNums ? ` (${c.repeatedPacketNums} repeated)` : ''}`.padStart(12),
          ` ${c.uuid}`,
        ].join(' '),
      );
    }
  }
  lines.push('');
  if (r.blocks.length > 0) {
    const where = (b: InspectResult['blocks'][number]) => (r.blocks.length < 2 ? '' : b.fileOffset === null ? ' (not written)' : ` at byte ${b.fileOffset}`);
    lines.push(`RAM: ${r.blocks.map((b) => `${b.name} ${formatBytes(b.size)}${where(b)}`).join(', ')}`);
    lines.push(`  ${r.pagesWritten} pages with data, ${r.zeroPagesApplied} zero pages; sync points: ${r.syncMarker ?? 'SYNC packets only (no main stream)'}`);
  }
  if (r.ramOut) lines.push(`  written to ${r.ramOut}, sha256 ${r.sha256}`);
  else lines.push('  (--ram-out FILE rebuilds it)');
  lines.push(r.errors === 0 ? 'no errors' : `${r.errors} file(s) with errors`);
  return `${lines.join('\n')}\n`;
}

function describeFile(f: CaptureFileReport): string[] {
  const head = `${f.path}: ${formatBytes(f.bytes)}, ${KIND[f.kind]}`;
  const out = [head];
  if (f.channel) out.push(`  multifd channel ${f.channel.id}, uuid ${f.channel.uuid}, ${f.channel.packets} packets (${f.channel.syncs} SYNC), ${f.channel.pages} pages`);
  if (f.main) {
    const m = f.main;
    out.push(`  QEVM version ${m.version}, machine ${JSON.stringify(m.machine)}${m.capabilities.length ? `, capabilities ${m.capabilities.join(' ')}` : ''}${m.uuid ? `, uuid ${m.uuid}` : ''}`);
    out.push(`  sections ${Object.entries(m.sections).map(([n, c]) => `${n}×${c}`).join(' ')}; ${m.zeroPages} zero pages, ${m.pages} pages, ${m.eos} EOS, ${m.flushes} MULTIFD_FLUSH`);
  }
  if (f.note) out.push(`  note: ${f.note}`);
  if (f.error) out.push(`  ERROR ${f.error.code}: ${f.error.message}`);
  if (!f.channel && !f.main && !f.error && !f.note) out.push(`  first bytes ${f.magic}`);
  return out;
}

const KIND: Record<CaptureFileReport['kind'], string> = {
  'qemu-main': "QEMU's main migration stream",
  multifd: 'a multifd channel',
  'multifd-main': "this product's main channel",
  unknown: 'not a migration connection',
};
