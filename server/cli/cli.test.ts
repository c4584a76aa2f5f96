/**
 * The `multifd` command end to end: real processes (bin/multifd.mjs), real loopback TCP,
 * no mocks. Every process started here is killed when its suite ends, whatever happened,
 * and every wait has a deadline.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { MigrationEventSchema } from '../../lib/contracts';
import {
  STACK_LINE,
  closeSockets,
  freePort,
  handshake,
  killAll,
  rawConnect,
  run,
  start,
  startDest,
  type Cli,
  type Line,
} from './test-support';

after(() => {
  closeSockets();
  killAll();
});

const HEX16 = /^[0-9a-f]{16}$/;
const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

/** Flags that keep every wait of a `migrate` short. */
const SHORT = ['--connect-timeout-ms', '2000', '--no-progress-timeout-ms', '5000', '--verify-timeout-ms', '10000'];

/** Every stdout line is a JSON object with type and time; migration events match the contract. */
function checkLines(cli: Cli): void {
  assert.deepEqual(cli.badLines, [], `stdout lines that are not ndjson events: ${cli.describe()}`);
  assert.ok(cli.lines.length > 0, `no output: ${cli.describe()}`);
  for (const l of cli.events) {
    const r = MigrationEventSchema.safeParse(l);
    assert.ok(r.success, `event does not match the contract: ${JSON.stringify(l).slice(0, 400)}: ${r.success ? '' : r.error.message}`);
  }
}

/** The migration's terminal event: its last event (DESIGN 7.1), and its only terminal one. */
function terminal(cli: Cli, migrationId?: string): Line {
  const evs = cli.events.filter((e) => migrationId === undefined || migrationOf(e) === migrationId);
  const last = evs.at(-1);
  assert.ok(last, `no migration events: ${cli.describe()}`);
  assert.ok(TERMINAL.has(last.type), `last migration event is ${last.type}, not a terminal one: ${cli.describe()}`);
  assert.equal(evs.filter((e) => TERMINAL.has(e.type)).length, 1, 'exactly one terminal event');
  return last;
}

function migrationOf(e: Line): string | null {
  const m = e.migration as { id?: string } | null | undefined;
  return m?.id ?? null;
}

function assertNoStack(stderr: string): void {
  assert.doesNotMatch(stderr, STACK_LINE, `a stack trace on stderr: ${stderr}`);
}

// --- 1. a migration that works ------------------------------------------------------------

describe('migrate + dest --once, ndjson on both', () => {
  const cases = [
    { name: '16 MiB idle guest', guest: ['--ram-size', '16MiB'] },
    { name: '32 MiB guest under --workload random:16', guest: ['--ram-size', '32MiB', '--workload', 'random:16'] },
  ];
  for (const c of cases) {
    it(`${c.name}, 4 channels: both exit 0, the source's digest is the destination's`, { timeout: 30_000 }, async () => {
      const dest = await startDest(['--once', '--channels', '4', '--timeout-ms', '5000']);
      try {
        const src = await run(['migrate', '--to', dest.address, '--channels', '4', '--timeout-ms', '5000', '--events', 'ndjson', ...SHORT, ...c.guest], 20_000);
        const dexit = await dest.cli.exit(5_000);
        assert.equal(src.exit.code, 0, `migrate: ${src.cli.describe()}`);
        assert.equal(dexit.code, 0, `dest --once: ${dest.cli.describe()}`);
        checkLines(src.cli);
        checkLines(dest.cli);
        assertNoStack(src.cli.stderr);
        assertNoStack(dest.cli.stderr);

        const done = terminal(src.cli);
        assert.equal(done.type, 'completed', src.cli.describe());
        assert.equal(done.role, 'source');
        assert.equal(done.verified, true);
        assert.match(String(done.digest), HEX16);
        const id = migrationOf(done);
        assert.ok(id, 'the completed event names its migration');

        const theirs = terminal(dest.cli, id);
        assert.equal(theirs.type, 'completed', dest.cli.describe());
        assert.equal(theirs.role, 'destination');
        assert.equal(theirs.verified, true);
        assert.equal(theirs.digest, done.digest, 'both sides computed the same RAM digest');

        // The destination reported the source's 4 channels streaming, and the verified guest
        // released (without --keep-guests nothing piles up in a long-running dest).
        const streaming = new Set(dest.cli.events.filter((e) => e.type === 'channel' && e.state === 'streaming').map((e) => e.channel));
        assert.deepEqual([...streaming].sort(), [0, 1, 2, 3]);
        const released = dest.cli.lines.find((l) => l.type === 'guest-released');
        assert.ok(released, `dest says the guest was released: ${dest.cli.describe()}`);
        assert.equal(dest.cli.lines.some((l) => l.type === 'guest-running'), false);
      } finally {
        dest.cli.kill();
      }
    });
  }
});

