/**
 * The loop the online tuners (guarded, apparate) share: feed it feedback records as batches
 * finish; it re-tunes, checks the ramp set, and keeps its estimates. What differs per kind — the
 * check of fresh rows against the budget and what a violation does, which rows it keeps and how
 * it picks thresholds — is left to the subclass (guarded-tuner.ts, apparate-tuner.ts).
 *
 * Triggers, in this order on every batch:
 *  - the kind's violation check (`reactToViolation`); a guarded tightening ends the batch's
 *    handling there;
 *  - a ramp-set check, every `checkEveryBatches` batches when enabled, once thresholds have been
 *    tuned: a ramp whose utility stays ≤ 0 for `dropAfterChecks` checks is dropped, one new
 *    position may be tried (on probation for a window), all through `rampSetDecision`; a change
 *    is followed by a re-tune;
 *  - periodic: every `retuneEvery` records (default window / 4).
 *
 * Re-tunes use only records that carry a reading of every active ramp: a ramp added later has no
 * readings in older rows, and exits judged without it would be guessed.
 *
 * Across a restart (`resume`, `resumePoint`): a tuner started from a saved state takes its active
 * ramps and thresholds as its own choice and the saved rows as one batch of history, so the
 * triggers above run on from there; it counts no violation in those rows (they were judged before
 * the restart), only in the rows that follow.
 *
 * Learning or settled (`estimates.learning`): a tuner learns from its start, a tightening or a
 * ramp-set change (`relearn`) until a re-tune has chosen thresholds (`tuned`) and `settleRows`
 * rows have come in since. A live server feeds a learning tuner a larger share of probes.
 *
 * Idle (`feedbackDemand`): every half window the tuner asks whether any setting of its active
 * ramps would save a worthwhile share (`IDLE_BELOW`) on the latest window of rows, in hindsight:
 * the best setting that window could bear at the rate a window keeps the budget with confidence
 * (`windowSafeRate`) — optimistic, as it fits the window it is judged on, which is the point: when
 * even that saves next to nothing, no tuner could make these heads pay. (At the budget itself the
 * search would spend it on exits of any kind: heads that never agree would "save" the budget's
 * share of rows.) Then the tuner asks for the settled probe share even while it learns, so that a
 * live server runs heads on few rows (with every ramp at "never" only probes reach the heads),
 * until a later window shows a setting that pays again. Idle, it also holds every ramp at "never"
 * (a `retune` event with reason `idle` when that closes any): then no row can exit, and a live
 * server runs the heads on the probes only (`isDormant`), so the model costs what vanilla serving
 * does plus the probes' heads; no setting of its active ramps saves 1 % there anyway.
 */
import { windowSafeRate } from './clopper-pearson.js';
import { carriesReadings, type FeedbackRecord } from './feedback-record.js';
import { checkTunerOptions, FeedbackHistory, noEstimates, type HistoryRow } from './feedback-history.js';
import { hindsightOptimal, quickHindsightSavings } from './hindsight.js';
import { rampSetDecision, rampUtilities, type RampSetDecision } from './ramp-utility.js';
import type { ThresholdChoice } from './threshold-choice.js';
import type {
  FeedbackDemand,
  OnlineTunerKind,
  OnlineTunerOptions,
  RampSetOptions,
  Tuner,
  TunerEstimates,
  TunerEvent,
  TunerResumePoint,
} from './tuner.js';
import { WindowEvaluator, type WindowEvalOptions } from './window-eval.js';

export type RetuneReason = Extract<TunerEvent, { type: 'retune' }>['reason'];

/**
 * Below this share of the full model's latency saved, in hindsight on the latest window, the
 * ramps do not pay for learning them at the higher probe share (see the file comment).
 */
export const IDLE_BELOW = 0.01;

