/**
 * The guarded tuner (`tuner: guarded`, the default): the guarded search (guarded.ts) run online
 * on the last `tuneWindow` records (default 10 × window). While the history is short, one row in
 * three of the tuning window learns the path and the rest test it (`interleaved`); once half a
 * tuning window of older rows exists, those (up to `learnHistory`) learn and the whole tuning
 * window tests (`testOnTuningWindow`). The bound is held below the window-safe rate (see
 * `perWindowGuard`), and the budget also kept on the most recent window's rows (`recentGuard`:
 * a long tuning window must not hide a change in traffic).
 *
 * Violations. The realised disagreement (rows as they were actually answered, from their `exit`)
 * of a completed window of `window` rows exceeds the budget — judged once per window, not
 * sliding: every check on overlapping rows is another chance of a false alarm, and each false
 * alarm costs a window of savings — or, sooner, for sharp shifts, the lower Clopper–Pearson bound
 * over each run of `driftSpan` rows is above the budget (the budget is being broken with
 * confidence 1 − δ, not just noisily).
 *
 * What a violation does: every threshold goes to "never" at once and the history is cleared;
 * re-tuning resumes on fresh rows only. "Never" rather than "the strictest setting that was safe
 * on the recent window", because a violation means the recent window no longer describes the
 * traffic: any setting fitted on it (even its strictest safe one) was fitted on the rows that
 * just misled us, and we cannot tell where the change began. "Never" cannot disagree. The
 * statistical guard then keeps thresholds at "never" until enough fresh rows exist for the bound
 * to allow an exit (≈ 480 test rows, so ≈ 1,000 rows, for a 1 % budget per 1,000 rows at 95 %):
 * savings return after about a window, and grow as the tuning window refills.
 *
 * Until the usable rows (those with a reading of every active ramp) are enough for the bound to
 * allow anything, a re-tune keeps the current thresholds (a newly added ramp stays at "never").
 */
import { clopperPearsonLower, maxAllowedDisagreements, windowSafeRate } from './clopper-pearson.js';
import type { FeedbackRecord } from './feedback-record.js';
import { breaksBudget, tally } from './feedback-history.js';
import {
  guardedThresholds,
  learnPath,
  testPath,
  testPathTally,
  type GuardedChoice,
  type GuardedOptions,
} from './guarded.js';
import { OnlineTuner } from './online-tuner.js';
import { KeyedRows, PathTally } from './path-tally.js';
import type { GuardedTunerOptions, TunerEvent } from './tuner.js';
import { WindowEvaluator } from './window-eval.js';

/** One row in three learns the path, two test it (see GuardedTunerOptions.fitEvery). */
const DEFAULT_FIT_EVERY = 3;

/**
 * The guarded search (guarded.ts) as the guarded tuner runs it on a tuning window while its
 * history is short (`interleaved`: one row in `fitEvery` learns, the others test), from the
 * tuner's options: the one place those options become the search's, which the what-if
 * (what-if.ts) runs too.
 */
export function interleavedSearch(
  options: Pick<
    GuardedTunerOptions,
    'budget' | 'confidence' | 'window' | 'fitEvery' | 'quantiles' | 'perWindowGuard' | 'recentGuard'
  >,
): GuardedOptions {
  return {
    budget: options.budget,
    confidence: options.confidence,
    fitEvery: options.fitEvery ?? DEFAULT_FIT_EVERY,
    ...(options.quantiles !== undefined ? { quantiles: options.quantiles } : {}),
    ...(options.perWindowGuard !== false ? { windowRows: options.window } : {}),
    ...(options.recentGuard !== false ? { recentRows: options.window } : {}),
  };
}

