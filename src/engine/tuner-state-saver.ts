/**
 * When a model's tuner state is written (the file itself: tuner-state-file.ts):
 *  - after a change — the tuner applied new thresholds or ramps, an operator paused, resumed,
 *    pinned or unpinned — at once, but no sooner than `debounceMs` after the previous write
 *    (the changes made meanwhile go together in one write);
 *  - every `intervalMs` while feedback flows, so that the saved rows stay recent and a process
 *    killed without a shutdown loses at most that much;
 *  - at a graceful shutdown (`close`), before the tuner's thread stops.
 * Never when nothing happened since the last write: a server started and stopped without traffic
 * leaves the file it found as it was (it may hold a state that was rejected only for now, e.g.
 * under a budget tightened for a while).
 *
 * The state comes from the tuner's thread (its rows, compact) and is written asynchronously, one
 * write at a time; the serving thread only encodes it. A failed write logs one line (and one
 * more when writing works again) and serving goes on.
 */
import { writeTunerState, type TunerStateFile } from './tuner-state-file.js';

/** Changes made within this long of a write wait for the next one. */
export const SAVE_DEBOUNCE_MS = 5_000;
/** Writes while feedback flows, at most this far apart. */
export const SAVE_INTERVAL_MS = 30_000;

export interface TunerStateSaverOptions {
  path: string;
  /** The state to write now; undefined: nothing to write (the tuner is gone). */
  state: () => Promise<TunerStateFile | undefined>;
  /** Feedback rows the tuner has been given so far: a change in it means there is something new to save. */
  fedRows: () => number;
  log: (line: string) => void;
  debounceMs?: number;
  intervalMs?: number;
  /** Replaces the file write (tests). */
  write?: (path: string, state: TunerStateFile) => Promise<void>;
}

export class TunerStateSaver {
  private readonly debounceMs: number;
  private readonly write: (path: string, state: TunerStateFile) => Promise<void>;
  private readonly interval: NodeJS.Timeout;
  private debounce: NodeJS.Timeout | undefined;
  /** A change not yet written. */
  private changedSince = false;
  /** `fedRows()` as of the last write (or the start). */
  private fedAtWrite: number;
  private lastWriteAt = Number.NEGATIVE_INFINITY;
  private writing: Promise<void> | undefined;
  private failing = false;
  private closed = false;

  constructor(private readonly options: TunerStateSaverOptions) {
    this.debounceMs = options.debounceMs ?? SAVE_DEBOUNCE_MS;
    this.write = options.write ?? writeTunerState;
    this.fedAtWrite = options.fedRows();
    this.interval = setInterval(() => {
      if (this.options.fedRows() !== this.fedAtWrite) void this.save();
    }, options.intervalMs ?? SAVE_INTERVAL_MS);
    // Saving must never keep a finished process alive.
    this.interval.unref();
  }

  /** Something worth saving changed: written now, or `debounceMs` after the previous write. */
  changed(): void {
    if (this.closed) return;
    this.changedSince = true;
    if (this.debounce) return;
    const wait = Math.max(0, this.lastWriteAt + this.debounceMs - Date.now());
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      void this.save();
    }, wait);
    this.debounce.unref();
  }

  /** Whether there is anything the file does not hold yet. */
  private get pending(): boolean {
    return this.changedSince || this.options.fedRows() !== this.fedAtWrite;
  }

  /**
   * Writes the state if anything is pending, after the write in progress if any (writes never
   * overlap, so the last one started is the one that lands).
   */
  private save(): Promise<void> {
    const previous = this.writing ?? Promise.resolve();
    const next = previous.then(() => (this.pending ? this.writeNow() : undefined));
    this.writing = next;
    void next.finally(() => {
      if (this.writing === next) this.writing = undefined;
    });
    return next;
  }

  private async writeNow(): Promise<void> {
    const fed = this.options.fedRows();
    this.changedSince = false;
    this.lastWriteAt = Date.now();
    try {
      const state = await this.options.state();
      if (!state) return;
      await this.write(this.options.path, state);
      this.fedAtWrite = fed;
      if (this.failing) this.options.log(`tuner state written to ${this.options.path} again`);
      this.failing = false;
    } catch (err) {
      // Not written: try again with the next change or interval.
      this.changedSince = true;
      if (!this.failing)
        this.options.log(
          `cannot write the tuner state to ${this.options.path} (${(err as Error).message}); serving goes on, ` +
            'later writes will try again',
        );
      this.failing = true;
    }
  }

  /** Stops the timers and writes what is pending; resolves when the last write has landed (or failed). */
  async close(): Promise<void> {
    if (this.closed) return this.writing;
    this.closed = true;
    clearInterval(this.interval);
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = undefined;
    await this.save();
  }
}
