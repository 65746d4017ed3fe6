/**
 * The tuner: what every kind of tuner offers its callers (the live server through
 * src/engine/live-tuning.ts and its worker thread, and replay), the one typed options object
 * that builds any of them (`createTuner`, in create-tuner.ts, so that this interface imports no
 * implementation), and the names of the kinds.
 *
 * A tuner is fed feedback records as batches finish (`observe`) and answers with what it changed
 * (events, in order); between batches it serves the thresholds and the active ramps it wants, and
 * its latest estimates. It keeps its own state and changes nothing outside itself: the caller
 * applies what it returns. Kinds:
 *  - guarded (guarded-tuner.ts): a path of settings learned on some rows and tested in order on
 *    others, so that the budget holds with confidence (guarded.ts);
 *  - apparate (apparate-tuner.ts): Apparate's greedy hill-climb on its last few batches
 *    (apparate.ts), kept as a faithful baseline;
 *  - static (static-tuner.ts): thresholds never change.
 * The two online kinds share their loop (online-tuner.ts: re-tune triggers, ramp-set checks,
 * estimates); every kind keeps its rows in a FeedbackHistory (feedback-history.ts).
 */
import type { ExitMode, ExitRule } from './exit-policy.js';
import type { FeedbackRecord } from './feedback-record.js';
import type { LatencyProfileData } from './latency-model.js';
import type { RampUtility } from './ramp-utility.js';
import type { Thresholds } from './window-eval.js';

/**
 * Every tuner a served model may name (the SLO file's `tuner.kind`), in the order the SLO file
 * documents them. off: no ramps run, so there is nothing to tune; every other kind is a Tuner.
 */
export const TUNER_KINDS = ['guarded', 'apparate', 'static', 'off'] as const;
export type TunerSetting = (typeof TUNER_KINDS)[number];

/**
 * Where the guarded tuner's thresholds start (the SLO file's `tuner.start`): calibrated — the
 * thresholds `prepare` calibrated on the bootstrap set, at a stricter rate than the budget
 * (src/engine/exit-plan.ts), watched by the guard from the first row; never — every ramp at
 * "never" until the guard has rows enough to allow an exit.
 */
export const TUNER_STARTS = ['calibrated', 'never'] as const;
export type TunerStart = (typeof TUNER_STARTS)[number];

/** The kinds that are a Tuner (all but off): what `createTuner` builds and replay runs. */
export type TunerKind = Exclude<TunerSetting, 'off'>;

/** The kinds that change thresholds from feedback while serving (a tuner thread runs for them). */
export type OnlineTunerKind = Exclude<TunerKind, 'static'>;

/** Whether a string names a kind that is a Tuner (for parsers: the replay CLI's --tuner). */
export function isTunerKind(kind: string): kind is TunerKind {
  return kind !== 'off' && (TUNER_KINDS as readonly string[]).includes(kind);
}

/** Whether a kind tunes online (the server runs a tuner thread for it). */
export function isOnlineTunerKind(kind: string): kind is OnlineTunerKind {
  return isTunerKind(kind) && kind !== 'static';
}

/** The kinds replay can run, in TUNER_KINDS order. */
export const REPLAYABLE_TUNER_KINDS: readonly TunerKind[] = TUNER_KINDS.filter(isTunerKind);

export interface RampSetOptions {
  /** Every position with a trained head, in model order. */
  availableRamps: readonly number[];
  maxRamps: number;
  /** Largest total head cost as a share of full-model latency. */
  rampBudget: number;
  /**
   * Batches between ramp-set checks (Apparate: 30 for CV, 100 for NLP); a check also waits for a
   * quarter window of new rows (online-tuner.ts).
   */
  checkEveryBatches: number;
  /** Consecutive checks a ramp's utility must stay ≤ 0 before it is dropped (default 2). */
  dropAfterChecks?: number;
}

/**
 * The exit rule, the latency model and the accuracy target a setting is judged by: what every
 * tuner kind takes, and what judging a setting outside a tuner takes too (what-if.ts, resume.ts).
 */
export type SettingJudgeOptions = Pick<
  TunerBaseOptions,
  'rule' | 'profile' | 'latencyBatchSize' | 'budget' | 'confidence' | 'window'
>;

