/**
 * The tab's one EventSource on `/dashboard/events`, for every model. EventSource reconnects by
 * itself after a dropped connection and sends `Last-Event-ID` (the last snapshot's seq), so the
 * server resends only what was missed; the page keeps that. Only when the browser gives up (the
 * server answered an error while restarting: readyState CLOSED) is a new EventSource opened after a
 * pause; that one starts without an id, so the server sends its whole ring buffer again, and the
 * Timeline drops what it already has.
 */

import type { Snapshot } from '../protocol.js';
import { ROUTES } from './api.js';

export type StreamState = 'connecting' | 'live' | 'reconnecting';

const REOPEN_AFTER_MS = 5000;

export function openStream(onSnapshot: (snapshot: Snapshot) => void, onState: (state: StreamState) => void): void {
  let reopenTimer: number | undefined;
  const open = () => {
    const source = new EventSource(ROUTES.events);
    source.addEventListener('open', () => onState('live'));
    source.addEventListener('snapshot', (event: MessageEvent<string>) => {
      let snapshot: unknown;
      try {
        snapshot = JSON.parse(event.data);
      } catch {
        return; // a torn event cannot be drawn; the next one can
      }
      if (isSnapshot(snapshot)) onSnapshot(snapshot);
    });
    source.addEventListener('error', () => {
      onState('reconnecting');
      if (source.readyState === EventSource.CLOSED && reopenTimer === undefined) {
        reopenTimer = window.setTimeout(() => {
          reopenTimer = undefined;
          open();
        }, REOPEN_AFTER_MS);
      }
    });
  };
  onState('connecting');
  open();
}

/** Enough of the shape to draw it: the server is this page's own, so this guards against bugs, not attacks. */
function isSnapshot(value: unknown): value is Snapshot {
  if (typeof value !== 'object' || value === null) return false;
  const candidate = value as Partial<Snapshot>;
  return typeof candidate.seq === 'number' && typeof candidate.t === 'number' && typeof candidate.models === 'object';
}