export class GuardedTuner extends OnlineTuner<GuardedTunerOptions> {
  private readonly driftSpan: number;
  private readonly tuneWindow: number;
  /** Rows of history kept: enough for the realised window, the tuning window and the older rows that learn. */
  private readonly keep: number;
  /** Rows since the realised window was last judged (it is judged once per `window` rows). */
  private sinceWindowCheck = 0;
  /** Rows since the drift check last looked (it looks at each `driftSpan` rows once). */
  private sinceDriftCheck = 0;
  /** Rows before the tuning window needed before they, not a part of the window, learn the path. */
  private readonly learnFromOlderAt: number;
  /** Rows between learning the path again on older rows (half a tuning window). */
  private readonly relearnEvery: number;
  /**
   * The path learned on older rows (testOnTuningWindow), with `history.observed` when learned,
   * and its running tallies (path-tally.ts) on the tuning window and on that window's last
   * `window` rows (the recent-window guard's), made when first needed.
   */
  private path: {
    vectors: Float64Array[];
    learnedAt: number;
    rows: number;
    tallies: { tuning: PathTally; recent: PathTally } | null;
  } | null = null;
  /**
   * The usable rows of the history, keyed by their position among all rows observed, and the
   * position up to which the history was looked at: kept in step with the history at each
   * re-tune (`syncUsableRows`), so a re-tune looks only at the rows that came in since. Null
   * after a ramp-set change (which rows are usable depends on the active ramps).
   */
  private usableRows: { rows: KeyedRows; upTo: number } | null = null;
  /** Every ramp held at "never" until the current window ends (a window at risk; `hold`). */
  private held = false;

  constructor(options: GuardedTunerOptions) {
    super(options);
    this.driftSpan = options.driftSpan ?? Math.floor(options.window / 4);
    this.tuneWindow = options.tuneWindow ?? 10 * options.window;
    this.learnFromOlderAt = Math.ceil(this.tuneWindow / 2);
    this.relearnEvery = Math.ceil(this.tuneWindow / 2);
    this.keep = Math.max(options.window, this.tuneWindow + (options.learnHistory ?? 2 * this.tuneWindow));
  }

  protected override trimHistory(): void {
    this.history.trim(this.keep);
  }

  protected override reactToViolation(added: number): { events: TunerEvent[]; stop: boolean } {
    this.sinceWindowCheck += added;
    this.sinceDriftCheck += added;
    const violation = this.violation();
    if (violation)
      return { events: [this.tighten(violation.reason, violation.disagreement, violation.rows)], stop: true };
    if (this.held && this.sinceWindowCheck === 0) {
      // The window at risk has ended within its budget: re-tune on the history kept, where the
      // recent-window guard judges every setting on the rows that spent the budget.
      this.held = false;
      const event = this.retune('window-end');
      return { events: event ? [event] : [], stop: true };
    }
    const risk = this.held ? null : this.atRisk();
    if (risk) return { events: [this.hold(risk.disagreement, risk.rows)], stop: true };
    return { events: [], stop: false };
  }

  /** Its thresholds were tested on the tuning window. */
  protected override resumeSpan(): number {
    return this.tuneWindow;
  }

  protected override holding(): boolean {
    return this.held;
  }

  /** The realised window breaks the budget, or recent rows break it with confidence. */
  private violation(): { reason: 'violation' | 'drift'; disagreement: number; rows: number } | null {
    const { budget, confidence, window } = this.options;
    // Whole windows, one after another, as the budget is defined: judging a sliding window after
    // every batch would test the same rows dozens of times and raise false alarms.
    if (this.sinceWindowCheck >= window && this.history.length >= window) {
      this.sinceWindowCheck = 0;
      const counts = tally(this.history.recent());
      if (breaksBudget(counts, budget))
        return { reason: 'violation', disagreement: counts.k / counts.n, rows: counts.n };
    }
    if (this.driftSpan > 0 && this.sinceDriftCheck >= this.driftSpan && this.history.length >= this.driftSpan) {
      this.sinceDriftCheck = 0;
      const { k, n } = tally(this.history.last(this.driftSpan));
      if (n > 0 && k > 0 && clopperPearsonLower(k, n, confidence) > budget)
        return { reason: 'drift', disagreement: k / n, rows: n };
    }
    return null;
  }

  /**
   * The sequential check, after every batch, on the window being filled (the rows since the last
   * window check): its disagreements so far exceed what its budget leaves once the rows still to
   * come are granted the rate the guard aims for (`target`). Under the traffic the thresholds were
   * chosen on, that rate is the most the rest of the window is expected to spend, so the window is
   * at risk only when the rows so far ran well above it; the rows after a sudden change do. The
   * slack near the start of a window is large (the whole rest of the window at the target rate), so
   * the check rarely fires on noise, and late in the window it fires before the budget is gone.
   * Only while some ramp can answer: at "never" nothing more can be spent.
   */
  private atRisk(): { disagreement: number; rows: number } | null {
    const { budget, window } = this.options;
    const filled = this.sinceWindowCheck;
    if (filled === 0 || filled > this.history.length) return null;
    if (!this.anyOpen()) return null;
    const { k, n } = tally(this.history.last(filled));
    const left = budget * window - this.target() * Math.max(0, window - filled);
    return k > left + 1e-9 ? { disagreement: n > 0 ? k / n : 0, rows: n } : null;
  }