export abstract class OnlineTuner<O extends OnlineTunerOptions = OnlineTunerOptions> implements Tuner {
  readonly kind: OnlineTunerKind;
  protected readonly options: O;
  protected readonly history: FeedbackHistory;
  private readonly retuneEvery: number;
  private readonly settleRows: number;
  /** `history.observed` at the start, the last tightening or the last ramp-set change. */
  private learningFrom = 0;
  private active: number[];
  private current: Map<number, number | null>;
  protected sinceRetune = 0;
  /** `history.observed` when the hindsight optimum was last computed. */
  private hindsightAt = Number.NEGATIVE_INFINITY;
  private batchesSinceRampCheck = 0;
  /** Rows since the last ramp-set check: it also waits for a quarter window of new rows. */
  private rowsSinceRampCheck = 0;
  /** Whether a re-tune has set thresholds since the start or the last tightening: ramps are judged only then. */
  protected tuned = false;
  private readonly dropStreak = new Map<number, number>();
  /** Ramp id → `history.observed` when it was added (it is judged only after a full window). */
  private readonly addedAt = new Map<number, number>();
  /** Ramp id → batch index when it was dropped (not proposed again for a while). */
  private readonly droppedAt = new Map<number, number>();
  /** Ramps that can no longer run (withdrawRamp): never active again. */
  private readonly withdrawn = new Set<number>();
  protected stats: TunerEstimates = noEstimates();
  /** The latest window showed no setting that saves anything (see the file comment). */
  private idle = false;
  /**
   * Whether this kind goes idle (see the file comment): offramp's guarded tuner does; Apparate,
   * kept as the published baseline, does not.
   */
  protected readonly goesIdle: boolean = true;
  /** Rows since the idle check last looked. */
  private sinceIdleCheck = 0;

  constructor(options: O) {
    checkTunerOptions(options);
    this.kind = options.kind;
    this.options = options;
    this.history = new FeedbackHistory(options.window);
    this.retuneEvery = Math.max(1, options.retuneEvery ?? Math.floor(options.window / 4));
    this.settleRows = Math.max(0, options.settleRows ?? 3 * options.window);
    // A resumed tuner starts where the saved one stood: its ramps, its thresholds (its own
    // choice, so ramp-set checks may run at once) and its rows, as one batch of history.
    const start = options.resume;
    const thresholds = start ? start.thresholds : options.thresholds;
    this.active = [...(start?.activeRamps ?? options.activeRamps)].sort((a, b) => a - b);
    this.current = new Map(this.active.map((id) => [id, thresholds?.get(id) ?? null]));
    if (start && start.records.length > 0) {
      this.history.add(start.records);
      this.tuned = true;
    }
  }

  get thresholds(): ReadonlyMap<number, number | null> {
    return this.current;
  }

  get activeRamps(): readonly number[] {
    return this.active;
  }

  get learning(): boolean {
    return !this.tuned || this.history.observed - this.learningFrom < this.settleRows;
  }

  get feedbackDemand(): FeedbackDemand {
    if (this.idle) return 'idle';
    return this.learning || this.holding() ? 'learning' : 'settled';
  }

  get estimates(): TunerEstimates {
    return {
      ...this.stats,
      ...this.history.windowFigures(),
      learning: this.learning,
      feedbackDemand: this.feedbackDemand,
    };
  }

  /** The kind holds every ramp at "never" for now and wants rows fast (guarded: after a window at risk). */
  protected holding(): boolean {
    return false;
  }

  /** What the tuner learned no longer holds (a tightening, a ramp-set change): it learns again. */
  protected relearn(): void {
    this.learningFrom = this.history.observed;
  }

