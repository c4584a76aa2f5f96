/**
 * How the long-running commands (`dest`, `relay`) end: they serve until interrupted or until
 * the command calls finish (its --once), then clean up whichever way it ended.
 */
import { EXIT_OK } from './args';

export interface Serving {
  /** Ends the wait with this exit code (--once: the first migration's outcome). */
  finish(code: number): void;
  /**
   * Waits for finish() or SIGINT/SIGTERM, then runs cleanup (also when that throws);
   * resolves with the exit code.
   */
  wait(cleanup: () => Promise<void>): Promise<number>;
}

export function serving(): Serving {
  let finish!: (code: number) => void;
  const exit = new Promise<number>((resolve) => (finish = resolve));
  return {
    finish: (code) => finish(code),
    async wait(cleanup) {
      // Interrupted while serving is how a long-running command ends, not a failure.
      const onSignal = () => finish(EXIT_OK);
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        return await exit;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        await cleanup();
      }
    },
  };
}