describe('migrate --auto-converge, interrupted while it throttles', () => {
  it('SIGINT cancels: exit 1, a cancelled event, the throttle lifted in the last snapshot', { timeout: 30_000 }, async () => {
    const dest = await startDest(['--once', '--timeout-ms', '5000']);
    try {
      // 8 MiB rewritten as fast as the guest can over 4 MiB/s: throttled at once, never converged.
      const src = start([
        'migrate', '--to', dest.address, '--ram-size', '8MiB', '--workload', 'random:max', '--max-bandwidth', '4MiB/s',
        '--downtime-limit', '5', '--round-limit', '10000', '--auto-converge', '--tick-ms', '50', '--events', 'ndjson', ...SHORT,
      ]);
      await src.waitFor((l) => l.type === 'round' && typeof l.throttlePct === 'number' && l.throttlePct > 0, 15_000, 'a throttled round');
      src.kill('SIGINT');
      const exit = await src.exit(10_000);
      assert.equal(exit.code, 1, src.describe());
      checkLines(src);
      assertNoStack(src.stderr);
      const end = terminal(src);
      assert.equal(end.type, 'cancelled', src.describe());
      assert.equal(end.code, 'MIGRATION_CANCELLED');
      const last = src.lines.filter((l) => l.type === 'progress').at(-1) as { snapshot?: { throttlePct?: unknown } } | undefined;
      assert.equal(last?.snapshot?.throttlePct, 0, 'the throttle is lifted when the migration ends');
      assert.equal((await dest.cli.exit(10_000)).code, 1, dest.cli.describe());
    } finally {
      dest.cli.kill();
    }
  });
});

// --- 2. bad usage -------------------------------------------------------------------------

describe('bad usage: exit 2, a message on stderr, no stack trace', { concurrency: 4 }, () => {
  const to = ['--to', '127.0.0.1:9'];
  const cases: Array<{ name: string; args: string[]; says: RegExp }> = [
    { name: 'migrate without --to', args: ['migrate', '--channels', '4'], says: /--to/ },
    { name: 'migrate --channels 0', args: ['migrate', ...to, '--channels', '0'], says: /--channels.*"0"/ },
    { name: 'migrate --channels 256', args: ['migrate', ...to, '--channels', '256'], says: /--channels.*"256"/ },
    { name: 'migrate with an unknown flag', args: ['migrate', ...to, '--frobnicate'], says: /--frobnicate/ },
    { name: 'migrate --ram-size 12XB', args: ['migrate', ...to, '--ram-size', '12XB'], says: /--ram-size.*12XB/ },
    { name: 'migrate --ram-size 1000 (not whole pages)', args: ['migrate', ...to, '--ram-size', '1000'], says: /RAM size/i },
    { name: 'migrate --workload nope:3', args: ['migrate', ...to, '--workload', 'nope:3'], says: /--workload.*nope:3/ },
    { name: 'migrate --inject ch9:uuid with 4 channels', args: ['migrate', ...to, '--channels', '4', '--inject', 'ch9:uuid'], says: /--inject.*ch9.*channel 9/ },
    { name: 'migrate --inject of an unknown fault', args: ['migrate', ...to, '--inject', 'ch1:wat'], says: /--inject.*ch1:wat/ },
    { name: 'migrate --to without a port', args: ['migrate', '--to', 'localhost', '--events', 'ndjson'], says: /--to.*HOST:PORT/ },
    { name: 'unknown command', args: ['frobnicate', '--channels', '4'], says: /unknown command "frobnicate"/ },
    { name: 'no command at all', args: [], says: /usage: multifd <command>/ },
    { name: 'dest without --listen', args: ['dest', '--channels', '4', '--events', 'ndjson'], says: /--listen/ },
    { name: 'dest --channels 0', args: ['dest', '--listen', '127.0.0.1:0', '--channels', '0'], says: /--channels.*"0"/ },
  ];
  for (const c of cases) {
    it(`${c.name}`, { timeout: 15_000 }, async () => {
      const { cli, exit } = await run(c.args, 10_000);
      assert.equal(exit.code, 2, cli.describe());
      assert.match(cli.stderr, c.says, cli.describe());
      assertNoStack(cli.stderr);
      assert.equal(cli.lines.length + cli.badLines.length, 0, `nothing on stdout: ${cli.describe()}`);
    });
  }
});