  observe(records: readonly FeedbackRecord[]): TunerEvent[] {
    if (records.length === 0) return [];
    this.history.add(records);
    this.trimHistory();
    this.sinceRetune += records.length;
    this.sinceIdleCheck += records.length;
    this.batchesSinceRampCheck++;
    this.rowsSinceRampCheck += records.length;
    const reaction = this.reactToViolation(records.length);
    const events: TunerEvent[] = [...reaction.events];
    if (this.goesIdle && this.sinceIdleCheck >= this.options.window / 2 && this.checkIdle()) {
      // Idle: every ramp to "never", so that only probes pay for the heads (a dormant batch).
      if (this.anyOpen()) {
        this.closeAll();
        events.push({ type: 'retune', reason: 'idle', thresholds: new Map(this.current), estimatedSavings: 0 });
      }
      return events;
    }
    if (reaction.stop) return events;

    const ramps = this.options.rampSet;
    // A ramp at "never" because the tuner has not had enough rows yet is not a useless ramp; and
    // while idle no ramp pays, so changing them would only churn.
    // Every `checkEveryBatches` batches, as Apparate counts — but not before a quarter window of
    // new rows: in drop mode a batch feeds back only its probes, and utilities judged again on
    // nearly the same window would cost a search each for nothing new.
    if (
      ramps &&
      this.tuned &&
      !this.idle &&
      this.batchesSinceRampCheck >= ramps.checkEveryBatches &&
      this.rowsSinceRampCheck >= this.options.window / 4
    ) {
      this.batchesSinceRampCheck = 0;
      this.rowsSinceRampCheck = 0;
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

  /**
   * Re-judges idleness (see the file comment) on the latest window's rows, at least half a window
   * of them (fewer decide nothing); returns whether the tuner is idle.
   */
  private checkIdle(): boolean {
    this.sinceIdleCheck = 0;
    const records = this.usable(this.history.recent());
    if (this.active.length === 0 || records.length < this.options.window / 2) {
      this.idle = this.active.length === 0;
      return this.idle;
    }
    const { budget, confidence, window } = this.options;
    const ev = this.evaluator(records);
    // The thresholds in force already save enough here: not idle, and no search needed.
    if (ev.evaluate(ev.toVector(this.current)).savings >= IDLE_BELOW) {
      this.idle = false;
      return false;
    }
    const rate = windowSafeRate(window, budget, confidence);
    this.idle = quickHindsightSavings(ev, rate, [ev.toVector(this.current)]) < IDLE_BELOW;
    return this.idle;
  }

  withdrawRamp(id: number): TunerEvent[] {
    if (this.withdrawn.has(id)) return [];
    this.withdrawn.add(id);
    if (!this.active.includes(id)) return [];
    this.active = this.active.filter((x) => x !== id);
    this.current.delete(id);
    this.dropStreak.delete(id);
    this.addedAt.delete(id);
    // As after any ramp-set change: state indexed by the old set goes, and the tuner re-learns.
    // Older rows stay usable (they carry every remaining ramp's reading), so it re-tunes at once.
    this.rampSetChanged();
    this.relearn();
    this.stats = { ...this.stats, rampChanges: this.stats.rampChanges + 1 };
    const events: TunerEvent[] = [
      { type: 'ramps', dropped: [id], added: null, reasons: [`ramp ${id} withdrawn: it can no longer run`] },
    ];
    const event = this.retune('ramp-change');
    if (event) events.push(event);
    return events;
  }

  resumePoint(maxRows: number): TunerResumePoint {
    // The rows the thresholds in force can be judged on: with a reading of every ramp they let
    // answer. Not necessarily of the others: a ramp just added (at "never") has no reading in
    // older rows, and the thresholds were tested on those. Under patience every reading counts
    // (a row's streak runs through every ramp).
    const judged =
      this.options.rule.policy === 'patience' ? this.active : this.active.filter((id) => this.current.get(id) !== null);
    // Newest first until `maxRows` rows, then back to oldest first.
    const rows = this.history.last(Math.max(1, this.resumeSpan()));
    const records: FeedbackRecord[] = [];
    for (let i = rows.length - 1; i >= 0 && records.length < maxRows; i--) {
      const { record } = rows[i] as HistoryRow;
      if (carriesReadings(record, judged)) records.push(record);
    }
    return { activeRamps: [...this.active], thresholds: new Map(this.current), records: records.reverse() };
  }

  /** Rows (the newest) this kind tunes its thresholds on, for `resumePoint`: by default all it keeps. */
  protected resumeSpan(): number {
    return this.history.length;
  }

  /** Drops the rows this kind no longer needs (it must keep at least the realised window). */
  protected abstract trimHistory(): void;

  /**
   * This kind's check of the history, just after `added` rows came in, against the budget, and
   * its response. `stop`: nothing else runs on this batch (a tightening).
   */
  protected abstract reactToViolation(added: number): { events: TunerEvent[]; stop: boolean };

  /** Thresholds for the active ramps and the records they were chosen on; null keeps the current ones. */
  protected abstract choose(): { choice: ThresholdChoice; records: FeedbackRecord[] } | null;

  /** Called after the ramp set changed: state indexed by the old ramp set must go. */
  protected rampSetChanged(): void {}

  /** Whether some active ramp can answer (a threshold other than "never"). */
  protected anyOpen(): boolean {
    for (const t of this.current.values()) if (t !== null) return true;
    return false;
  }

  /** Every threshold to "never" (a tightening). */
  protected closeAll(): void {
    for (const id of this.active) this.current.set(id, null);
  }

  /** Records that carry a reading of every active ramp. */
  protected usable(rows: readonly HistoryRow[]): FeedbackRecord[] {
    const out: FeedbackRecord[] = [];
    for (const { record } of rows) if (this.isUsable(record)) out.push(record);
    return out;
  }

  /** Whether a record carries a reading of every active ramp. */
  protected isUsable(record: FeedbackRecord): boolean {
    return carriesReadings(record, this.active);
  }

  protected windowOptions(): WindowEvalOptions {
    return {
      activeRamps: this.active,
      rule: this.options.rule,
      profile: this.options.profile,
      batchSize: this.options.latencyBatchSize ?? 1,
    };
  }

  protected evaluator(records: FeedbackRecord[]): WindowEvaluator {
    return new WindowEvaluator(records, this.windowOptions());
  }

  protected retune(reason: RetuneReason): TunerEvent | null {
    this.sinceRetune = 0;
    // Idle: every ramp stays at "never" until a window shows a setting that pays.
    if (this.active.length === 0 || this.idle) return null;
    const { budget, confidence } = this.options;
    const chosen = this.choose();
    if (!chosen) return null;
    const { choice, records } = chosen;
    this.current = new Map(this.active.map((id) => [id, choice.thresholds.get(id) ?? null]));
    this.tuned = true;
    // The hindsight optimum is for reporting only and costs as much as the re-tune itself: once a window.
    let hindsightSavings = this.stats.hindsightSavings;
    if (this.options.hindsight !== false && this.history.observed - this.hindsightAt >= this.options.window) {
      const windowRecords = this.usable(this.history.recent());
      if (windowRecords.length > 0) {
        const ev = this.evaluator(windowRecords);
        hindsightSavings = hindsightOptimal(ev, { budget, confidence, seeds: [ev.toVector(this.current)] }).savings;
        this.hindsightAt = this.history.observed;
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
    const records = this.usable(this.history.recent());
    if (records.length === 0) return null;
    const batchSize = this.options.latencyBatchSize ?? 1;
    const { observed, batches } = this.history;
    // Judged at the thresholds the window could bear (hindsight-optimal), not at the ones in
    // force: right after a start or a tightening the guard keeps good ramps at "never" for lack
    // of rows, and a ramp should not be dropped for the guard's caution. A head that never
    // agrees is still worth nothing at any threshold.
    const ev = this.evaluator(records);
    const potential = hindsightOptimal(ev, {
      budget: this.options.budget,
      confidence: this.options.confidence,
      seeds: [ev.toVector(this.current)],
    });
    const utilities = rampUtilities(records, {
      activeRamps: this.active,
      thresholds: potential.thresholds,
      rule: this.options.rule,
      profile: this.options.profile,
      batchSize,
    });
    this.stats = { ...this.stats, lastUtilities: utilities };
    const probation = this.active.filter(
      (id) => observed - (this.addedAt.get(id) ?? Number.NEGATIVE_INFINITY) < this.options.window,
    );
    for (const u of utilities)
      this.dropStreak.set(u.rampId, u.utilityMs <= 0 ? (this.dropStreak.get(u.rampId) ?? 0) + 1 : 0);
    const needed = options.dropAfterChecks ?? 2;
    const protect = this.active.filter((id) => probation.includes(id) || (this.dropStreak.get(id) ?? 0) < needed);
    const cooldown = 3 * options.checkEveryBatches;
    const exclude = [...this.droppedAt].filter(([, at]) => batches - at < cooldown).map(([id]) => id);
    const decision: RampSetDecision = rampSetDecision({
      utilities,
      activeRamps: this.active,
      availableRamps: options.availableRamps.filter((id) => !this.withdrawn.has(id)),
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
      this.droppedAt.set(id, batches);
    }
    this.active = this.active.filter((id) => !decision.drop.includes(id));
    if (add !== null) {
      this.active = [...this.active, add].sort((a, b) => a - b);
      this.current.set(add, null);
      this.addedAt.set(add, observed);
    }
    this.rampSetChanged();
    this.relearn();
    this.stats = { ...this.stats, rampChanges: this.stats.rampChanges + 1 };
    return {
      type: 'ramps',
      dropped: decision.drop,
      added: add,
      reasons: decision.reasons.filter((r) => add !== null || !r.startsWith('try')),
    };
  }
}
