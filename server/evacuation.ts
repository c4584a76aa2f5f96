/**
 * Host evacuation: every running guest off one agent, to the others, within limits like
 * KubeVirt's: at most `maxInFlight` fleet migrations at once (all of the console's
 * fleet migrations count, not only this evacuation's) and at most `maxOutboundPerHost`
 * out of any one host.
 *
 * A queue, in the order the agent listed its guests. Whenever a migration ends (or one is
 * refused), the queue moves on: the next guest goes to the destination agent with the
 * fewest migrations arriving and then the fewest guests, among the allowed ones that are up.
 * A guest that cannot start (the agent refused, none is up) is marked failed with the reason
 * and the queue goes on; one that vanished from its agent meanwhile is skipped. Cancel stops
 * the queue; migrations already running finish.
 */
import { randomUUID } from 'node:crypto';
import type { Evacuate, EvacuationItem, EvacuationView, MigrationSummary } from '../lib/contracts/console';
import { ConfigInvalidError } from '../lib/errors';
import type { Fleet, FleetRecord } from './fleet';

interface Running {
  view: EvacuationView;
  req: Evacuate;
}

export class Evacuations {
  readonly #fleet: Fleet;
  readonly #all = new Map<string, Running>();
  readonly #changed = new Set<() => void>();
  #pumping = false;
  #again = false;