// --- 3. a destination that keeps serving ----------------------------------------------------

describe('dest (no --once) refuses crafted connections and keeps serving', () => {
  let dest: Awaited<ReturnType<typeof startDest>> | null = null;
  after(() => dest?.cli.kill());
  const uuid = randomUUID();

  it('starts, listening on the port the kernel chose', { timeout: 15_000 }, async () => {
    dest = await startDest(['--channels', '4', '--timeout-ms', '1000']);
    assert.ok(dest.port > 0);
  });

  const cases: Array<{ name: string; bytes: () => Buffer; end?: boolean; code: string; channel: number | null }> = [
    { name: 'bad magic', bytes: () => handshake({ magic: 0xdeadbeef, uuid, id: 1 }), code: 'MIGRATION_CHANNEL_BAD_MAGIC', channel: null },
    { name: 'garbage text', bytes: () => Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), code: 'MIGRATION_CHANNEL_BAD_MAGIC', channel: null },
    { name: 'bad version (7), claiming id 2', bytes: () => handshake({ version: 7, uuid, id: 2 }), code: 'MIGRATION_CHANNEL_BAD_VERSION', channel: 2 },
    { name: 'id equal to the channel count (4)', bytes: () => handshake({ uuid, id: 4 }), code: 'MIGRATION_CHANNEL_ID_OUT_OF_RANGE', channel: 4 },
    { name: 'id 200', bytes: () => handshake({ uuid, id: 200 }), code: 'MIGRATION_CHANNEL_ID_OUT_OF_RANGE', channel: 200 },
    { name: 'truncated (20 bytes, then close)', bytes: () => handshake({ uuid, id: 1 }).subarray(0, 20), end: true, code: 'MIGRATION_CHANNEL_SHORT_HANDSHAKE', channel: null },
  ];
  for (const c of cases) {
    it(`${c.name}: channel-rejected ${c.code}, channel ${c.channel}`, { timeout: 10_000 }, async () => {
      assert.ok(dest, 'dest started');
      const s = await rawConnect(dest.port, c.bytes(), c.end);
      const peer = `127.0.0.1:${s.localPort}`;
      try {
        const e = await dest.cli.waitFor((l) => l.type === 'channel-rejected' && l.peer === peer, 5_000, `channel-rejected for ${peer}`);
        assert.equal(e.code, c.code, JSON.stringify(e));
        assert.equal(e.channel, c.channel, JSON.stringify(e));
        assert.match(String(e.peer), /^127\.0\.0\.1:\d+$/);
        assert.equal(e.migration, null, 'no migration to blame');
        assert.ok(typeof e.message === 'string' && e.message.length > 10, 'says why');
        assert.ok(dest.cli.alive, 'dest still running');
      } finally {
        s.destroy();
      }
    });
  }

  it('then a real migrate --channels 4 to it exits 0; dest still alive', { timeout: 20_000 }, async () => {
    assert.ok(dest, 'dest started');
    const src = await run(['migrate', '--to', dest.address, '--channels', '4', '--ram-size', '8MiB', '--timeout-ms', '5000', '--events', 'ndjson', ...SHORT], 15_000);
    assert.equal(src.exit.code, 0, src.cli.describe());
    const done = terminal(src.cli);
    assert.equal(done.type, 'completed');
    const theirs = await dest.cli.waitFor((l) => l.type === 'completed' && migrationOf(l) === migrationOf(done), 5_000, 'dest completed');
    assert.equal(theirs.digest, done.digest);
    assert.ok(dest.cli.alive, `dest still running: ${dest.cli.describe()}`);
    checkLines(dest.cli);
  });

  it('SIGINT ends it with exit 0', { timeout: 10_000 }, async () => {
    assert.ok(dest, 'dest started');
    assert.ok(dest.cli.alive);
    dest.cli.kill('SIGINT');
    const exit = await dest.cli.exit(5_000);
    assert.equal(exit.code, 0, dest.cli.describe());
    assertNoStack(dest.cli.stderr);
  });
});

