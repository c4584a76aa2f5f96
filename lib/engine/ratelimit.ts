/**
 * Token bucket shared by every channel of a migration: the optional max-bandwidth cap.
 * Takers that overdraw wait for their share; waits end with the migration's lifetime.
 */
import type { Lifetime } from './lifetime';

/** Burst allowed after idling: a tenth of a second's worth. */
const BURST_SECONDS = 0.1;

export class RateLimiter {
  private available: number;
  private last = performance.now();
  private readonly burst: number;

  constructor(
    private readonly bytesPerSecond: number,
    private readonly life: Lifetime,
  ) {
    this.burst = Math.max(1, bytesPerSecond * BURST_SECONDS);
    this.available = this.burst;
  }

  async take(bytes: number): Promise<void> {
    const now = performance.now();
    this.available = Math.min(this.burst, this.available + ((now - this.last) * this.bytesPerSecond) / 1000);
    this.last = now;
    this.available -= bytes;
    if (this.available >= 0) return;
    await this.life.sleep((-this.available * 1000) / this.bytesPerSecond);
  }
}
