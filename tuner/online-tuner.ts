/**
 * The online tuner: the stateful loop around the searches, shared by the live server and by
 * replay. Feed it feedback records as batches finish (`observe`); read the thresholds and the
 * active ramps it wants, and its latest estimates. It keeps its own state and changes nothing
 * outside itself (STYLE.md §7): the caller applies what it returns.
 *
 * Kinds:
 *  - guarded: a path of settings learned on some rows, tested in order on others (guarded.ts),
 *    on the last `tuneWindow` records (default 10 × window). While the history is short, one row
 *    in three of the tuning window learns and the rest test (`guardedThresholds`); once half a
 *    tuning window of older rows exists, those (up to `learnHistory`) learn and the whole tuning
 *    window tests (`testOnTuningWindow`). The bound is held below the window-safe rate (see
 *    `perWindowGuard`), and the budget also kept on the most recent window's rows
 *    (`recentGuard`: a long tuning window must not hide a change in traffic);
 *  - apparate: Apparate's hill-climb on the last `apparateWindowBatches` batches (4 in Apparate);
 *  - static: thresholds never change (the ones it was given; "never" if none).
 *
 * Triggers:
 *  - periodic: every `retuneEvery` records (default window / 4);
 *  - a violation. Guarded: the realised disagreement (rows as they were actually answered, from
 *    their `exit`) of a completed window of `window` rows exceeds the budget (judged once per
 *    window, not sliding: every check on overlapping rows is another chance of a false alarm,
 *    and each false alarm costs a window of savings), or — sooner, for sharp shifts — the lower
 *    Clopper–Pearson bound over each run of `driftSpan` rows is above the budget (the budget is
 *    being broken with confidence 1 − δ, not just noisily). Apparate: the realised
 *    disagreement of its window exceeds the budget, and it simply re-tunes on that window;
 *  - after any ramp change. Ramp-set checks (every `checkEveryBatches` batches, when enabled,
 *    once thresholds have been tuned): a ramp whose utility stays ≤ 0 for `dropAfterChecks`
 *    checks is dropped, one new position may be tried (on probation for a window), all through
 *    `rampSetDecision`.
 *
 * What a guarded violation does: every threshold goes to "never" at once and the history is
 * cleared; re-tuning resumes on fresh rows only. We chose "never" over "the strictest setting
 * that was safe on the recent window" because a violation means the recent window no longer
 * describes the traffic: any setting fitted on it (even its strictest safe one) was fitted on the
 * rows that just misled us, and we cannot tell where the change began. "Never" cannot disagree.
 * The statistical guard then keeps thresholds at "never" until enough fresh rows exist for the
 * bound to allow an exit (≈ 480 test rows, so ≈ 1,000 rows, for a 1 % budget per 1,000 rows at
 * 95 %): savings return after about a window, and grow as the tuning window refills.
 *
 * Re-tunes use only records that carry a reading of every active ramp: a ramp added later has no
 * readings in older rows, and exits judged without it would be guessed. Until there are enough
 * such rows for the bound to allow anything, a guarded re-tune keeps the current thresholds
 * (the new ramp stays at "never").
 */
import { apparateThresholds } from './apparate.js';
import { clopperPearsonLower, maxAllowedDisagreements, windowSafeRate } from './clopper-pearson.js';
import type { ExitRule } from './exit-policy.js';
import type { FeedbackRecord } from './feedback-record.js';
import { guardedThresholds, hindsightOptimal, learnPath, testPath, type GuardedChoice, type ThresholdChoice } from './guarded.js';
import type { LatencyProfileData } from './latency-model.js';
import { rampSetDecision, rampUtilities, type RampSetDecision, type RampUtility } from './ramp-utility.js';
import { WindowEvaluator, type Thresholds, type WindowEvalOptions } from './window-eval.js';

/** Guarded: one row in three learns the path, two test it (see OnlineTunerOptions.fitEvery). */
const DEFAULT_FIT_EVERY = 3;

export type TunerKind = 'guarded' | 'apparate' | 'static';

export interface RampSetOptions {
  /** Every position with a trained head, in model order. */
  availableRamps: readonly number[];
  maxRamps: number;
  /** Largest total head cost as a share of full-model latency. */
  rampBudget: number;
  /** Batches between ramp-set checks (Apparate: 30 for CV, 100 for NLP). */
  checkEveryBatches: number;
  /** Consecutive checks a ramp's utility must stay ≤ 0 before it is dropped (default 2). */
  dropAfterChecks?: number;
}