// --- 4. faults injected by the source, one destination serving them all -----------------------

describe('migrate --inject against one dest --channels 4 --timeout-ms 1500', () => {
  let dest: Awaited<ReturnType<typeof startDest>> | null = null;
  after(() => dest?.cli.kill());

  it('dest starts', { timeout: 15_000 }, async () => {
    dest = await startDest(['--channels', '4', '--timeout-ms', '1500']);
  });

  const cases: Array<{ inject: string; timeout?: string; check: (f: Line) => void }> = [
    {
      inject: 'ch2:uuid',
      check: (f) => {
        assert.equal(f.code, 'MIGRATION_CHANNEL_UUID_MISMATCH');
        assert.equal(f.channel, 2);
      },
    },
    {
      inject: 'ch1:dup',
      check: (f) => {
        assert.equal(f.code, 'MIGRATION_CHANNEL_ID_DUPLICATE');
        // channel 1 claims channel 2's id: whichever of the two came second is the duplicate.
        assert.ok(f.channel === 2 || f.channel === 1, `channel ${String(f.channel)}`);
      },
    },
    {
      inject: 'ch0:id-4',
      check: (f) => {
        assert.equal(f.code, 'MIGRATION_CHANNEL_ID_OUT_OF_RANGE');
        assert.equal(f.channel, 4);
      },
    },
    {
      inject: 'ch3:version',
      check: (f) => {
        assert.equal(f.code, 'MIGRATION_CHANNEL_BAD_VERSION');
        assert.equal(f.channel, 3);
      },
    },
    {
      inject: 'ch1:stall',
      timeout: '800',
      check: (f) => {
        assert.equal(f.code, 'MIGRATION_CHANNEL_SETUP_TIMEOUT');
        assert.ok(Array.isArray(f.missing) && f.missing.includes(1), `missing ${JSON.stringify(f.missing)}`);
      },
    },
  ];

  /** Runs `migrate --inject` against the dest; checks what every injected fault must give. */
  async function injected(inject: string, timeout: string): Promise<{ cli: Cli; failed: Line }> {
    assert.ok(dest, 'dest started');
    const src = await run(
      ['migrate', '--to', dest.address, '--channels', '4', '--ram-size', '4MiB', '--events', 'ndjson', '--timeout-ms', timeout, '--inject', inject, ...SHORT],
      15_000,
    );
    assert.equal(src.exit.code, 1, src.cli.describe());
    checkLines(src.cli);
    assertNoStack(src.cli.stderr);
    const f = terminal(src.cli);
    assert.equal(f.type, 'failed', src.cli.describe());
    assert.equal(f.role, 'source');
    assert.ok(typeof f.message === 'string' && f.message.length > 10);
    // The destination ends that migration too (it never completes), and keeps serving.
    const id = migrationOf(f);
    const theirs = await dest.cli.waitFor((l) => TERMINAL.has(l.type) && migrationOf(l) === id, 5_000, `dest's end of ${id}`);
    assert.notEqual(theirs.type, 'completed');
    assert.ok(dest.cli.alive, `dest still running: ${dest.cli.describe()}`);
    return { cli: src.cli, failed: f };
  }

  function explain(cli: Cli, check: () => void): void {
    try {
      check();
    } catch (err) {
      (err as Error).message += `\n  ${cli.describe()}`;
      throw err;
    }
  }

  for (const c of cases) {
    it(`--inject ${c.inject}${c.timeout ? ` --timeout-ms ${c.timeout}` : ''}: exit 1 with the fault's code`, { timeout: 20_000 }, async () => {
      const { cli, failed } = await injected(c.inject, c.timeout ?? '3000');
      explain(cli, () => c.check(failed));
    });
  }

  // The destination fails no migration for bytes it cannot attribute (DESIGN 3.5), but it
  // reports the refused connection; the source recognises its own socket and fails at once.
  it('--inject ch2:magic: exit 1 with MIGRATION_CHANNEL_BAD_MAGIC on channel 2', { timeout: 20_000 }, async () => {
    const { cli, failed } = await injected('ch2:magic', '3000');
    explain(cli, () => {
      assert.equal(failed.code, 'MIGRATION_CHANNEL_BAD_MAGIC');
      assert.equal(failed.channel, 2);
    });
  });

  it('after all of them a clean migrate to the same dest exits 0; dest still up, SIGINT exits 0', { timeout: 25_000 }, async () => {
    assert.ok(dest, 'dest started');
    const src = await run(['migrate', '--to', dest.address, '--channels', '4', '--ram-size', '8MiB', '--timeout-ms', '5000', '--events', 'ndjson', ...SHORT], 15_000);
    assert.equal(src.exit.code, 0, src.cli.describe());
    const done = terminal(src.cli);
    assert.equal(done.type, 'completed');
    assert.equal(done.verified, true);
    const theirs = await dest.cli.waitFor((l) => l.type === 'completed' && migrationOf(l) === migrationOf(done), 5_000, 'dest completed');
    assert.equal(theirs.digest, done.digest);
    assert.ok(dest.cli.alive, `dest still running: ${dest.cli.describe()}`);
    checkLines(dest.cli);
    dest.cli.kill('SIGINT');
    const exit = await dest.cli.exit(5_000);
    assert.equal(exit.code, 0, dest.cli.describe());
    assertNoStack(dest.cli.stderr);
  });
});

