/**
 * Auto-converge: how hard to throttle the guest's vCPU after a pre-copy round that did not
 * converge (DESIGN 4, step 2).
 *
 * QEMU steps its throttle on a fixed schedule (20%, then +10% per round, up to 99%) however
 * far from convergence the migration is, so a guest that dirties memory much faster than the
 * link carries spends many rounds at throttles too weak to matter. Here the throttle is set
 * from what the round measured:
 *
 *   B  bandwidth (bytes/s), D  dirty rate over the round (bytes/s), R  bytes dirty now,
 *   L  downtime limit (s). Converged when R <= B·L.
 *
 * A round sends what the previous one left dirty, R/B seconds, during which the guest
 * dirties about D·R/B: each round multiplies R by D/B. To reach MARGIN·B·L within
 * HORIZON_ROUNDS rounds R must shrink by ρ = (MARGIN·B·L / R)^(1/HORIZON_ROUNDS) per round,
 * so the dirty rate must fall to D* = ρ·B. A vCPU that gets a share s = 1 − throttle of its
 * time dirties memory s times as fast, so the next share is s·D*÷D: the farther from
 * convergence (large R/(B·L), large D/B) the harder the throttle, in one step.
 *
 * When the measured D understates the guest (a working set dirtied faster than once per
 * round shows as at most its own size per round), the next round shows it again and the
 * share is cut again: the error shrinks geometrically rather than by QEMU's fixed 10%.
 * The share may grow (throttle eased) at most GROWTH times per round, so one quiet round
 * does not undo the throttle that made it quiet.
 */
import { MAX_THROTTLE } from '../guest';

/** Rounds in which the remaining set should shrink to MARGIN of the downtime budget. */
export const HORIZON_ROUNDS = 2;
/** Aim below the budget: shrinking to exactly B·L would approach it without reaching it. */
export const MARGIN = 0.5;
/** At most this much more run share per round. */
export const GROWTH = 2;

export interface ConvergeInputs {
  /** Throttle in force during the round, 0..MAX_THROTTLE. */
  throttle: number;
  /** Bytes dirty now (the next round's set). */
  remaining: number;
  /** bytes/s the migration moves. */
  bandwidth: number;
  /** bytes/s the guest dirtied during the round. */
  dirtyRate: number;
  downtimeLimitMs: number;
}

/** The throttle for the next round, 0..MAX_THROTTLE (0: none needed). */
export function nextThrottle(i: ConvergeInputs): number {
  const budget = (i.bandwidth * i.downtimeLimitMs) / 1000;
  const share = 1 - i.throttle;
  // Nothing measurable yet (no bandwidth) or nothing to slow: keep what is in force.
  if (!(budget > 0) || !(i.remaining > 0)) return i.throttle;
  const rho = Math.min(1, Math.pow((MARGIN * budget) / i.remaining, 1 / HORIZON_ROUNDS));
  const target = rho * i.bandwidth;
  let next = i.dirtyRate > 0 ? (share * target) / i.dirtyRate : Infinity;
  next = Math.min(next, share * GROWTH, 1);
  next = Math.max(next, 1 - MAX_THROTTLE);
  const throttle = 1 - next;
  // Below a percent a throttle is noise: report and apply none.
  return throttle < 0.01 ? 0 : Math.min(MAX_THROTTLE, throttle);
}