export interface OnlineTunerOptions {
  kind: TunerKind;
  rule: ExitRule;
  profile: LatencyProfileData;
  /** Batch size at which latencies are read from the profile (default 1). */
  latencyBatchSize?: number;
  /** Largest allowed disagreement with the full model over `window` rows. */
  budget: number;
  /** 1 − δ for the guarded tuner's bounds. */
  confidence: number;
  /** Rows per measurement window: the budget is judged over this many rows. */
  window: number;
  /**
   * Rows the guarded tuner learns and tests on: the last this many since the start or the last
   * tightening (default 10 × window). Long, because the bound tightens with rows (replay of the
   * bundled model's stationary trace, ramps 0, 3, 5: 31.7 % saved with 10 × window, 28.8 % with
   * 4 × window, both with every window within budget); drift is caught by the violation and
   * recent-window checks instead.
   */
  tuneWindow?: number;
  /**
   * Guarded: one row in this many learns, the others test (default 3). The learned path needs
   * fewer rows than the test does: on the same trace a third learning saved 36.7 %, halves
   * 31.7 %, a quarter 34.1 %.
   */
  fitEvery?: number;
  /**
   * Guarded: rows kept before the tuning window to learn the path from (default 2 × tuneWindow).
   * Once at least half a tuning window of them exist, they learn and the whole tuning window
   * tests (see `testOnTuningWindow`); before that, a share of the tuning window learns.
   */
  learnHistory?: number;
  /** Guarded: candidate thresholds per ramp on the learned path (default `pathQuantiles`). */
  quantiles?: number;
  /**
   * Guarded: bound the rate at `windowSafeRate(window, budget, confidence)` — the rate at which a
   * window keeps the budget with that confidence — rather than at the budget itself (default
   * true; false: the plain "upper bound ≤ budget" guard).
   */
  perWindowGuard?: boolean;
  /**
   * Guarded: a setting must also keep the budget on the last `window` rows of the tuning window
   * (default true; see GuardedOptions.recentRows).
   */
  recentGuard?: boolean;
  /** Ramps active at the start, in model order. */
  activeRamps: readonly number[];
  /** Starting thresholds (default: all "never"); the static kind keeps them. */
  thresholds?: Thresholds;
  /** Records between periodic re-tunes (default window / 4: exits open sooner after a start or a tightening). */
  retuneEvery?: number;
  /** Rows the fast drift check looks at (default window / 4; 0 turns it off). Guarded only. */
  driftSpan?: number;
  /** Apparate's tuning window in batches (default 4). */
  apparateWindowBatches?: number;
  /** Compute the hindsight-optimal savings (at a re-tune, at most once per window), for the estimates (default true). */
  hindsight?: boolean;
  /** Ramp-set changes (drop useless ramps, try new ones); absent: the ramp set is fixed. */
  rampSet?: RampSetOptions;
}

export type TunerEvent =
  | { type: 'retune'; reason: 'periodic' | 'violation' | 'ramp-change'; thresholds: Map<number, number | null>; estimatedSavings: number }
  | { type: 'tighten'; reason: 'violation' | 'drift'; disagreement: number; rows: number }
  | { type: 'ramps'; dropped: number[]; added: number | null; reasons: string[] };

export interface TunerEstimates {
  /** Rows in the realised window (at most `window`; cleared by a tightening). */
  windowRows: number;
  /** Realised disagreement over those rows (rows as actually answered); null if none counted. */
  windowDisagreement: number | null;
  /** From the last re-tune: rows it used, and the chosen setting's disagreement, bound and savings there. */
  tuningRows: number;
  estimatedDisagreement: number | null;
  upperBound: number | null;
  estimatedSavings: number | null;
  /** Hindsight-optimal savings on the last re-tune's window (null when not computed). */
  hindsightSavings: number | null;
  retunes: number;
  tightenings: number;
  rampChanges: number;
  /** Ramp utilities from the last ramp-set check, at the window's hindsight-optimal thresholds. */
  lastUtilities: RampUtility[];
}

interface LiveRow {
  record: FeedbackRecord;
  /** 1: answered differently from the full model; 0: the same; −1: final answer unknown. */
  disagrees: number;
  batch: number;
}

