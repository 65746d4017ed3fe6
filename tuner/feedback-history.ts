/**
 * The rows a tuner keeps, and what every kind reads from them: the realised window (the last
 * `window` rows, as they were actually answered) and the check of a run of rows against the
 * budget. Rows are kept since the start or the last tightening (`clear`), oldest first, each
 * with its realised disagreement (feedback-record.ts) and the index of the batch it came in.
 */
import { realisedDisagreement, type FeedbackRecord } from './feedback-record.js';
import type { TunerEstimates } from './tuner.js';

export interface HistoryRow {
  record: FeedbackRecord;
  /** 1: answered differently from the full model; 0: the same; −1: final answer unknown. */
  disagrees: number;
  batch: number;
}

/** Disagreeing rows (k) among rows whose final answer is known (n). */
export function tally(rows: readonly HistoryRow[]): { k: number; n: number } {
  let k = 0;
  let n = 0;
  for (const r of rows) {
    if (r.disagrees < 0) continue;
    n++;
    k += r.disagrees;
  }
  return { k, n };
}

/**
 * Whether rows as answered disagreed more than the budget allows on them: the budget's own
 * definition (k ≤ budget × n), with a little slack so that exactly the budget is within it
 * whatever the rounding of budget × n.
 */
export function breaksBudget({ k, n }: { k: number; n: number }, budget: number): boolean {
  return n > 0 && k > budget * n + 1e-9;
}

/** Estimates before the first batch: nothing observed, nothing tuned. */
export function noEstimates(): TunerEstimates {
  return {
    windowRows: 0,
    windowDisagreement: null,
    tuningRows: 0,
    estimatedDisagreement: null,
    upperBound: null,
    estimatedSavings: null,
    hindsightSavings: null,
    retunes: 0,
    tightenings: 0,
    rampChanges: 0,
    lastUtilities: [],
    learning: true,
    feedbackDemand: 'learning',
  };
}

/** Throws a RangeError for options no tuner can judge a budget with. */
export function checkTunerOptions(options: { budget: number; confidence: number; window: number }): void {
  if (!(options.budget > 0 && options.budget < 1))
    throw new RangeError(`budget must be in (0, 1), got ${options.budget}`);
  if (!(options.confidence > 0 && options.confidence < 1))
    throw new RangeError(`confidence must be in (0, 1), got ${options.confidence}`);
  if (!Number.isInteger(options.window) || options.window < 1)
    throw new RangeError(`window must be a positive integer, got ${options.window}`);
}

export class FeedbackHistory {
  /** Rows from index `head` on are held, oldest first; those before it were trimmed. */
  private rows: HistoryRow[] = [];
  /**
   * Trimmed rows leave by moving `head` and the array is compacted only once they are most of
   * it: trimming a few rows per batch off a history of tens of thousands then costs O(1) per
   * row instead of shifting the whole array every batch.
   */
  private head = 0;
  /** Batches observed since the start (a tightening does not reset it). */
  batches = 0;
  /** Rows observed since the start (a tightening does not reset it). */
  observed = 0;

  /** `window`: rows in the realised window. */
  constructor(private readonly window: number) {}

  get length(): number {
    return this.rows.length - this.head;
  }

  /** Appends one batch's rows. */
  add(records: readonly FeedbackRecord[]): void {
    const batch = this.batches++;
    for (const record of records) this.rows.push({ record, disagrees: realisedDisagreement(record), batch });
    this.observed += records.length;
  }

  /**
   * Drops the oldest rows beyond `keep`, but none from batch `keepFromBatch` on (a window counted
   * in batches, whatever their sizes).
   */
  trim(keep: number, keepFromBatch?: number): void {
    let excess = this.length - keep;
    if (keepFromBatch !== undefined) {
      let before = 0;
      while (before < this.length && (this.rows[this.head + before] as HistoryRow).batch < keepFromBatch) before++;
      excess = Math.min(excess, before);
    }
    if (excess <= 0) return;
    this.head += excess;
    if (this.head >= 1024 && 2 * this.head >= this.rows.length) {
      this.rows = this.rows.slice(this.head);
      this.head = 0;
    }
  }

  /** Forgets every row (a tightening: what came before no longer describes the traffic). */
  clear(): void {
    this.rows = [];
    this.head = 0;
  }

  /** The realised window: the last `window` rows. */
  recent(): readonly HistoryRow[] {
    return this.last(this.window);
  }

  /** The last `n` rows (`n` ≥ 1). */
  last(n: number): HistoryRow[] {
    return this.rows.slice(Math.max(this.head, this.rows.length - n));
  }

  /** Every row but the last `n`. */
  allBut(n: number): HistoryRow[] {
    return this.rows.slice(this.head, Math.max(this.head, this.rows.length - n));
  }

  /** Rows from batch `first` on. */
  sinceBatch(first: number): HistoryRow[] {
    let i = this.rows.length;
    while (i > this.head && (this.rows[i - 1] as HistoryRow).batch >= first) i--;
    return this.rows.slice(i);
  }

  /** The realised window's size and disagreement, as the estimates report them. */
  windowFigures(): Pick<TunerEstimates, 'windowRows' | 'windowDisagreement'> {
    const recent = this.recent();
    const { k, n } = tally(recent);
    return { windowRows: recent.length, windowDisagreement: n > 0 ? k / n : null };
  }
}
