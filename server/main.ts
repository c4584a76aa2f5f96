/**
 * `node --import tsx server/main.ts [--listen HOST:PORT] [--data-dir DIR] [--dev]
 *  [--qemu-wait-ms MS] [--qemu-poll-ms MS] [--tls-cert F --tls-key F --tls-ca F | --tls-psk F]
 *  [--tls-require-client-cert] [--tls-creds NAME=DIR]... [--compression-allow LIST] [--allowed-hosts NAME,...]`: serves the console (default http://127.0.0.1:3000; PORT and
 * HOST are honoured too). The TLS flags are the agent's: the embedded destination requires
 * TLS, and the migrations this console starts use it.
 */
import { parseArgs } from 'node:util';
import { splitHostPort } from '../lib/engine';
import { compressionList } from './cli/args';
import { TLS_CREDS_OPTION, TLS_OPTIONS, tlsBothFrom, tlsCredsFrom } from './cli/tls-args';
import { startConsole } from './index';

const { values } = parseArgs({
  options: {
    listen: { type: 'string' },
    'data-dir': { type: 'string' },
    dev: { type: 'boolean' },
    'qemu-wait-ms': { type: 'string' },
    'qemu-poll-ms': { type: 'string' },
    'compression-allow': { type: 'string' },
    'allowed-hosts': { type: 'string' },
    ...TLS_OPTIONS,
    ...TLS_CREDS_OPTION,
  },
});
const { tls, tlsCreds } = (() => {
  try {
    return { tls: tlsBothFrom(values), tlsCreds: tlsCredsFrom(values['tls-creds']) };
  } catch (err) {
    process.stderr.write(`multifd console: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
})();
const msFlag = (name: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    process.stderr.write(`multifd console: --${name} must be a whole number of ms, got "${v}"\n`);
    process.exit(2);
  }
  return n;
};
const { host, port } = values.listen
  ? splitHostPort(values.listen, '--listen')
  : { host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT ?? 3000) };
// Next's custom server installs process-wide error loggers that would keep a failed start (a
// port in use) alive forever: say why and exit.
const c = await startConsole({
  host,
  port,
  dataDir: values['data-dir'],
  dev: values.dev,
  qemuWaitMs: msFlag('qemu-wait-ms', values['qemu-wait-ms']),
  qemuPollMs: msFlag('qemu-poll-ms', values['qemu-poll-ms']),
  tls,
  tlsCreds,
  allowedHosts: (values['allowed-hosts'] ?? process.env.MULTIFD_ALLOWED_HOSTS ?? '')
    .split(',')
    .map((h) => h.trim())
    .filter(Boolean),
  compressionAllow: (() => {
    try {
      return compressionList('compression-allow', values['compression-allow']);
    } catch (err) {
      process.stderr.write(`multifd console: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(2);
    }
  })(),
}).catch((err: unknown) => {
  process.stderr.write(`multifd console: could not start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
process.stderr.write(`multifd console: ${c.url} (embedded destination ${c.embedded})\n`);
let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  void c.close().then(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
