/**
 * Typed event stream of one migration, kept as a bounded timeline for post-mortems.
 */
import type { EventBody, MigrationEvent, MigrationEventType, Role } from '../contracts';
import type { MigrationError } from '../errors';

export type EventListener = (e: MigrationEvent) => void;

/** Progress snapshots are frequent: the timeline keeps one a second at most. */
const TIMELINE_PROGRESS_INTERVAL_MS = 1000;
/** Bounds the timeline of a very long migration; the first events (setup) are kept. */
const TIMELINE_MAX = 20_000;

export class MigrationEmitter {
  private readonly listeners = new Set<EventListener>();
  readonly timeline: MigrationEvent[] = [];
  private lastProgressKept = 0;
  private dropped = 0;

  constructor(
    private readonly role: Role,
    readonly id: string,
    public uuid: string | null,
  ) {}

  on(fn: EventListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit<T extends MigrationEventType>(type: T, body: EventBody<T>): MigrationEvent {
    const e = {
      type,
      time: Date.now(),
      role: this.role,
      migration: { id: this.id, uuid: this.uuid },
      ...body,
    } as unknown as MigrationEvent;
    this.record(e);
    for (const fn of this.listeners) {
      try {
        fn(e);
      } catch {
        // A listener's bug must not break the migration that feeds it.
      }
    }
    return e;
  }

  /** Top-level failure fields, as rejection and failure events carry them. */
  static failure(err: MigrationError) {
    const j = err.toJSON();
    return {
      code: j.code,
      message: j.message,
      channel: j.channel,
      peer: j.peer,
      connection: j.connection,
      expected: j.expected,
      received: j.received,
      field: j.field,
      missing: j.missing,
    };
  }

  get droppedEvents(): number {
    return this.dropped;
  }

  private record(e: MigrationEvent): void {
    if (e.type === 'progress') {
      if (e.time - this.lastProgressKept < TIMELINE_PROGRESS_INTERVAL_MS) return;
      this.lastProgressKept = e.time;
    }
    const vital = e.type === 'state' || e.type === 'completed' || e.type === 'failed' || e.type === 'cancelled';
    if (this.timeline.length >= TIMELINE_MAX && !vital) {
      this.dropped++;
      return;
    }
    this.timeline.push(e);
  }
}
