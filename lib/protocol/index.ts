/**
 * lib/protocol: bytes <-> typed messages. Pure: no sockets, timers or zod.
 * The wire format is documented in docs/PROTOCOL.md.
 */
export * from './constants';
export * from './magic';
export * from './handshake';
export * from './packet';
export * from './reader';
export * from './frames';
