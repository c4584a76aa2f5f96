/**
 * The agents a console knows: name, control URL and bearer token, kept across restarts in
 * `<dataDir>/agents.json`, mode 0600 (the tokens are secrets). Written whole to a temporary
 * file of mode 0600 and renamed over the old one, so a crash never leaves half a file or a
 * moment where the tokens are readable by others. Tokens never appear in logs or in what
 * the API returns.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

export const AgentRecordSchema = z.object({
  name: z.string(),
  url: z.string(),
  token: z.string(),
  addedAt: z.number(),
});
export type AgentRecord = z.infer<typeof AgentRecordSchema>;

const FileSchema = z.object({ version: z.literal(1), agents: z.array(AgentRecordSchema) });

export class AgentStore {
  readonly file: string;

  constructor(dataDir: string) {
    this.file = path.join(dataDir, 'agents.json');
  }

  /** The stored agents; [] when there is no file. A corrupt file is an error, never silently emptied. */
  load(): AgentRecord[] {
    if (!existsSync(this.file)) return [];
    const text = readFileSync(this.file, 'utf8');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      // Not JSON.parse's message: it quotes the text around the fault, which may be a token.
      const at = /position (\d+)/.exec((err as Error).message)?.[1];
      throw new Error(`${this.file}: not JSON${at ? ` (at position ${at})` : ''}`);
    }
    const parsed = FileSchema.safeParse(json);
    if (!parsed.success) throw new Error(`${this.file}: not a list of agents (${parsed.error.issues[0]?.message ?? 'invalid'})`);
    // Tighten a file someone loosened.
    chmodSync(this.file, 0o600);
    return parsed.data.agents;
  }

  save(agents: readonly AgentRecord[]): void {
    mkdirSync(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify({ version: 1, agents }, null, 2)}\n`, { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, this.file);
  }
}
