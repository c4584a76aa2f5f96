/**
 * Test fixture for the console's server parts: a registry over a real embedded destination
 * and real SQLite in a temp dir, served by a plain HTTP server that `mount` equips (REST
 * API, socket.io) — everything the console process has but Next.js.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Destination } from '../lib/engine';
import { openHistory, type HistoryStore } from './history';
import type { QemuMigrationOptions } from './qemu-migration';
import { LocalRegistry } from './registry';

export interface TestConsole {
  registry: LocalRegistry;
  history: HistoryStore;
  dataDir: string;
  url: string;
  close(): Promise<void>;
}

export async function startTestConsole(mount: (server: http.Server, registry: LocalRegistry) => void, qemu: QemuMigrationOptions = {}): Promise<TestConsole> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'multifd-console-test-'));
  const history = openHistory(dataDir);
  const embedded = new Destination({ port: 0 });
  await embedded.listen();
  const registry = new LocalRegistry(history, embedded, { recordRoot: path.join(dataDir, 'recordings'), ...qemu });
  const server = http.createServer();
  mount(server, registry);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    registry,
    history,
    dataDir,
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    async close() {
      await registry.close();
      await embedded.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      history.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