/** Disagreeing rows (k) among rows whose final answer is known (n). */
function tally(rows: readonly LiveRow[]): { k: number; n: number } {
  let k = 0;
  let n = 0;
  for (const r of rows) {
    if (r.disagrees < 0) continue;
    n++;
    k += r.disagrees;
  }
  return { k, n };
}

/** Whether a row, as it was actually answered (its `exit`), disagrees with its final answer. */
export function realisedDisagreement(record: FeedbackRecord): number {
  if (!record.final) return -1;
  if (record.exit < 0) return 0;
  const reading = record.ramps.find((r) => r.id === record.exit);
  if (!reading) return -1;
  return reading.argmax === record.final.argmax ? 0 : 1;
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
  };
}

export class OnlineTuner {
  readonly kind: TunerKind;
  private readonly options: OnlineTunerOptions;
  private readonly retuneEvery: number;
  private readonly driftSpan: number;
  private readonly apparateBatches: number;
  private readonly tuneWindow: number;
  /** Rows of history kept: enough for the realised window and the tuning window. */
  private readonly keep: number;
  private active: number[];
  private current: Map<number, number | null>;
  private history: LiveRow[] = [];
  private batches = 0;
  private observed = 0;
  private sinceRetune = 0;
  /** `observed` when the hindsight optimum was last computed. */
  private hindsightAt = Number.NEGATIVE_INFINITY;
  /** Rows since the realised window was last judged (it is judged once per `window` rows). */
  private sinceWindowCheck = 0;
  /** Rows since the drift check last looked (it looks at each `driftSpan` rows once). */
  private sinceDriftCheck = 0;
  private batchesSinceRampCheck = 0;
  /** Whether a re-tune has set thresholds since the start or the last tightening: ramps are judged only then. */
  private tuned = false;
  private readonly dropStreak = new Map<number, number>();
  /** Ramp id → `observed` count when it was added (it is judged only after a full window). */
  private readonly addedAt = new Map<number, number>();
  /** Ramp id → batch index when it was dropped (not proposed again for a while). */
  private readonly droppedAt = new Map<number, number>();
  private stats: TunerEstimates = noEstimates();
  /** Rows before the tuning window needed before they, not a part of the window, learn the path. */
  private readonly learnFromOlderAt: number;
  /** Rows between learning the path again on older rows (half a tuning window). */
  private readonly relearnEvery: number;
  /** The guarded path learned on older rows (testOnTuningWindow), with `observed` when learned. */
  private path: { vectors: Float64Array[]; learnedAt: number; rows: number } | null = null;

  constructor(options: OnlineTunerOptions) {
    if (!(options.budget > 0 && options.budget < 1)) throw new RangeError(`budget must be in (0, 1), got ${options.budget}`);
    if (!(options.confidence > 0 && options.confidence < 1)) throw new RangeError(`confidence must be in (0, 1), got ${options.confidence}`);
    if (!Number.isInteger(options.window) || options.window < 1) throw new RangeError(`window must be a positive integer, got ${options.window}`);
    this.kind = options.kind;
    this.options = options;
    this.retuneEvery = Math.max(1, options.retuneEvery ?? Math.floor(options.window / 4));
    this.driftSpan = options.driftSpan ?? Math.floor(options.window / 4);
    this.apparateBatches = options.apparateWindowBatches ?? 4;
    this.tuneWindow = options.tuneWindow ?? 10 * options.window;
    this.learnFromOlderAt = Math.ceil(this.tuneWindow / 2);
    this.relearnEvery = Math.ceil(this.tuneWindow / 2);
    this.keep = Math.max(options.window, this.tuneWindow + (options.learnHistory ?? 2 * this.tuneWindow));
    this.active = [...options.activeRamps].sort((a, b) => a - b);
    this.current = new Map(this.active.map((id) => [id, options.thresholds?.get(id) ?? null]));
  }

  /** Thresholds in force, per active ramp (null = never). */
  get thresholds(): ReadonlyMap<number, number | null> {
    return this.current;
  }

  /** Active ramps, in model order. */
  get activeRamps(): readonly number[] {
    return this.active;
  }

  get estimates(): TunerEstimates {
    const recent = this.recent();
    const counted = recent.filter((r) => r.disagrees >= 0);
    const disagreements = counted.reduce((s, r) => s + r.disagrees, 0);
    return {
      ...this.stats,
      windowRows: recent.length,
      windowDisagreement: counted.length > 0 ? disagreements / counted.length : null,
    };
  }

