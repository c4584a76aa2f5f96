/**
 * The `multifd` command line: `multifd dest`, `multifd migrate`, `multifd relay`,
 * `multifd inspect`.
 */
import { isMigrationError } from '../../lib/errors';
import { EXIT_FAILED, EXIT_USAGE, UsageError } from './args';
import { AGENT_USAGE, agentCommand } from './agent';
import { DEST_USAGE, destCommand } from './dest';
import { INSPECT_USAGE, inspectCommand } from './inspect';
import { MIGRATE_USAGE, migrateCommand } from './migrate';
import { RELAY_USAGE, relayCommand } from './relay';

const USAGE = `usage: multifd <command> [options]

commands:
  dest      receive migrations:   multifd dest --listen 127.0.0.1:4444 --channels 8
  migrate   migrate a guest:      multifd migrate --to 127.0.0.1:4444 --channels 8 --ram-size 1GiB
  agent     run this host's agent: multifd agent --listen 0.0.0.0:7070 --name host-a
  relay     watch a QEMU migration: multifd relay --listen 127.0.0.1:5600 --to 127.0.0.1:5601 --record cap/
  inspect   read a capture:       multifd inspect --ram-out ram.img cap/1/*.bin

'multifd <command> --help' shows a command's options.
`;

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<number>; usage: string }> = {
  dest: { run: destCommand, usage: DEST_USAGE },
  migrate: { run: migrateCommand, usage: MIGRATE_USAGE },
  inspect: { run: inspectCommand, usage: INSPECT_USAGE },
  relay: { run: relayCommand, usage: RELAY_USAGE },
  agent: { run: agentCommand, usage: AGENT_USAGE },
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name) {
    // No command is bad usage: the usage goes to stderr (stdout may be an ndjson consumer's).
    process.stderr.write(USAGE);
    return EXIT_USAGE;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    process.stderr.write(`multifd: unknown command "${name}"\n\n${USAGE}`);
    return EXIT_USAGE;
  }
  try {
    return await cmd.run(rest);
  } catch (err) {
    // parseArgs throws TypeErrors with codes like ERR_PARSE_ARGS_UNKNOWN_OPTION.
    const code = (err as { code?: string }).code ?? '';
    if (err instanceof UsageError || code.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`multifd ${name}: ${(err as Error).message}\n\n${cmd.usage}`);
      return EXIT_USAGE;
    }
    // Bad config, unreadable TLS files included: say what is wrong, exit 2, no stack.
    if (isMigrationError(err) && (err.code === 'MIGRATION_CONFIG_INVALID' || err.code === 'MIGRATION_TLS_CREDENTIALS_INVALID')) {
      process.stderr.write(`multifd ${name}: ${err.message}\n`);
      return EXIT_USAGE;
    }
    process.stderr.write(`multifd ${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return EXIT_FAILED;
  }
}