/** What every kind needs: the exit rule, the latency model, the budget and the starting plan. */
export interface TunerBaseOptions {
  rule: ExitRule;
  profile: LatencyProfileData;
  /** Batch size at which latencies are read from the profile (default 1). */
  latencyBatchSize?: number;
  /** Largest allowed disagreement with the full model over `window` rows, in (0, 1). */
  budget: number;
  /** 1 − δ for the guarded tuner's bounds, in (0, 1). */
  confidence: number;
  /** Rows per measurement window: the budget is judged over this many rows. */
  window: number;
  /** Ramps active at the start, in model order. */
  activeRamps: readonly number[];
  /** Starting thresholds (default: all "never"); the static kind keeps them. */
  thresholds?: Thresholds;
}

/**
 * A tuner's learned state, as a restarted tuner resumes from it (`OnlineTunerBaseOptions.resume`,
 * `Tuner.resumePoint`): its active ramps and thresholds, and the newest rows of its history that
 * carry a reading of every ramp those thresholds let answer (under patience, of every active ramp)
 * — the rows they were tuned and tested on, which the guard re-checks them on before they serve
 * again (resume.ts). A ramp at "never" needs no reading: one added to the set has none in older rows.
 */
export interface TunerResumePoint {
  /** In model order. */
  activeRamps: readonly number[];
  /** Per active ramp (null = never). */
  thresholds: ReadonlyMap<number, number | null>;
  /** Oldest first. */
  records: readonly FeedbackRecord[];
}

/** What the online kinds add: when to re-tune, what to report, whether the ramp set may change. */
export interface OnlineTunerBaseOptions extends TunerBaseOptions {
  /** Records between periodic re-tunes (default window / 4: exits open sooner after a start or a tightening). */
  retuneEvery?: number;
  /** Compute the hindsight-optimal savings (at a re-tune, at most once per window), for the estimates (default true). */
  hindsight?: boolean;
  /** Ramp-set changes (drop useless ramps, try new ones); absent: the ramp set is fixed. */
  rampSet?: RampSetOptions;
  /**
   * Rows the tuner must have observed since the start, its last tightening or its last ramp-set
   * change, with a re-tune since then that chose thresholds, before it reports itself settled
   * (`TunerEstimates.learning` false; default 3 × window): the probe share a live server draws
   * in drop mode stays high until then (src/engine/live-tuning.ts).
   */
  settleRows?: number;
  /**
   * Start from a saved state instead of `activeRamps` and `thresholds` (a restart; the caller has
   * had the guard re-check it, resume.ts): those ramps at those thresholds, as thresholds of the
   * tuner's own choice, with the records as its history — so it re-tunes from them rather than
   * learning from nothing, and is settled once they are `settleRows` rows.
   */
  resume?: TunerResumePoint;
}

export interface GuardedTunerOptions extends OnlineTunerBaseOptions {
  kind: 'guarded';
  /**
   * Rows the guarded tuner learns and tests on: the last this many since the start or the last
   * tightening (default 10 × window). Long, because the bound tightens with rows (a longer
   * window saved more on the bundled model's traces with every window within budget; README,
   * Online tuning); drift is caught by the violation and recent-window checks instead.
   */
  tuneWindow?: number;
  /**
   * One row in this many learns, the others test (default 3): the learned path needs fewer rows
   * than the test does (README, Online tuning, has the comparison of shares).
   */
  fitEvery?: number;
  /**
   * Rows kept before the tuning window to learn the path from (default 2 × tuneWindow). Once at
   * least half a tuning window of them exist, they learn and the whole tuning window tests;
   * before that, a share of the tuning window learns.
   */
  learnHistory?: number;
  /** Candidate thresholds per ramp on the learned path (default `pathQuantiles`). */
  quantiles?: number;
  /**
   * Bound the rate at `windowSafeRate(window, budget, confidence)` — the rate at which a window
   * keeps the budget with that confidence — rather than at the budget itself (default true;
   * false: the plain "upper bound ≤ budget" guard).
   */
  perWindowGuard?: boolean;
  /**
   * A setting must also keep the budget on the last `window` rows of the tuning window (default
   * true; see GuardedOptions.recentRows).
   */
  recentGuard?: boolean;
  /** Rows the fast drift check looks at (default window / 4; 0 turns it off). */
  driftSpan?: number;
  /**
   * Test the learned path from running tallies kept as rows come and go (tuner/path-tally.ts;
   * default true) rather than by re-deciding the whole tuning window at every re-tune. Both
   * choose the same thresholds; false is the reference the tallies are checked against
   * (test/path-tally.test.ts).
   */
  pathTally?: boolean;
}

export interface ApparateTunerOptions extends OnlineTunerBaseOptions {
  kind: 'apparate';
  /** Apparate's tuning window, in batches (default 4, as in Apparate). */
  windowBatches?: number;
}