  /** Takes one finished batch's feedback; returns what the tuner changed, in order. */
  observe(records: readonly FeedbackRecord[]): TunerEvent[] {
    if (records.length === 0) return [];
    const batch = this.batches++;
    for (const record of records) this.history.push({ record, disagrees: realisedDisagreement(record), batch });
    this.trimHistory();
    this.observed += records.length;
    this.sinceRetune += records.length;
    this.sinceWindowCheck += records.length;
    this.sinceDriftCheck += records.length;
    this.batchesSinceRampCheck++;
    const events: TunerEvent[] = [];
    if (this.kind === 'static') return events;

    if (this.kind === 'guarded') {
      const violation = this.guardedViolation();
      if (violation) {
        events.push(this.tighten(violation.reason, violation.disagreement, violation.rows));
        return events;
      }
    } else if (this.apparateViolated()) {
      const event = this.retune('violation');
      if (event) events.push(event);
    }

    const ramps = this.options.rampSet;
    // A ramp at "never" because the tuner has not had enough rows yet is not a useless ramp.
    if (ramps && this.tuned && this.batchesSinceRampCheck >= ramps.checkEveryBatches) {
      this.batchesSinceRampCheck = 0;
      const change = this.checkRamps(ramps);
      if (change) {
        events.push(change);
        const event = this.retune('ramp-change');
        if (event) events.push(event);
      }
    }
    if (this.sinceRetune >= this.retuneEvery) {
      const event = this.retune('periodic');
      if (event) events.push(event);
    }
    return events;
  }

  /** Guarded: the realised window breaks the budget, or recent rows break it with confidence. */
  private guardedViolation(): { reason: 'violation' | 'drift'; disagreement: number; rows: number } | null {
    const { budget, confidence, window } = this.options;
    // Whole windows, one after another, as the budget is defined: judging a sliding window after
    // every batch would test the same rows dozens of times and raise false alarms.
    if (this.sinceWindowCheck >= window && this.history.length >= window) {
      this.sinceWindowCheck = 0;
      const { k, n } = tally(this.recent());
      if (n > 0 && k > budget * n + 1e-9) return { reason: 'violation', disagreement: k / n, rows: n };
    }
    if (this.driftSpan > 0 && this.sinceDriftCheck >= this.driftSpan && this.history.length >= this.driftSpan) {
      this.sinceDriftCheck = 0;
      const { k, n } = tally(this.history.slice(-this.driftSpan));
      if (n > 0 && k > 0 && clopperPearsonLower(k, n, confidence) > budget) return { reason: 'drift', disagreement: k / n, rows: n };
    }
    return null;
  }

  /** Apparate: the rows of its window, as answered, disagree more than the budget allows. */
  private apparateViolated(): boolean {
    const { k, n } = tally(this.apparateRows());
    return n > 0 && k > this.options.budget * n + 1e-9;
  }

  /** Keeps what the windows need: `keep` rows, and for apparate also its last batches. */
  private trimHistory(): void {
    let excess = this.history.length - this.keep;
    if (this.kind === 'apparate') {
      const first = this.batches - this.apparateBatches;
      let inWindow = 0;
      while (inWindow < this.history.length && (this.history[inWindow] as LiveRow).batch < first) inWindow++;
      excess = Math.min(excess, inWindow);
    }
    if (excess > 0) this.history.splice(0, excess);
  }

  /** The realised window: the last `window` rows. */
  private recent(): LiveRow[] {
    return this.history.length > this.options.window ? this.history.slice(-this.options.window) : this.history;
  }

  private apparateRows(): LiveRow[] {
    const first = this.batches - this.apparateBatches;
    let i = this.history.length;
    while (i > 0 && (this.history[i - 1] as LiveRow).batch >= first) i--;
    return this.history.slice(i);
  }

  private tighten(reason: 'violation' | 'drift', disagreement: number, rows: number): TunerEvent {
    for (const id of this.active) this.current.set(id, null);
    this.tuned = false;
    this.history = [];
    this.path = null;
    this.sinceRetune = 0;
    this.sinceWindowCheck = 0;
    this.sinceDriftCheck = 0;
    this.stats = { ...this.stats, tightenings: this.stats.tightenings + 1, estimatedSavings: null, estimatedDisagreement: null, upperBound: null };
    return { type: 'tighten', reason, disagreement, rows };
  }

