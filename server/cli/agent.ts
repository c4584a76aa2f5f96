/**
 * `multifd agent --listen HOST:PORT`: runs this host's agent (server/agent.ts) until
 * interrupted. The control API needs the token in --token-file; without one, a token is
 * made in <data-dir>/agent.token (mode 0600) and only its path is printed.
 */
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { splitHostPort } from '../../lib/engine';
import { startAgent } from '../agent';
import { ensureTokenFile, readTokenFile } from '../auth';
import { EXIT_OK, UsageError, compressionList, ms, oneOf, parsed } from './args';
import { makeOutput, reportProcess } from './output';
import { serving } from './serve';
import { TLS_CREDS_OPTION, TLS_OPTIONS, tlsBothFrom, tlsCredsFrom, tlsUsage } from './tls-args';
import { LIMIT_OPTIONS, limitUsage, limitsFrom } from './limit-args';

export const AGENT_USAGE = `usage: multifd agent --listen HOST:PORT [options]

  --listen HOST:PORT            the control API (HTTP and socket.io, bearer token)
  --migration-listen HOST:PORT  where migrations arrive (default: the next port; port 0 with --listen ...:0)
  --name NAME                   how the console shows this host (default: the host name)
  --token-file FILE             the control API's token (mode 0600); default <data-dir>/agent.token,
                                made at first start (its path is printed, never the token)
  --data-dir DIR                history and the made token (default ./data/agent-<name>)
  --timeout-ms MS               incoming channel-setup and handshake timeout (default 10000)
  --compression-allow LIST      compression methods arriving migrations may use (default none,zlib,zstd)
${limitUsage(32)}${tlsUsage('both', 32)}  --events ndjson               one JSON line per event on stdout (first: {"type":"listening"})
`;

export async function agentCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      listen: { type: 'string' },
      'migration-listen': { type: 'string' },
      name: { type: 'string' },
      'token-file': { type: 'string' },
      'data-dir': { type: 'string' },
      'timeout-ms': { type: 'string' },
      'compression-allow': { type: 'string' },
      ...LIMIT_OPTIONS,
      ...TLS_OPTIONS,
      ...TLS_CREDS_OPTION,
      events: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(AGENT_USAGE);
    return EXIT_OK;
  }
  if (!values.listen) throw new UsageError('--listen HOST:PORT is required');
  const control = parsed('listen', values.listen, (s) => splitHostPort(s, '--listen'))!;
  const migration = values['migration-listen']
    ? parsed('migration-listen', values['migration-listen'], (s) => splitHostPort(s, '--migration-listen'))!
    : { host: control.host, port: control.port === 0 ? 0 : control.port + 1 };
  if (migration.port > 65535) throw new UsageError('--migration-listen is required when --listen uses port 65535');
  const tls = tlsBothFrom(values);
  const tlsCreds = tlsCredsFrom(values['tls-creds']);
  const name = values.name?.trim() || os.hostname();
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(name)) throw new UsageError('--name must be 1 to 64 letters, digits, dots, dashes or underscores');
  const dataDir = path.resolve(values['data-dir'] ?? path.join('data', `agent-${name}`));
  const mode = oneOf('events', values.events, ['ndjson'] as const) ?? 'human';
  const out = makeOutput(mode);
  let tokenFile: string;
  let token: string;
  if (values['token-file']) {
    tokenFile = path.resolve(values['token-file']);
    token = parsed('token-file', tokenFile, readTokenFile)!;
  } else {
    tokenFile = path.join(dataDir, 'agent.token');
    const t = ensureTokenFile(tokenFile);
    token = t.token;
    if (t.created) out.info({ type: 'token-created', tokenFile }, `multifd agent: made a token in ${tokenFile} (mode 0600); give it to the console`);
  }
  const agent = await startAgent({
    name,
    host: control.host,
    port: control.port,
    migrationHost: migration.host,
    migrationPort: migration.port,
    token,
    dataDir,
    timeoutMs: ms('timeout-ms', values['timeout-ms']),
    tls,
    tlsCreds,
    compressionAllow: compressionList('compression-allow', values['compression-allow']),
    limits: limitsFrom(values),
  });
  agent.registry.onBatch((b) => {
    for (const e of b.events) out.event(e);
  });
  out.info(
    { type: 'listening', name: agent.name, address: agent.url.replace(/^http:\/\//, ''), url: agent.url, migrationAddress: agent.migrationAddress, tokenFile, dataDir },
    `multifd agent ${agent.name}: control ${agent.url}, migrations ${agent.migrationAddress}, token ${tokenFile}, data ${dataDir}`,
  );
  return serving().wait(async () => {
    await agent.close();
    reportProcess(out);
    out.close();
  });
}
