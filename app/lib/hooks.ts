/**
 * Lists that the server broadcasts on change: fetched once over REST, then replaced by each
 * `migrations:changed` / `guests:changed` / `agents:changed` / `evacuations:changed`, and
 * fetched again after a reconnect (broadcasts
 * missed while away are not replayed). While an item is still moving (a live migration, a
 * migrating guest) the list is read again every few seconds, since broadcasts come only at
 * starts and ends. For client components only.
 */
import { useEffect, useRef, useState } from 'react';
import { TERMINAL_STATES } from '../../lib/contracts';
import type { AgentView, EvacuationView, GuestSummary, MigrationSummary } from '../../lib/contracts/console';
import { ApiError, api } from './api';
import { getSocket, type ConsoleSocket } from './socket';

export interface Listed<T> {
  items: T[] | null;
  error: string | null;
  /** Replaces one item (by key) after an action, ahead of the broadcast. */
  replace: (item: T) => void;
  /** Replaces one item, or puts a new one first (a list ordered newest first), ahead of the broadcast. */
  upsert: (item: T) => void;
  /** Takes one item out (by key) after an action, ahead of the broadcast. */
  drop: (k: string) => void;
}

/** While some item is still moving, the list is read again this often (broadcasts come only at start and end). */
const POLL_MS = 2000;

/** Adds the list's broadcast handler; returns what removes that same handler. */
type Listen<T> = (socket: ConsoleSocket, fn: (list: T[]) => void) => () => void;

function useBroadcastList<T>(
  listen: Listen<T>,
  load: () => Promise<T[]>,
  key: (item: T) => string,
  moving: (item: T) => boolean,
): Listed<T> {
  const [items, setItems] = useState<T[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const refreshRef = useRef<() => void>(() => {});
  const anyMoving = items?.some(moving) ?? false;

  useEffect(() => {
    let live = true;
    // A broadcast newer than a fetch in flight wins over that fetch's answer.
    let broadcasts = 0;
    const socket = getSocket();
    const refresh = () => {
      const seen = broadcasts;
      load().then(
        (list) => {
          if (!live || broadcasts !== seen) return;
          setItems(list);
          setError(null);
        },
        (err: unknown) => {
          if (live) setError(err instanceof ApiError ? `${err.code}: ${err.message}` : String(err));
        },
      );
    };
    const onChanged = (list: T[]) => {
      broadcasts++;
      setItems(list);
      setError(null);
    };
    refreshRef.current = refresh;
    refresh();
    const unlisten = listen(socket, onChanged);
    socket.io.on('reconnect', refresh);
    return () => {
      live = false;
      unlisten();
      socket.io.off('reconnect', refresh);
    };
  }, [listen, load]);

  useEffect(() => {
    if (!anyMoving) return;
    const timer = setInterval(() => refreshRef.current(), POLL_MS);
    return () => clearInterval(timer);
  }, [anyMoving]);

  const replace = (item: T) => setItems((list) => (list ? list.map((x) => (key(x) === key(item) ? item : x)) : list));
  const upsert = (item: T) => setItems((list) => (list?.some((x) => key(x) === key(item)) ? list.map((x) => (key(x) === key(item) ? item : x)) : [item, ...(list ?? [])]));
  const drop = (k: string) => setItems((list) => (list ? list.filter((x) => key(x) !== k) : list));
  return { items, error, replace, upsert, drop };
}

const loadMigrations = () => api.listMigrations();
const loadGuests = () => api.listGuests();
const migrationKey = (m: MigrationSummary) => m.id;
const guestKey = (g: GuestSummary) => g.uuid;
const migrationMoving = (m: MigrationSummary) => !TERMINAL_STATES.includes(m.state);
const guestMoving = (g: GuestSummary) => g.migrating !== null;

const listenMigrations: Listen<MigrationSummary> = (socket, fn) => {
  socket.on('migrations:changed', fn);
  return () => void socket.off('migrations:changed', fn);
};
const listenGuests: Listen<GuestSummary> = (socket, fn) => {
  socket.on('guests:changed', fn);
  return () => void socket.off('guests:changed', fn);
};

const loadAgents = () => api.listAgents();
const loadEvacuations = () => api.listEvacuations();
const agentKey = (a: AgentView) => a.name;
const evacuationKey = (e: EvacuationView) => e.id;
// An agent's migrations report progress to the console, not to this list: read again while
// some run, or while it is still being reached, in case a broadcast was missed.
const agentMoving = (a: AgentView) => a.state === 'connecting' || a.inFlight > 0;
const evacuationMoving = (e: EvacuationView) => e.state === 'running';

const listenAgents: Listen<AgentView> = (socket, fn) => {
  socket.on('agents:changed', fn);
  return () => void socket.off('agents:changed', fn);
};
const listenEvacuations: Listen<EvacuationView> = (socket, fn) => {
  socket.on('evacuations:changed', fn);
  return () => void socket.off('evacuations:changed', fn);
};

// Module-level loaders and listeners: stable across renders, so the effect runs once.
export const useMigrations = () => useBroadcastList(listenMigrations, loadMigrations, migrationKey, migrationMoving);
export const useGuests = () => useBroadcastList(listenGuests, loadGuests, guestKey, guestMoving);
export const useAgents = () => useBroadcastList(listenAgents, loadAgents, agentKey, agentMoving);
export const useEvacuations = () => useBroadcastList(listenEvacuations, loadEvacuations, evacuationKey, evacuationMoving);
