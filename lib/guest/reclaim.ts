/**
 * Gives a released guest's RAM back to the host.
 *
 * Guest RAM lives in shared WebAssembly memories (lib/guest/ram.ts). V8 frees one only when a
 * garbage collection finds it unreachable, and it does not count such memory towards the
 * pressure that starts a collection: a destination that received and dropped a few guests
 * (failed migrations, released arrivals) held their faulted-in RAM for as long as its small
 * JavaScript heap did not need collecting, gigabytes after a few dozen. So once a guest is
 * stopped, a full collection is asked for, at most one a second, after the workers that
 * shared its memory have had time to exit.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

const DELAY_MS = 250;
const MIN_GAP_MS = 1000;

let gc: (() => void) | null | undefined;
let timer: NodeJS.Timeout | null = null;
let last = 0;

function collector(): (() => void) | null {
  if (gc === undefined) {
    try {
      // The process was not started with --expose-gc: the flag takes effect for new contexts.
      v8.setFlagsFromString('--expose-gc');
      gc = vm.runInNewContext('gc') as () => void;
    } catch {
      gc = null; // a runtime without it: memory comes back when V8 collects on its own
    }
  }
  return gc;
}

/** Asks for a collection soon (coalesced): call when guest RAM was let go. */
export function reclaimReleasedRam(): void {
  if (timer) return;
  const wait = Math.max(DELAY_MS, last + MIN_GAP_MS - Date.now());
  timer = setTimeout(() => {
    timer = null;
    last = Date.now();
    collector()?.();
  }, wait);
  timer.unref();
}
