/**
 * Hosts for the fleet's tests: two network namespaces, each with its own address on a
 * bridge in the root namespace (where the console runs), so the console reaches both
 * agents and the agents reach each other over veth pairs, as hosts on one switch. Needs
 * root and `ip`; where either is missing, `available` is false and `reason` says why, and
 * the tests run their agents on loopback instead, saying so.
 *
 * Names carry this process's id (leftovers of an earlier run with the same id are removed
 * first), and the subnet is the first one free from a number chosen from it, so neither a
 * run at the same time nor what a killed run left behind shares it. Everything is removed
 * by cleanup(), which the tests call on every path (and on exit).
 */
import { execFileSync } from 'node:child_process';

export interface TestHost {
  name: string;
  /** The namespace's name. */
  ns: string;
  ip: string;
  /** What runs a command inside it. */
  wrap: string[];
}

export interface FleetNet {
  available: boolean;
  reason: string | null;
  hosts: TestHost[];
  /** The console's address on the bridge. */
  consoleIp: string;
  cleanup(): void;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
}

function quietly(fn: () => void): void {
  try {
    fn();
  } catch {
    // already gone
  }
}

/** 10.78.N with N from this process's id, or the next N no address of this host is in. */
function freeSubnet(): string {
  let used = '';
  try {
    used = execFileSync('ip', ['-o', '-4', 'addr', 'show'], { timeout: 10_000 }).toString();
  } catch {
    // the first `ip` that makes something says why
  }
  for (let i = 0; i < 250; i++) {
    const n = (process.pid + i) % 250;
    if (!used.includes(`inet 10.78.${n}.`)) return `10.78.${n}`;
  }
  return `10.78.${process.pid % 250}`;
}

/** Two hosts, `a` and `b`, or the reason there are none. */
export function makeFleetNet(names: readonly string[] = ['a', 'b']): FleetNet {
  const none = (reason: string): FleetNet => ({ available: false, reason, hosts: [], consoleIp: '127.0.0.1', cleanup: () => {} });
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return none('not root: network namespaces need it');
  const tag = `mf${process.pid % 100000}`;
  const bridge = `${tag}br`;
  const cleanup = () => {
    for (const n of names) {
      quietly(() => ip('netns', 'del', `${tag}-${n}`));
      quietly(() => ip('link', 'del', `${tag}${n}`));
    }
    quietly(() => ip('link', 'del', bridge));
  };
  cleanup();
  const subnet = freeSubnet();
  const hosts: TestHost[] = names.map((n, i) => ({ name: n, ns: `${tag}-${n}`, ip: `${subnet}.${i + 2}`, wrap: ['ip', 'netns', 'exec', `${tag}-${n}`] }));
  try {
    ip('link', 'add', bridge, 'type', 'bridge');
    ip('addr', 'add', `${subnet}.1/24`, 'dev', bridge);
    ip('link', 'set', bridge, 'up');
    for (const h of hosts) {
      const outside = `${tag}${h.name}`;
      const inside = `${tag}${h.name}i`;
      ip('netns', 'add', h.ns);
      ip('link', 'add', outside, 'type', 'veth', 'peer', 'name', inside);
      ip('link', 'set', inside, 'netns', h.ns);
      ip('link', 'set', outside, 'master', bridge);
      ip('link', 'set', outside, 'up');
      ip('netns', 'exec', h.ns, 'ip', 'addr', 'add', `${h.ip}/24`, 'dev', inside);
      ip('netns', 'exec', h.ns, 'ip', 'link', 'set', inside, 'up');
      ip('netns', 'exec', h.ns, 'ip', 'link', 'set', 'lo', 'up');
    }
  } catch (err) {
    cleanup();
    const msg = (err as { stderr?: Buffer }).stderr?.toString().trim() || (err as Error).message;
    return none(`cannot make network namespaces: ${msg}`);
  }
  process.once('exit', cleanup);
  return { available: true, reason: null, hosts, consoleIp: `${subnet}.1`, cleanup };
}
