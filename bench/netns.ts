/**
 * Two hosts on one machine for the benches: network namespaces mfd-src and mfd-dst joined
 * by a veth pair (10.77.0.1 and 10.77.0.2), a tbf rate cap on the source's end, and children
 * started inside either namespace. Needs root, `ip` and `tc`.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import path from 'node:path';
import type { Child, Children } from './children';

const NODE = process.execPath;

export const NS_SRC = 'mfd-src';
export const NS_DST = 'mfd-dst';
export const VETH_SRC = 'mfd-s';
export const VETH_DST = 'mfd-d';
export const IP_SRC = '10.77.0.1';
export const IP_DST = '10.77.0.2';

/** tbf's other parameters, as in the issue: a 256 KiB bucket, at most 100 ms of queue. */
export const TBF_BURST = '256kb';
export const TBF_LATENCY = '100ms';
// ---- namespaces -----------------------------------------------------------------------------

const log = (s: string) => process.stderr.write(`[bench] ${s}\n`);

export function onPath(cmd: string): string | null {
  for (const dir of [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/sbin']) {
    if (!dir) continue;
    const p = path.join(dir, cmd);
    try {
      accessSync(p, fsConstants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

/** Runs a command to completion; throws with its stderr. */
export function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 15_000 });
  } catch (err) {
    const e = err as Error & { stderr?: string; status?: number | null };
    throw new Error(`\`${path.basename(cmd)} ${args.join(' ')}\` failed${e.status != null ? ` (exit ${e.status})` : ''}: ${(e.stderr ?? e.message).trim()}`);
  }
}

export interface TbfStats {
  sentBytes: number;
  packets: number;
  dropped: number;
  overlimits: number;
}

export class Netns {
  private created = false;

  constructor(
    private readonly ip: string,
    private readonly tc: string,
  ) {}

  private exists(): string[] {
    const list = run(this.ip, ['netns', 'list']);
    return [NS_SRC, NS_DST].filter((ns) => new RegExp(`^${ns}(\\s|$)`, 'm').test(list));
  }

  /** Removes what a crashed run may have left: the namespaces (their veth ends go with them), a veth end in ours. */
  removeStale(): void {
    for (const ns of this.exists()) {
      log(`removing stale namespace ${ns} (left by an earlier run)`);
      run(this.ip, ['netns', 'del', ns]);
    }
    try {
      run(this.ip, ['link', 'del', VETH_SRC]);
      log(`removed stale link ${VETH_SRC}`);
    } catch {
      // not there: the usual case
    }
  }

  create(): void {
    this.removeStale();
    this.created = true; // from here on, every way out deletes whatever part was made
    run(this.ip, ['netns', 'add', NS_SRC]);
    run(this.ip, ['netns', 'add', NS_DST]);
    run(this.ip, ['link', 'add', VETH_SRC, 'netns', NS_SRC, 'type', 'veth', 'peer', 'name', VETH_DST, 'netns', NS_DST]);
    run(this.ip, ['-n', NS_SRC, 'addr', 'add', `${IP_SRC}/24`, 'dev', VETH_SRC]);
    run(this.ip, ['-n', NS_DST, 'addr', 'add', `${IP_DST}/24`, 'dev', VETH_DST]);
    for (const [ns, dev] of [[NS_SRC, VETH_SRC], [NS_DST, VETH_DST]] as const) {
      run(this.ip, ['-n', ns, 'link', 'set', 'lo', 'up']);
      run(this.ip, ['-n', ns, 'link', 'set', dev, 'up']);
    }
  }

  /** tbf on the source's veth: caps source → destination, the direction the pages go. */
  setRate(rate: string | null): void {
    if (rate === null) {
      try {
        run(this.tc, ['-n', NS_SRC, 'qdisc', 'del', 'dev', VETH_SRC, 'root']);
      } catch {
        // no root qdisc of ours: nothing to remove
      }
      return;
    }
    run(this.tc, ['-n', NS_SRC, 'qdisc', 'replace', 'dev', VETH_SRC, 'root', 'tbf', 'rate', rate, 'burst', TBF_BURST, 'latency', TBF_LATENCY]);
  }

  qdisc(): string {
    return run(this.tc, ['-n', NS_SRC, 'qdisc', 'show', 'dev', VETH_SRC]).trim();
  }

  /** Counters of the root qdisc since it was added: did tbf drop (a loss the relay model otherwise lacks)? */
  qdiscStats(): TbfStats | null {
    const out = run(this.tc, ['-s', '-n', NS_SRC, 'qdisc', 'show', 'dev', VETH_SRC]);
    const m = /Sent (\d+) bytes (\d+) pkt \(dropped (\d+), overlimits (\d+)/.exec(out);
    return m ? { sentBytes: Number(m[1]), packets: Number(m[2]), dropped: Number(m[3]), overlimits: Number(m[4]) } : null;
  }

  /** Idempotent and synchronous, so that the process 'exit' handler can call it too. */
  destroy(): void {
    if (!this.created) return;
    this.created = false;
    for (const ns of [NS_SRC, NS_DST]) {
      try {
        run(this.ip, ['netns', 'del', ns]);
      } catch (err) {
        if (this.existsSafe().includes(ns)) log(`could not delete namespace ${ns}: ${(err as Error).message}`);
      }
    }
  }

  private existsSafe(): string[] {
    try {
      return this.exists();
    } catch {
      return [];
    }
  }
}

/**
 * A child in a namespace, tracked by Children like any other: `ip netns exec NS node ...`.
 * ip enters NS and execvp()s node in the same process (no fork), so the tracked pid is the
 * node process itself: its signals, exit status and stdout are node's.
 */
export function spawnIn(kids: Children, ip: string, ns: string, name: string, nodeArgs: string[]): Child {
  return kids.spawn(name, ['netns', 'exec', ns, NODE, ...nodeArgs], undefined, { command: ip });
}