// --- 5. channel count mismatch -------------------------------------------------------------

describe('a source opening 8 channels to a dest expecting 4', () => {
  it('migrate exits 1 with MIGRATION_CHANNEL_COUNT_MISMATCH naming both counts', { timeout: 25_000 }, async () => {
    const dest = await startDest(['--channels', '4', '--timeout-ms', '2000']);
    try {
      const src = await run(['migrate', '--to', dest.address, '--channels', '8', '--ram-size', '4MiB', '--timeout-ms', '3000', '--events', 'ndjson', ...SHORT], 15_000);
      assert.equal(src.exit.code, 1, src.cli.describe());
      checkLines(src.cli);
      const f = terminal(src.cli);
      assert.equal(f.type, 'failed', src.cli.describe());
      assert.equal(f.code, 'MIGRATION_CHANNEL_COUNT_MISMATCH', src.cli.describe());
      assert.match(String(f.message), /\b8\b/, `mentions 8: ${String(f.message)}`);
      assert.match(String(f.message), /\b4\b/, `mentions 4: ${String(f.message)}`);
      assert.equal(f.expected, '4');
      assert.equal(f.received, '8');
      const refused = await dest.cli.waitFor((l) => l.type === 'channel-rejected' && l.code === 'MIGRATION_CHANNEL_COUNT_MISMATCH', 5_000, 'dest refusal');
      assert.equal(refused.migration, null);
      assert.ok(dest.cli.alive, 'dest keeps serving');
    } finally {
      dest.cli.kill();
    }
  });
});

// --- 6. nothing listening ------------------------------------------------------------------

describe('nothing listening', () => {
  it('migrate exits 1 with MIGRATION_CONNECT_FAILED naming the address, quickly', { timeout: 15_000 }, async () => {
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    const src = await run(['migrate', '--to', address, '--channels', '4', '--ram-size', '4MiB', '--connect-timeout-ms', '1000', '--timeout-ms', '3000', '--events', 'ndjson'], 10_000);
    assert.equal(src.exit.code, 1, src.cli.describe());
    checkLines(src.cli);
    assertNoStack(src.cli.stderr);
    const f = terminal(src.cli);
    assert.equal(f.type, 'failed', src.cli.describe());
    assert.equal(f.code, 'MIGRATION_CONNECT_FAILED');
    assert.ok(String(f.message).includes(address), `names ${address}: ${String(f.message)}`);
    assert.equal(f.peer, address);
    // Process start (tsx) included; the refusal itself is immediate.
    assert.ok(src.durationMs < 6_000, `took ${src.durationMs} ms`);
  });
});