export interface StaticTunerOptions extends TunerBaseOptions {
  kind: 'static';
}

/** The one options object for any tuner: each kind's knobs live on its own branch. */
export type TunerOptions = GuardedTunerOptions | ApparateTunerOptions | StaticTunerOptions;
export type OnlineTunerOptions = GuardedTunerOptions | ApparateTunerOptions;

/**
 * How much feedback the tuner asks a live server for, which sets drop mode's probe share
 * (`probeShareFor`):
 *  - learning: since its start, a tightening or a ramp-set change it has not yet tested a setting
 *    on enough rows (`TunerEstimates.learning`), or it holds its ramps after a window put the
 *    budget at risk, and some ramp may still pay: the learning share, so the guard gets its rows
 *    within a window or two;
 *  - settled: the settled share; most rows leave the batch when they exit;
 *  - idle: on the latest window no setting of the active ramps saves a worthwhile share (the best
 *    one the window could bear, in hindsight, saves under 1 %; online-tuner.ts): the settled
 *    share, so that heads which answer nothing run on few rows, while the tuner keeps watching
 *    for the traffic to change back. With every ramp at "never" the executor runs only probes through
 *    the heads (src/engine/executor/backbone-runner.ts), so an idle model costs almost nothing.
 */
export const FEEDBACK_DEMANDS = ['learning', 'settled', 'idle'] as const;
export type FeedbackDemand = (typeof FEEDBACK_DEMANDS)[number];

/**
 * The probe share a live server draws for a demand: in drop mode the learning share while
 * learning, else the settled share (never below it); in release mode every row, except while idle:
 * then every ramp stands at "never", no row can exit in either mode, and the settled share of rows
 * is enough to watch for traffic on which a ramp pays again (`isDormant`, exit-policy.ts).
 */
export function probeShareFor(
  demand: FeedbackDemand,
  mode: ExitMode,
  shares: { settled: number; learning: number },
): number {
  if (mode === 'release') return demand === 'idle' ? shares.settled : 1;
  return demand === 'learning' ? Math.max(shares.settled, shares.learning) : shares.settled;
}

export type TunerEvent =
  | {
      type: 'retune';
      reason: 'periodic' | 'violation' | 'ramp-change' | 'window-end' | 'idle';
      thresholds: Map<number, number | null>;
      estimatedSavings: number;
    }
  | {
      type: 'tighten';
      /**
       * violation: a finished window broke the budget; drift: recent rows break it with confidence;
       * at-risk: the window being filled has spent so much of its budget that its remaining rows,
       * at the rate the guard aims for, would break it. The first two forget the history (the
       * traffic changed); at-risk holds every ramp at "never" until the window ends, then re-tunes
       * on the history kept, where the recent-window guard judges settings on the rows that spent
       * the budget.
       */
      reason: 'violation' | 'drift' | 'at-risk';
      disagreement: number;
      rows: number;
    }
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
  /**
   * The tuner is still learning: since the start, its last tightening or its last ramp-set
   * change it has not yet both re-tuned with thresholds of its own choice and observed
   * `settleRows` rows. Always false for the static kind (it learns nothing).
   */
  learning: boolean;
  /** What the tuner asks of a live server's probe share (FeedbackDemand). */
  feedbackDemand: FeedbackDemand;
}

export interface Tuner {
  readonly kind: TunerKind;
  /** Thresholds in force, per active ramp (null = never). */
  readonly thresholds: ReadonlyMap<number, number | null>;
  /** Active ramps, in model order. */
  readonly activeRamps: readonly number[];
  readonly estimates: TunerEstimates;
  /** `estimates.learning`, without computing the other estimates. */
  readonly learning: boolean;
  /** `estimates.feedbackDemand`, without computing the other estimates (read after every batch). */
  readonly feedbackDemand: FeedbackDemand;
  /** Takes one finished batch's feedback; returns what the tuner changed, in order. */
  observe(records: readonly FeedbackRecord[]): TunerEvent[];
  /**
   * Ramp `id` can no longer run (the executor disabled it: its head failed). It leaves the active
   * set and is never proposed again; returns what the tuner changed (nothing if it was not active).
   */
  withdrawRamp(id: number): TunerEvent[];
  /**
   * What a restarted tuner would resume from (TunerResumePoint): the thresholds in force and the
   * newest rows, at most `maxRows`, of those it tunes on (guarded: its tuning window; apparate:
   * all it keeps; static: its realised window) that its thresholds can be judged on.
   */
  resumePoint(maxRows: number): TunerResumePoint;
}