  /** Records that carry a reading of every active ramp. */
  private usable(rows: LiveRow[]): FeedbackRecord[] {
    const out: FeedbackRecord[] = [];
    for (const { record } of rows) {
      let all = true;
      for (const id of this.active) {
        if (!record.ramps.some((r) => r.id === id)) {
          all = false;
          break;
        }
      }
      if (all) out.push(record);
    }
    return out;
  }

  private windowOptions(): WindowEvalOptions {
    return { activeRamps: this.active, rule: this.options.rule, profile: this.options.profile, batchSize: this.options.latencyBatchSize ?? 1 };
  }

  private evaluator(records: FeedbackRecord[]): WindowEvaluator {
    return new WindowEvaluator(records, this.windowOptions());
  }

  private target(): number {
    const { budget, confidence, window } = this.options;
    return this.options.perWindowGuard !== false ? windowSafeRate(window, budget, confidence) : budget;
  }

  /**
   * Guarded, while the history is short: one row in `fitEvery` of the tuning window learns the
   * path, the others test it. Null when too few rows would test for the bound to allow any exit.
   */
  private interleaved(tuning: FeedbackRecord[]): GuardedChoice | null {
    const every = this.options.fitEvery ?? DEFAULT_FIT_EVERY;
    const tested = tuning.reduce((s, r, i) => s + (r.final && i % every !== 0 ? 1 : 0), 0);
    if (maxAllowedDisagreements(tested, this.target(), this.options.confidence) < 0) return null;
    return guardedThresholds(tuning, this.windowOptions(), {
      budget: this.options.budget,
      confidence: this.options.confidence,
      fitEvery: every,
      ...(this.options.quantiles !== undefined ? { quantiles: this.options.quantiles } : {}),
      ...(this.options.perWindowGuard !== false ? { windowRows: this.options.window } : {}),
      ...(this.options.recentGuard !== false ? { recentRows: this.options.window } : {}),
    });
  }

  /**
   * Guarded, once enough rows precede the tuning window: those older rows learn the path and
   * every row of the tuning window tests it. Older rows are independent of the tuning window's
   * rows, so the test stays valid, and neither part has to give rows to the other: the test has
   * the whole tuning window (a tighter bound) and the path learns on up to `learnHistory` rows
   * (a less noisy path). The test rows stay newer than the rows a path was learned on however
   * long it is kept, so it is learned again only every half tuning window (`relearnEvery`):
   * learning costs far more than testing (3 ramps, 20,000 rows, 128 candidates: 0.4–0.7 s; a
   * test on 10,000 rows ~40 ms). A tightening or a ramp change drops it.
   */
  private testOnTuningWindow(older: FeedbackRecord[], tuning: FeedbackRecord[]): GuardedChoice | null {
    const { budget, confidence, window } = this.options;
    const test = this.evaluator(tuning);
    if (maxAllowedDisagreements(test.countedRows, this.target(), confidence) < 0) return null;
    if (!this.path || this.observed - this.path.learnedAt >= this.relearnEvery) {
      const fit = new WindowEvaluator(older, { ...this.windowOptions(), smoothDisagreement: true });
      this.path = { vectors: learnPath(fit, { budget, ...(this.options.quantiles !== undefined ? { quantiles: this.options.quantiles } : {}) }), learnedAt: this.observed, rows: fit.rows };
    }
    const recentFrom = test.rows - window;
    return testPath(this.path.vectors, test, {
      budget,
      confidence,
      fitRows: this.path.rows,
      ...(this.options.perWindowGuard !== false ? { windowRows: window } : {}),
      ...(this.options.recentGuard !== false && recentFrom > 0 ? { recent: test.subset((i) => i >= recentFrom) } : {}),
    });
  }