  /**
   * The window is at risk: every ramp to "never" until it ends (nothing more is spent in it), the
   * history kept (a false alarm then costs the rest of one window, not a relearning), and more
   * probes asked for meanwhile (relearn) so that the re-tune at the window's end sees the change.
   */
  private hold(disagreement: number, rows: number): TunerEvent {
    this.closeAll();
    this.held = true;
    this.relearn();
    this.stats = { ...this.stats, tightenings: this.stats.tightenings + 1 };
    return { type: 'tighten', reason: 'at-risk', disagreement, rows };
  }

  private tighten(reason: 'violation' | 'drift', disagreement: number, rows: number): TunerEvent {
    this.closeAll();
    this.tuned = false;
    this.held = false;
    this.relearn();
    this.history.clear();
    this.path = null;
    this.sinceRetune = 0;
    this.sinceWindowCheck = 0;
    this.sinceDriftCheck = 0;
    this.stats = {
      ...this.stats,
      tightenings: this.stats.tightenings + 1,
      estimatedSavings: null,
      estimatedDisagreement: null,
      upperBound: null,
    };
    return { type: 'tighten', reason, disagreement, rows };
  }

  protected override rampSetChanged(): void {
    // The path's settings are indexed by the old ramp set.
    this.path = null;
    this.usableRows = null;
  }

  protected override choose(): { choice: GuardedChoice; records: FeedbackRecord[] } | null {
    // Held after a window at risk: every ramp stays at "never" until that window ends.
    if (this.held) return null;
    if (this.options.pathTally === false) {
      // The reference: every usable row looked up and the tuning window re-decided at each re-tune.
      const tuning = this.usable(this.history.last(this.tuneWindow));
      const older = this.usable(this.history.allBut(this.tuneWindow));
      const choice =
        older.length >= this.learnFromOlderAt ? this.testOnTuningWindow(older, tuning) : this.interleaved(tuning);
      return choice ? { choice, records: tuning } : null;
    }
    const usable = this.syncUsableRows();
    const tuningFrom = this.history.observed - Math.min(this.history.length, this.tuneWindow);
    const olderRows = usable.indexOfKey(tuningFrom);
    const tuning = usable.slice(olderRows);
    const choice =
      olderRows >= this.learnFromOlderAt ? this.testTallies(usable, olderRows, tuning) : this.interleaved(tuning);
    return choice ? { choice, records: tuning } : null;
  }

  /**
   * Brings `usableRows` in step with the history: rows it no longer holds out, rows that came in
   * since the last call in when usable. The history holds the last `history.length` rows
   * observed (rows are appended, and dropped only from the front or all at once), so the oldest
   * one held is row `observed − length`.
   */
  private syncUsableRows(): KeyedRows {
    const { observed, length } = this.history;
    const first = observed - length;
    this.usableRows ??= { rows: new KeyedRows(), upTo: first };
    const { rows } = this.usableRows;
    rows.dropBefore(first);
    const from = Math.max(this.usableRows.upTo, first);
    if (observed > from)
      this.history.last(observed - from).forEach((row, k) => {
        if (this.isUsable(row.record)) rows.push(from + k, row.record);
      });
    this.usableRows.upTo = observed;
    return rows;
  }

  private target(): number {
    const { budget, confidence, window } = this.options;
    return this.options.perWindowGuard !== false ? windowSafeRate(window, budget, confidence) : budget;
  }

  /**
   * While the history is short: one row in `fitEvery` of the tuning window learns the path, the
   * others test it. Null when too few rows would test for the bound to allow any exit.
   */
  private interleaved(tuning: FeedbackRecord[]): GuardedChoice | null {
    const every = this.options.fitEvery ?? DEFAULT_FIT_EVERY;
    const tested = tuning.reduce((s, r, i) => s + (r.final && i % every !== 0 ? 1 : 0), 0);
    if (maxAllowedDisagreements(tested, this.target(), this.options.confidence) < 0) return null;
    return guardedThresholds(tuning, this.windowOptions(), interleavedSearch(this.options));
  }

