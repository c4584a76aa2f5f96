/**
 * A migration's line in the lists (MigrationSummary) from its snapshot: one shape for the
 * console's own migrations, those it receives, QEMU mode's and the fleet's.
 */
import type { MigrationSnapshot } from '../lib/contracts';
import type { MigrationSummary } from '../lib/contracts/console';

/** A migration's list line from its snapshot; average throughput over the pages it moved. */
export function summaryFrom(s: MigrationSnapshot, o: { destination: string; inject: string[]; agents?: MigrationSummary['agents'] }): MigrationSummary {
  return {
    id: s.id,
    uuid: s.uuid,
    state: s.state,
    channels: s.channelCount,
    destination: o.destination,
    ramSize: s.ramSize,
    startedAt: s.startedAt,
    endedAt: s.endedAt,
    totalTimeMs: s.totalTimeMs,
    transferred: s.transferred,
    throughput: s.totalTimeMs ? (s.pageBytes * 1000) / s.totalTimeMs : null,
    errorCode: s.error?.code ?? null,
    errorMessage: s.error?.message ?? null,
    inject: o.inject,
    agents: o.agents ?? null,
  };
}