  constructor(fleet: Fleet) {
    this.#fleet = fleet;
    fleet.onEnded((r) => this.#ended(r));
    fleet.onChange(() => void this.#pump());
  }

  onChange(fn: () => void): () => void {
    this.#changed.add(fn);
    return () => this.#changed.delete(fn);
  }

  list(): EvacuationView[] {
    return [...this.#all.values()].map((r) => r.view).sort((a, b) => b.startedAt - a.startedAt);
  }

  get(id: string): EvacuationView | null {
    return this.#all.get(id)?.view ?? null;
  }

  /** Queues every running guest of `agentName` not already migrating. */
  async start(agentName: string, req: Evacuate): Promise<EvacuationView> {
    const agent = this.#fleet.agent(agentName);
    if (!agent) throw new ConfigInvalidError(`no agent named ${agentName} in the fleet`, { field: 'agent', received: agentName });
    const already = () => {
      if ([...this.#all.values()].some((r) => r.view.agent === agentName && r.view.state === 'running')) {
        throw new ConfigInvalidError(`agent ${agentName} is already being evacuated`, { field: 'agent', received: agentName });
      }
    };
    already();
    for (const d of req.destinations ?? []) {
      if (d === agentName) throw new ConfigInvalidError(`destination ${d} is the agent being evacuated`, { field: 'destinations', received: d });
      if (!this.#fleet.agent(d)) throw new ConfigInvalidError(`no agent named ${d} in the fleet`, { field: 'destinations', received: d });
    }
    await agent.refresh();
    // Again: another request for this agent may have started its evacuation meanwhile.
    already();
    if (agent.state !== 'up') throw new ConfigInvalidError(`agent ${agentName} is ${agent.state}${agent.error ? `: ${agent.error}` : ''}`, { field: 'agent', received: agentName });
    const items: EvacuationItem[] = agent.guests
      .filter((g) => g.state === 'running' && g.migrating === null)
      .map((g) => ({ guest: g.uuid, name: g.name, ramSize: g.ramSize, state: 'queued', destination: null, migrationId: null, error: null, startedAt: null, endedAt: null }));
    const view: EvacuationView = {
      id: randomUUID(),
      agent: agentName,
      state: 'running',
      limits: { maxInFlight: req.maxInFlight, maxOutboundPerHost: req.maxOutboundPerHost },
      startedAt: Date.now(),
      endedAt: null,
      items,
      peakInFlight: 0,
      summary: { queued: items.length, migrating: 0, completed: 0, failed: 0, skipped: 0 },
    };
    this.#all.set(view.id, { view, req });
    this.#changedNow();
    await this.#pump();
    return view;
  }

  cancel(id: string): EvacuationView | null {
    const r = this.#all.get(id);
    if (!r) return null;
    if (r.view.state === 'running') {
      for (const it of r.view.items) if (it.state === 'queued') it.state = 'skipped';
      this.#settle(r);
    }
    return r.view;
  }

  /** Starts what the limits allow, then again whenever something changed meanwhile. */
  async #pump(): Promise<void> {
    if (this.#pumping) {
      this.#again = true;
      return;
    }
    this.#pumping = true;
    try {
      do {
        this.#again = false;
        for (const r of this.#all.values()) if (r.view.state === 'running') await this.#startSome(r);
      } while (this.#again);
    } finally {
      this.#pumping = false;
    }
  }

  async #startSome(r: Running): Promise<void> {
    const v = r.view;
    for (const it of v.items) {
      if (it.state !== 'queued') continue;
      const live = this.#fleet.inFlight();
      if (live.total >= r.req.maxInFlight || (live.bySource.get(v.agent) ?? 0) >= r.req.maxOutboundPerHost) break;
      const dest = this.#pickDestination(r);
      if (!dest) {
        it.state = 'failed';
        it.error = 'no destination agent is up';
        it.endedAt = Date.now();
        continue;
      }
      it.state = 'migrating';
      it.destination = dest;
      it.startedAt = Date.now();
      this.#count(v);
      this.#changedNow();
      try {
        const s: MigrationSummary = await this.#fleet.start({
          sourceAgent: v.agent,
          destinationAgent: dest,
          guest: it.guest,
          channels: r.req.channels,
          maxBandwidth: r.req.maxBandwidth,
          downtimeLimitMs: r.req.downtimeLimitMs,
          compression: r.req.compression,
          compressionLevel: r.req.compressionLevel,
          roundLimit: 30,
          setupTimeoutMs: 10_000,
          inject: [],
        });
        it.migrationId = s.id;
        // Ended already (gone from the fleet: its end passed by before its id was known here).
        if (['completed', 'failed', 'cancelled'].includes(s.state) || !this.#fleet.has(s.id)) this.#finishItem(it, s.state === 'completed', s.errorMessage ?? s.state, s.endedAt);
      } catch (err) {
        const gone = /no running guest/.test((err as Error).message);
        it.state = gone ? 'skipped' : 'failed';
        it.error = (err as Error).message;
        it.endedAt = Date.now();
      }
      this.#count(v);
      v.peakInFlight = Math.max(v.peakInFlight, v.items.filter((x) => x.state === 'migrating').length);
      this.#changedNow();
    }
    this.#settle(r);
  }

  #pickDestination(r: Running): string | null {
    const allowed = new Set(r.req.destinations ?? []);
    const inbound = this.#fleet.inFlight().byDestination;
    const candidates = this.#fleet
      .list()
      .filter((a) => a.name !== r.view.agent && a.state === 'up' && a.migrationAddress && (allowed.size === 0 || allowed.has(a.name)))
      .sort((a, b) => (inbound.get(a.name) ?? 0) - (inbound.get(b.name) ?? 0) || a.guests.length - b.guests.length || a.name.localeCompare(b.name));
    return candidates[0]?.name ?? null;
  }

  #ended(rec: FleetRecord): void {
    for (const r of this.#all.values()) {
      const it = r.view.items.find((x) => x.migrationId === rec.summary.id);
      if (!it || it.state !== 'migrating') continue;
      this.#finishItem(it, rec.summary.state === 'completed', rec.summary.errorMessage ?? rec.summary.state, rec.summary.endedAt);
      this.#count(r.view);
      this.#changedNow();
    }
    void this.#pump();
  }

  /** `endedAt`: when the migration itself ended (the console learns it a little later). */
  #finishItem(it: EvacuationItem, ok: boolean, error: string | null, endedAt: number | null = null): void {
    it.state = ok ? 'completed' : 'failed';
    it.error = ok ? null : error;
    it.endedAt = endedAt ?? Date.now();
  }

  #settle(r: Running): void {
    const v = r.view;
    this.#count(v);
    if (v.state === 'running' && v.summary.queued === 0 && v.summary.migrating === 0) {
      v.state = v.items.some((x) => x.state === 'skipped' && x.error === null) ? 'cancelled' : 'done';
      v.endedAt = Date.now();
      this.#changedNow();
    }
  }

  #count(v: EvacuationView): void {
    const n = (s: EvacuationItem['state']) => v.items.filter((x) => x.state === s).length;
    v.summary = { queued: n('queued'), migrating: n('migrating'), completed: n('completed'), failed: n('failed'), skipped: n('skipped') };
  }

  #changedNow(): void {
    for (const fn of this.#changed) fn();
  }
}