  /**
   * Once enough rows precede the tuning window: those older rows learn the path and every row of
   * the tuning window tests it. Older rows are independent of the tuning window's rows, so the
   * test stays valid, and neither part has to give rows to the other: the test has the whole
   * tuning window (a tighter bound) and the path learns on up to `learnHistory` rows (a less
   * noisy path). The test rows stay newer than the rows a path was learned on however long it is
   * kept, so it is learned again only every half tuning window (`relearnEvery`): learning costs
   * far more than testing (it sorts and smooths every learning row for every ramp; a test reads
   * running tallies, `testTallies`). A tightening or a ramp change drops it.
   */
  private testOnTuningWindow(older: FeedbackRecord[], tuning: FeedbackRecord[]): GuardedChoice | null {
    const { budget, confidence, window } = this.options;
    const test = this.evaluator(tuning);
    if (maxAllowedDisagreements(test.countedRows, this.target(), confidence) < 0) return null;
    const path = this.learnedPath(() => older);
    const recentFrom = test.rows - window;
    return testPath(path.vectors, test, {
      budget,
      confidence,
      fitRows: path.rows,
      ...(this.options.perWindowGuard !== false ? { windowRows: window } : {}),
      ...(this.options.recentGuard !== false && recentFrom > 0 ? { recent: test.subset((i) => i >= recentFrom) } : {}),
    });
  }

  /**
   * `testOnTuningWindow` on the path's running tallies: rows that left the tuning window come out
   * of them, rows that joined it go in, and the test reads their totals. `usable`: the history's
   * usable rows, of which the first `olderRows` are older than the tuning window (they are
   * looked at only when the path is learned again) and the others, `tuning`, in it.
   */
  private testTallies(usable: KeyedRows, olderRows: number, tuning: FeedbackRecord[]): GuardedChoice | null {
    const { budget, confidence, window } = this.options;
    const counted = tuning.reduce((n, r) => (r.final ? n + 1 : n), 0);
    if (maxAllowedDisagreements(counted, this.target(), confidence) < 0) return null;
    const path = this.learnedPath(() => usable.slice(0, olderRows));
    path.tallies ??= {
      tuning: new PathTally(path.vectors, this.windowOptions()),
      recent: new PathTally(path.vectors, this.windowOptions()),
    };
    const { tuning: tally, recent } = path.tallies;
    // The tallies hold usable rows only, so the tuning window starts at its first usable row.
    tally.dropBefore(usable.keyAt(olderRows));
    recent.dropBefore(usable.keyAt(olderRows));
    const joined = Math.max(olderRows, usable.indexOfKey(tally.lastKey + 1));
    for (let i = joined; i < usable.length; i++) tally.add(usable.keyAt(i), usable.at(i));
    // Rows the recent window would drop at once need not go in.
    for (let i = Math.max(joined, usable.length - window); i < usable.length; i++)
      recent.add(usable.keyAt(i), usable.at(i));
    recent.keepLast(window);
    return testPathTally(tally, {
      budget,
      confidence,
      fitRows: path.rows,
      ...(this.options.perWindowGuard !== false ? { windowRows: window } : {}),
      ...(this.options.recentGuard !== false && tally.rows > window ? { recent } : {}),
    });
  }

  /**
   * The learned path, learned again on the older rows first when there is none yet or it is
   * `relearnEvery` rows old (see testOnTuningWindow).
   */
  private learnedPath(older: () => FeedbackRecord[]): NonNullable<GuardedTuner['path']> {
    if (!this.path || this.history.observed - this.path.learnedAt >= this.relearnEvery) {
      const fit = new WindowEvaluator(older(), { ...this.windowOptions(), smoothDisagreement: true });
      this.path = {
        vectors: learnPath(fit, {
          budget: this.options.budget,
          ...(this.options.quantiles !== undefined ? { quantiles: this.options.quantiles } : {}),
        }),
        learnedAt: this.history.observed,
        rows: fit.rows,
        tallies: null,
      };
    }
    return this.path;
  }
}