  private retune(reason: 'periodic' | 'violation' | 'ramp-change'): TunerEvent | null {
    this.sinceRetune = 0;
    if (this.active.length === 0) return null;
    const { budget, confidence } = this.options;
    let choice: ThresholdChoice;
    let records: FeedbackRecord[];
    if (this.kind === 'guarded') {
      const tuning = this.usable(this.history.slice(-this.tuneWindow));
      const older = this.usable(this.history.slice(0, Math.max(0, this.history.length - this.tuneWindow)));
      const guarded = older.length >= this.learnFromOlderAt ? this.testOnTuningWindow(older, tuning) : this.interleaved(tuning);
      if (!guarded) return null;
      choice = guarded;
      records = tuning;
    } else {
      records = this.usable(this.apparateRows());
      if (records.length === 0) return null;
      choice = apparateThresholds(this.evaluator(records), { budget, policy: this.options.rule.policy, confidence });
    }
    this.current = new Map(this.active.map((id) => [id, choice.thresholds.get(id) ?? null]));
    this.tuned = true;
    // The hindsight optimum is for reporting only and costs as much as the re-tune itself: once a window.
    let hindsightSavings = this.stats.hindsightSavings;
    if (this.options.hindsight !== false && this.observed - this.hindsightAt >= this.options.window) {
      const windowRecords = this.usable(this.recent());
      if (windowRecords.length > 0) {
        const ev = this.evaluator(windowRecords);
        hindsightSavings = hindsightOptimal(ev, { budget, confidence, seeds: [ev.toVector(this.current)] }).savings;
        this.hindsightAt = this.observed;
      }
    }
    this.stats = {
      ...this.stats,
      tuningRows: records.length,
      estimatedDisagreement: choice.disagreementRate,
      upperBound: choice.upperBound,
      estimatedSavings: choice.savings,
      hindsightSavings,
      retunes: this.stats.retunes + 1,
    };
    return { type: 'retune', reason, thresholds: new Map(this.current), estimatedSavings: choice.savings };
  }

  /** Ramp-set check: drop ramps whose utility stayed ≤ 0, maybe try one new position. */
  private checkRamps(options: RampSetOptions): TunerEvent | null {
    const records = this.usable(this.recent());
    if (records.length === 0) return null;
    const batchSize = this.options.latencyBatchSize ?? 1;
    // Judged at the thresholds the window could bear (hindsight-optimal), not at the ones in
    // force: right after a start or a tightening the guard keeps good ramps at "never" for lack
    // of rows, and a ramp should not be dropped for the guard's caution. A head that never
    // agrees is still worth nothing at any threshold.
    const ev = this.evaluator(records);
    const potential = hindsightOptimal(ev, { budget: this.options.budget, confidence: this.options.confidence, seeds: [ev.toVector(this.current)] });
    const utilities = rampUtilities(records, { activeRamps: this.active, thresholds: potential.thresholds, rule: this.options.rule, profile: this.options.profile, batchSize });
    this.stats = { ...this.stats, lastUtilities: utilities };
    const probation = this.active.filter((id) => this.observed - (this.addedAt.get(id) ?? Number.NEGATIVE_INFINITY) < this.options.window);
    for (const u of utilities) this.dropStreak.set(u.rampId, u.utilityMs <= 0 ? (this.dropStreak.get(u.rampId) ?? 0) + 1 : 0);
    const needed = options.dropAfterChecks ?? 2;
    const protect = this.active.filter((id) => probation.includes(id) || (this.dropStreak.get(id) ?? 0) < needed);
    const cooldown = 3 * options.checkEveryBatches;
    const exclude = [...this.droppedAt].filter(([, at]) => this.batches - at < cooldown).map(([id]) => id);
    const decision: RampSetDecision = rampSetDecision({
      utilities,
      activeRamps: this.active,
      availableRamps: options.availableRamps,
      profile: this.options.profile,
      batchSize,
      maxRamps: options.maxRamps,
      rampBudget: options.rampBudget,
      exclude,
      protect,
    });
    // One experiment at a time: no new ramp while another is still on probation.
    const add = probation.length > 0 ? null : decision.add;
    if (decision.drop.length === 0 && add === null) return null;
    for (const id of decision.drop) {
      this.current.delete(id);
      this.dropStreak.delete(id);
      this.addedAt.delete(id);
      this.droppedAt.set(id, this.batches);
    }
    this.active = this.active.filter((id) => !decision.drop.includes(id));
    if (add !== null) {
      this.active = [...this.active, add].sort((a, b) => a - b);
      this.current.set(add, null);
      this.addedAt.set(add, this.observed);
    }
    // The path's settings are indexed by the old ramp set.
    this.path = null;
    this.stats = { ...this.stats, rampChanges: this.stats.rampChanges + 1 };
    return { type: 'ramps', dropped: decision.drop, added: add, reasons: decision.reasons.filter((r) => add !== null || !r.startsWith('try')) };
  }
}
