/**
 * `npm run soak -- [--fuzz 5000] [--failures 50] [--migrations 50]`: a `multifd dest` process under abuse.
 *
 *  1. fuzz: connections carrying random bytes (some starting with a valid magic), many at
 *     once; every one must be refused with a code, the process must stay up;
 *  2. every fault kind once: the time from the migration's start to its `failed` event;
 *  3. N failed migrations in a row: the destination's open file descriptors and RSS before
 *     and after must not grow;
 *  4. then a clean migration must succeed;
 *  5. what an attacker without a channel can make it hold: hellos of 1 GiB that open no
 *     channel, connections announcing a 16 MiB frame before their hello, idle connections
 *     past the connection limit (RSS and fds before, during and after);
 *  6. M completed migrations in a row (the destination releases each verified guest): RSS
 *     and fds every tenth, to see memory stay flat.
 */
import { spawn } from 'node:child_process';
import crypto, { randomBytes, randomInt } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { MigrationConfigSchema } from '../lib/contracts';
import { SourceMigration, parseFault } from '../lib/engine';
import { Guest } from '../lib/guest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: { fuzz: { type: 'string', default: '5000' }, failures: { type: 'string', default: '50' }, migrations: { type: 'string', default: '50' } },
});
const FUZZ = Number(values.fuzz);
const FAILURES = Number(values.failures);
const MIGRATIONS = Number(values.migrations);
const CONCURRENT = 200;

