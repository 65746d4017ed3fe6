/**
 * A served model's tuning event log: what its online tuner did (re-tunes that changed thresholds,
 * tightenings, ramp-set changes) and what operators did (pause, resume, pin, unpin), ramps
 * disabled, and a saved state restored or rejected at start, each with a one-line summary — what the dashboard marks on its threshold chart
 * (src/dashboard/protocol.ts `TuningEvent`). LiveTuning (live-tuning.ts) records into it.
 *
 * Bounded (the last `capacity` events) and numbered: every event gets the next sequence number of
 * its model, from 1, so a reader that remembers the last number it saw asks only for what came
 * after (`since`). A reader that fell more than `capacity` events behind gets the ones still kept.
 * Events are rare (a re-tune every quarter window at most), so recording costs nothing to speak of.
 */
import type { TuningEvent, TuningEventKind } from '../dashboard/protocol.js';
import type { TunerEvent } from '../../tuner/tuner.js';

/** Events kept per model by default. */
export const TUNING_LOG_CAPACITY = 256;

/** What `TuningLog.since` answers: the events after the number asked for, oldest first, and the newest number. */
export interface TuningEventLog {
  events: TuningEvent[];
  /** Sequence number of the newest event recorded (0 before any): ask `since(last)` next time. */
  last: number;
}

export class TuningLog {
  /** Ring of the kept events; `seq` of entry i is known from `last`. */
  private readonly events: (TuningEvent | undefined)[];
  private last = 0;

  constructor(
    readonly capacity = TUNING_LOG_CAPACITY,
    private readonly now: () => number = Date.now,
  ) {
    if (!(Number.isInteger(capacity) && capacity > 0))
      throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    this.events = new Array<TuningEvent | undefined>(capacity);
  }

  record(kind: TuningEventKind, summary: string): void {
    this.last++;
    this.events[(this.last - 1) % this.capacity] = { at: this.now(), kind, summary };
  }

  /** The events numbered after `seq` still kept, oldest first; `since(0)` gives every kept event. */
  since(seq: number): TuningEventLog {
    const from = Math.max(Number.isFinite(seq) ? Math.floor(seq) : 0, this.last - this.capacity, 0);
    const events: TuningEvent[] = [];
    for (let n = from + 1; n <= this.last; n++) events.push(this.events[(n - 1) % this.capacity] as TuningEvent);
    return { events, last: this.last };
  }
}

/** A threshold for a summary: three decimals, or "never". */
function formatThreshold(threshold: number | null): string {
  return threshold === null ? 'never' : String(Number(threshold.toFixed(3)));
}

/** "0 → 0.912, 3 → never": exit ids (ramps, or a cascade's tiers then ramps) and thresholds, in id order. */
export function describeThresholds(thresholds: ReadonlyMap<number, number | null>): string {
  const entries = [...thresholds].sort(([a], [b]) => a - b);
  if (entries.length === 0) return 'no ramps';
  return entries.map(([id, t]) => `${id} → ${formatThreshold(t)}`).join(', ');
}

/** An online tuner's event as a log entry: its kind and one line. */
export function tunerEventEntry(event: TunerEvent): { kind: TuningEventKind; summary: string } {
  switch (event.type) {
    case 'retune':
      return {
        kind: 'retune',
        summary:
          `retune (${event.reason}): ${describeThresholds(event.thresholds)}; ` +
          `estimated savings ${(event.estimatedSavings * 100).toFixed(1)} %`,
      };
    case 'tighten': {
      const disagreed = Math.round(event.disagreement * event.rows);
      const until = event.reason === 'at-risk' ? ' until the window ends' : '';
      return {
        kind: 'tighten',
        summary:
          `tighten (${event.reason}): ${disagreed} of ${event.rows} rows disagreed ` +
          `(${(event.disagreement * 100).toFixed(2)} %); every ramp back to "never"${until}`,
      };
    }
    case 'ramps': {
      const parts = [
        ...(event.dropped.length > 0 ? [`dropped ${event.dropped.join(', ')}`] : []),
        ...(event.added !== null ? [`added ${event.added}`] : []),
      ];
      const why = event.reasons.length > 0 ? ` (${event.reasons.join('; ')})` : '';
      return { kind: 'ramps', summary: `ramps: ${parts.join('; ') || 'no change'}${why}` };
    }
  }
}
