/**
 * Throughput over a sliding window, fed by periodic samples of a byte counter.
 */

/** Samples kept: with a 250 ms tick, 2 s of history. */
const WINDOW_SAMPLES = 8;

export class RateMeter {
  private readonly times = new Float64Array(WINDOW_SAMPLES);
  private readonly totals = new Float64Array(WINDOW_SAMPLES);
  private n = 0;
  private head = 0;

  /** Records the counter's value at time `now` (ms). */
  sample(now: number, total: number): void {
    this.times[this.head] = now;
    this.totals[this.head] = total;
    this.head = (this.head + 1) % WINDOW_SAMPLES;
    if (this.n < WINDOW_SAMPLES) this.n++;
  }

  /** Bytes per second between the oldest and newest sample in the window. */
  rate(): number {
    if (this.n < 2) return 0;
    const newest = (this.head - 1 + WINDOW_SAMPLES) % WINDOW_SAMPLES;
    const oldest = (this.head - this.n + WINDOW_SAMPLES) % WINDOW_SAMPLES;
    const dt = this.times[newest] - this.times[oldest];
    if (dt <= 0) return 0;
    return ((this.totals[newest] - this.totals[oldest]) * 1000) / dt;
  }
}

/** The handshake-step timestamps every channel snapshot carries. */
export interface ChannelTimes {
  connecting: number | null;
  connected: number | null;
  handshakeSent: number | null;
  accepted: number | null;
  rejected: number | null;
  closed: number | null;
  /** TLS handshake done (null: in clear, or not yet). */
  secured: number | null;
}

export const emptyTimes = (): ChannelTimes => ({
  connecting: null,
  connected: null,
  handshakeSent: null,
  accepted: null,
  rejected: null,
  closed: null,
  secured: null,
});
