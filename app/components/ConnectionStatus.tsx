'use client';

/** Whether live updates are flowing: the socket's state, in the nav. */
import { useEffect, useState } from 'react';
import { getSocket } from '../lib/socket';

type Status = 'connecting' | 'connected' | 'disconnected';

export function ConnectionStatus() {
  const [status, setStatus] = useState<Status>('connecting');
  useEffect(() => {
    const socket = getSocket();
    const onConnect = () => setStatus('connected');
    const onDisconnect = () => setStatus('disconnected');
    const onError = () => setStatus('disconnected');
    setStatus(socket.connected ? 'connected' : 'connecting');
    socket.on('connect', onConnect);
    socket.on('disconnect', onDisconnect);
    socket.on('connect_error', onError);
    return () => {
      socket.off('connect', onConnect);
      socket.off('disconnect', onDisconnect);
      socket.off('connect_error', onError);
    };
  }, []);
  const label = status === 'connected' ? 'live' : status === 'connecting' ? 'connecting…' : 'offline, retrying';
  return (
    <span className={`conn conn-${status}`} data-testid="connection" data-state={status} title="live updates (socket.io)">
      {label}
    </span>
  );
}