const dest = spawn(process.execPath, [path.join(ROOT, 'bin/multifd.mjs'), 'dest', '--listen', '127.0.0.1:0', '--channels', '4', '--timeout-ms', '1000', '--events', 'ndjson'], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
const codes = new Map<string, number>();
let rejected = 0;
let address = '';
const listening = new Promise<void>((resolve) => {
  readline.createInterface({ input: dest.stdout! }).on('line', (line) => {
    const e = JSON.parse(line) as { type: string; address?: string; code?: string; migration?: unknown };
    if (e.type === 'listening') {
      address = e.address!;
      resolve();
    }
    if (e.type === 'channel-rejected' && e.migration === null) {
      rejected++;
      codes.set(e.code!, (codes.get(e.code!) ?? 0) + 1);
    }
  });
});

const fds = () => readdirSync(`/proc/${dest.pid}/fd`).length;
const rssMiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${dest.pid}/status`, 'utf8'))![1]) / 1024;
const alive = () => dest.exitCode === null && dest.signalCode === null;

function fuzzOne(port: number): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('error', () => resolve());
    s.on('close', () => resolve());
    s.resume(); // a refused main channel is told why, then closed: read it to see the close
    s.on('connect', () => {
      const n = randomInt(0, 200);
      const body = randomBytes(n);
      // A third start like a multifd handshake, a tenth like a main channel: deeper paths.
      const r = randomInt(0, 30);
      if (r < 10 && n >= 4) body.writeUInt32BE(0x11223344, 0);
      else if (r < 13 && n >= 4) body.writeUInt32BE(0x4d464443, 0);
      s.end(body);
    });
    s.setTimeout(5000, () => s.destroy());
  });
}

async function migrateOnce(guest: Guest, port: number, inject: string[]): Promise<{ state: string; code: string | null; ms: number }> {
  const config = MigrationConfigSchema.parse({ destination: `127.0.0.1:${port}`, channels: 4, setupTimeoutMs: 1500, noProgressTimeoutMs: 1000 });
  const t0 = performance.now();
  const m = new SourceMigration(guest, { config, faults: inject.map((s) => parseFault(s, 4)) }).start();
  let failedAt = 0;
  m.events.on((e) => {
    if (e.type === 'failed' || e.type === 'completed') failedAt = performance.now();
  });
  const r = await m.done;
  return { state: r.state, code: r.error?.code ?? null, ms: failedAt - t0 };
}

try {
  await listening;
  const port = Number(address.split(':').pop());
  const guest = await Guest.create({ ramSize: 8 << 20, fill: 'random' });
  await guest.start();

  // 1. fuzz
  const t0 = performance.now();
  for (let i = 0; i < FUZZ; i += CONCURRENT) await Promise.all(Array.from({ length: Math.min(CONCURRENT, FUZZ - i) }, () => fuzzOne(port)));
  const fuzzS = (performance.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, 1500)); // handshake timeouts of the last ones
  console.log(`fuzz: ${FUZZ} connections of random bytes, ${CONCURRENT} at a time, in ${fuzzS.toFixed(1)} s; ${rejected} refused with a code; dest alive: ${alive()}`);
  console.log(`  codes: ${[...codes].map(([c, n]) => `${c} ${n}`).join(', ')}`);

  // 2. each fault kind once
  const kinds = ['ch2:uuid', 'ch1:dup', 'ch0:id-4', 'ch1:id-big', 'ch2:magic', 'ch3:version', 'ch0:truncate', 'ch1:truncate:40', 'ch1:stall', 'ch2:drop:100000', 'ch1:bad-header:normal_pages', 'ch2:bad-header:offset', 'ch3:bad-header:ramblock', 'ch0:bad-header:short-payload', 'ch1:slow:1'];
  console.log('fault → outcome, time from start to the outcome event:');
  for (const k of kinds) {
    const r = await migrateOnce(guest, port, [k]);
    console.log(`  ${k.padEnd(30)} ${r.state.padEnd(9)} ${String(r.code).padEnd(38)} ${r.ms.toFixed(0)} ms`);
  }

  // 3. failures in a row
  const fd0 = fds();
  const rss0 = rssMiB();
  const t1 = performance.now();
  for (let i = 0; i < FAILURES; i++) await migrateOnce(guest, port, [kinds[i % 9]]);
  await new Promise((r) => setTimeout(r, 2000));
  console.log(
    `${FAILURES} failed migrations in a row in ${((performance.now() - t1) / 1000).toFixed(1)} s: dest fds ${fd0} -> ${fds()}, RSS ${rss0.toFixed(0)} -> ${rssMiB().toFixed(0)} MiB; alive: ${alive()}`,
  );

  // 4. and then a clean one
  const ok = await migrateOnce(guest, port, []);
  console.log(`then a clean migration: ${ok.state} in ${ok.ms.toFixed(0)} ms`);
  await guest.stop().catch(() => {});

  // 5. what a peer without a channel can make it hold
  const held: net.Socket[] = [];
  const open = async (bytes: Buffer) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('error', () => {});
    s.resume();
    await new Promise<void>((resolve) => s.once('connect', () => resolve()));
    s.write(bytes);
    held.push(s);
  };
  const preamble = Buffer.from([0x4d, 0x46, 0x44, 0x43, 0, 0, 0, 1]);
  const hello = (ramSize: number) => {
    const json = Buffer.from(JSON.stringify({ uuid: crypto.randomUUID(), migrationId: `soak-${crypto.randomUUID()}`, channels: 4, pageSize: 4096, slots: 128, compression: 'none', blocks: [{ name: 'pc.ram', size: ramSize }] }));
    const head = Buffer.alloc(5);
    head.writeUInt32BE(json.length + 1, 0);
    head[4] = 0x01;
    return Buffer.concat([preamble, head, json]);
  };
  const big = Buffer.alloc(5);
  big.writeUInt32BE(16 << 20, 0);
  const before5 = { rss: rssMiB(), fds: fds() };
  for (let i = 0; i < 3; i++) await open(hello(1 << 30));
  await new Promise((r) => setTimeout(r, 500));
  const afterHellos = { rss: rssMiB(), fds: fds() };
  for (let i = 0; i < 60; i++) await open(Buffer.concat([preamble, big, randomBytes(1 << 16)]));
  await new Promise((r) => setTimeout(r, 500));
  const afterFrames = { rss: rssMiB(), fds: fds() };
  for (let i = 0; i < 400; i++) await open(Buffer.alloc(0));
  await new Promise((r) => setTimeout(r, 500));
  const afterIdle = { rss: rssMiB(), fds: fds() };
  const small = await Guest.create({ ramSize: 8 << 20, fill: 'random' });
  await small.start();
  const during = await migrateOnce(small, port, []);
  await small.stop();
  for (const s of held) s.destroy();
  await new Promise((r) => setTimeout(r, 2500));
  console.log(
    `attacks without a channel: RSS ${before5.rss.toFixed(0)} MiB, fds ${before5.fds}; after 3 hellos of 1 GiB ${afterHellos.rss.toFixed(0)} MiB; ` +
      `after 60 connections announcing a 16 MiB frame ${afterFrames.rss.toFixed(0)} MiB; after 400 idle connections ${afterIdle.rss.toFixed(0)} MiB, ` +
      `fds ${afterIdle.fds}; a migration meanwhile: ${during.state}; all closed: RSS ${rssMiB().toFixed(0)} MiB, fds ${fds()}`,
  );

  // 6. completed migrations in a row
  // A completed migration stops the source's copy: a new guest each time.
  const samples: string[] = [];
  let completed = 0;
  for (let i = 0; i < MIGRATIONS; i++) {
    if (i % 10 === 0) samples.push(`#${i}: ${rssMiB().toFixed(0)} MiB/${fds()} fds`);
    const g = await Guest.create({ ramSize: 64 << 20, fill: 'random' });
    await g.start();
    if ((await migrateOnce(g, port, [])).state === 'completed') completed++;
    await g.stop();
  }
  await new Promise((r) => setTimeout(r, 1500));
  samples.push(`#${MIGRATIONS}: ${rssMiB().toFixed(0)} MiB/${fds()} fds`);
  console.log(`${MIGRATIONS} migrations of a 64 MiB guest in a row, ${completed} completed; dest RSS/fds: ${samples.join(', ')}`);
  process.exitCode = alive() && ok.state === 'completed' && during.state === 'completed' && completed === MIGRATIONS ? 0 : 1;
} finally {
  dest.kill('SIGTERM');
}
