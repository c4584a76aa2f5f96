/**
 * lib/engine: the source and destination state machines. Knows nothing of who asked for a
 * migration (CLI, console, agent).
 */
export { SourceMigration, type SourceOptions, type MigrationResult } from './source';
export { Destination, type DestinationOptions } from './destination';
export { IncomingMigration, type IncomingResult, type Rejection } from './incoming';
export { parseFault, type Fault, type FaultKind } from './faults';
export { splitHostPort, joinHostPort } from './address';
export type { EventListener } from './emitter';
export { type TlsServerConfig } from './tls';
