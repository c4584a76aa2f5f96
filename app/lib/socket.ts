/**
 * The console's one socket.io client, shared by every component of the page. Created on
 * first use in the browser (never during server rendering); components add their listeners
 * in useEffect and remove the same handlers on cleanup.
 */
import { io, type Socket } from 'socket.io-client';
import type { ClientToServerEvents, ServerToClientEvents } from '../../lib/contracts/console';

export type ConsoleSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

let socket: ConsoleSocket | null = null;

/** Same origin, default path (`/socket.io`): the server that served the page hosts it. */
export function getSocket(): ConsoleSocket {
  if (typeof window === 'undefined') throw new Error('getSocket() is for the browser: call it from an effect or a handler');
  socket ??= io({ autoConnect: true, reconnectionDelayMax: 2000 });
  return socket;
}
