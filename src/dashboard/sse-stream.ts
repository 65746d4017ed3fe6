/**
 * One dashboard viewer's Server-Sent Events stream: the ring buffer's frames after a cursor,
 * then each new one as it comes.
 *
 * Memory stays bounded however slow the client: a stream keeps no queue of its own, only its
 * cursor (the seq of the last frame written). When the socket's buffer is full (`write` returned
 * false) it stops writing and waits for `drain`, then catches up from the shared ring buffer.
 * A stream whose socket stays full for `stallMs` is dropped; one that falls so far behind that
 * the ring evicted frames it had not sent goes on from the oldest frame (the seq jump shows it).
 */
import type { SnapshotRing } from './snapshot-ring.js';

/** What a stream writes to: node's ServerResponse (after its head is written) is one. */
export interface SseSink {
  write(chunk: string): boolean;
  end(): void;
  destroy(): void;
  cork(): void;
  uncork(): void;
  once(event: 'drain' | 'close', listener: () => void): unknown;
  /** Already gone (its client left before the stream began): no `close` event will come. */
  readonly destroyed: boolean;
}

export interface SseStreamOptions {
  /** The reconnection delay EventSource is told (its `retry:` field), in ms. */
  retryMs: number;
  /** A socket that stays full this long means a client that does not read: the stream is dropped. */
  stallMs: number;
  /** Called once when the stream is over, for whatever reason. */
  onClose: () => void;
  now?: () => number;
}

export class SseStream {
  /** Seq of the last frame written. */
  private cursor: number;
  /** When the socket's buffer filled (`write` returned false); undefined while it takes more. */
  private blockedSince: number | undefined;
  private over = false;
  private readonly now: () => number;

  /**
   * @param lastEventId the client's Last-Event-ID: the stream starts after it; undefined (a new
   *   stream), older than the ring or newer than anything in it (a server restarted since): from the oldest frame
   */
  constructor(
    private readonly sink: SseSink,
    private readonly ring: SnapshotRing,
    lastEventId: number | undefined,
    private readonly options: SseStreamOptions,
  ) {
    this.now = options.now ?? Date.now;
    const fromOldest = Math.max(0, ring.oldestSeq - 1);
    this.cursor =
      lastEventId === undefined || lastEventId > ring.newestSeq ? fromOldest : Math.max(lastEventId, fromOldest);
    if (sink.destroyed) {
      this.finish();
      return;
    }
    sink.once('close', () => this.finish());
    sink.write(`retry: ${options.retryMs}\n\n`);
    this.pump();
  }

  /** Whether the stream is over (ended, dropped, or its client gone). */
  get closed(): boolean {
    return this.over;
  }

  /** Writes what the ring holds after the cursor, as far as the socket takes it. Called on each new frame. */
  pump(): void {
    if (this.over) return;
    if (this.blockedSince !== undefined) {
      if (this.now() - this.blockedSince >= this.options.stallMs) this.drop();
      return;
    }
    const frames = this.ring.since(this.cursor);
    if (frames.length === 0) return;
    this.sink.cork();
    try {
      for (const frame of frames) {
        this.cursor = frame.seq;
        if (!this.sink.write(frame.text)) {
          this.blockedSince = this.now();
          this.sink.once('drain', () => {
            this.blockedSince = undefined;
            this.pump();
          });
          break;
        }
      }
    } finally {
      this.sink.uncork();
    }
  }

  /**
   * Ends the stream: the client's EventSource reconnects after `retry` with its Last-Event-ID. A
   * socket that is full could not flush the end, and the response would stay open (holding a
   * server's shutdown back): it is destroyed instead.
   */
  end(): void {
    if (this.over) return;
    if (this.blockedSince !== undefined) this.sink.destroy();
    else this.sink.end();
    this.finish();
  }

  private drop(): void {
    this.sink.destroy();
    this.finish();
  }

  private finish(): void {
    if (this.over) return;
    this.over = true;
    this.options.onClose();
  }
}
