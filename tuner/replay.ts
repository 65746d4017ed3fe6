/**
 * Replay: run a recorded trace through a tuner as if it arrived live, and measure what a live
 * server would have seen. Pure: the trace comes in as data (src/cli/replay-command.ts reads it).
 *
 * The trace (`offramp record`) scored every ramp on every row with nobody exiting. Replay walks
 * it in order, in batches of the recorded batch size; for each batch the thresholds in force
 * *at that moment* decide every row (its exit is fixed then, never re-decided later), and the
 * tuner then observes the batch — reduced to what a live server would have fed back: only the
 * readings of the ramps active at that moment, with the exit that was taken. So the realised
 * disagreement is that of live decisions, and a tuner only learns from what it could have seen.
 *
 * Per window of `window` consecutive rows (non-overlapping; a shorter tail is counted in the
 * overall figures but is not a window): realised disagreement and whether it is within budget,
 * realised savings (each row's time to answer from the latency model, under the ramp set it was
 * served with) and the hindsight-optimal savings on that same window (thresholds an oracle would
 * pick knowing the window, the ramps active at its end). Overall: share of windows within
 * budget, overall disagreement, mean savings, savings as a fraction of hindsight (ratio of the
 * sums over windows), and the thresholds after each window.
 *
 * The tuner is built from the same typed options as a live one (tuner.ts), less what the trace
 * supplies (the exit policy, the latency profile) and with replay's defaults for the budget,
 * confidence, window and active ramps.
 *
 * Where an online tuner starts (`start`): every ramp at "never" (the default here), or, like a
 * served guarded tuner with `tuner.start: calibrated`, at the thresholds calibrated from the
 * ramps' solo-exit curves at the window-safe rate (calibration.ts) — which the trace's header
 * carries when `offramp record` wrote it (older traces: the replay CLI's `--model DIR` reads them
 * from the prepared model). Given `thresholds` win over `start`.
 *
 * How feedback reaches the tuner (`feedback`), as on a live server (src/engine/live-tuning.ts):
 * release mode (the default here) feeds every row back; drop mode (the server's default) draws,
 * before each batch, each row as a probe with the share the tuner asks for (`probeShareFor`: the
 * learning share while it learns, else the settled share), from a seeded stream, and feeds only
 * probes — so a replay learns from as few rows as the server does. A batch whose ramps all stand
 * at "never" (`isDormant`) draws probes in either mode (release: all rows unless the tuner is
 * idle), and a row of it that is not a probe takes the unsplit model and costs what vanilla
 * serving does, as on the server. With `rampSet` the tuner drops and adds ramps
 * at the server's cadence (its `checkEveryBatches`, counted in the trace's batches); a new ramp
 * reads the trace's recorded scores, which carry every ramp.
 *
 * Static replays need thresholds: given ones, or — like `prepare` calibrating offline on a
 * bootstrap set — the guarded search run once on the first `calibrationRows` rows (default
 * 4 × window), then frozen; those first windows are then in-sample for it.
 */
import { calibratedStartRate, calibratedThresholds, type SoloCurvePoint } from './calibration.js';
import {
  drawsProbes,
  EXIT_POLICIES,
  isDormant,
  isExitPolicy,
  type ExitMode,
  type ExitPolicyKind,
} from './exit-policy.js';
import { seededRandom } from './seeded-random.js';
import { realisedDisagreement, type FeedbackRecord } from './feedback-record.js';
import { guardedThresholds } from './guarded.js';
import { compliantHindsight, hindsightOptimal, type CompliantHindsight } from './hindsight.js';
import { atBatch, latencyToAnswer, type LatencyProfileData } from './latency-model.js';
import { createTuner } from './create-tuner.js';
import {
  probeShareFor,
  type RampSetOptions,
  type TunerEvent,
  type TunerKind,
  type TunerOptions,
  type TunerStart,
} from './tuner.js';
import { decideExit, WindowEvaluator, type Thresholds } from './window-eval.js';

/** The first line of a trace file (src/engine/recorder.ts). */
export interface TraceHeader {
  offramp_trace: 1;
  model: string;
  policy: ExitPolicyKind;
  batch_size: number;
  classes: number;
  labels?: string[];
  /** `soloCurve`: the ramp's solo-exit curve from `prepare` (absent in traces recorded before it was written). */
  ramps: { id: number; computeBefore: number; soloCurve?: SoloCurvePoint[] }[];
  profile: LatencyProfileData;
}

function isSoloCurve(x: unknown): x is SoloCurvePoint[] {
  return (
    Array.isArray(x) &&
    x.every(
      (p: Partial<SoloCurvePoint> | null) =>
        typeof p?.budget === 'number' && typeof p.exitFraction === 'number' && typeof p.threshold === 'number',
    )
  );
}

function isNumberMatrix(x: unknown): x is number[][] {
  return Array.isArray(x) && x.every((row) => Array.isArray(row) && row.every((v) => typeof v === 'number'));
}

/** Checks a parsed header line; the message names the field that is wrong. */
export function parseTraceHeader(value: unknown): TraceHeader {
  const h = value as Partial<TraceHeader> | null;
  if (!h || typeof h !== 'object' || h.offramp_trace !== 1)
    throw new Error('not an offramp trace: the first line must be a header with "offramp_trace": 1');
  if (!isExitPolicy(h.policy))
    throw new Error(`header.policy: expected one of ${EXIT_POLICIES.join(', ')}, got ${JSON.stringify(h.policy)}`);
  if (!Number.isInteger(h.batch_size) || (h.batch_size as number) < 1)
    throw new Error(`header.batch_size: expected a positive integer, got ${JSON.stringify(h.batch_size)}`);
  if (!Array.isArray(h.ramps) || !h.ramps.every((r) => Number.isInteger(r?.id)))
    throw new Error('header.ramps: expected a list of {id, computeBefore}');
  if (!h.ramps.every((r) => r.soloCurve === undefined || isSoloCurve(r.soloCurve)))
    throw new Error('header.ramps[].soloCurve: expected a list of {budget, exitFraction, threshold}');
  const p = h.profile;
  if (
    !p ||
    !Array.isArray(p.batchSizes) ||
    !isNumberMatrix(p.segmentMs) ||
    !isNumberMatrix(p.headMs) ||
    !Array.isArray(p.fullModelMs)
  ) {
    throw new Error('header.profile: expected {batchSizes, segmentMs, headMs, fullModelMs}');
  }
  return h as TraceHeader;
}

/** Checks one parsed record line (just what replay relies on). */
export function parseTraceRecord(value: unknown, line: number): FeedbackRecord {
  const r = value as Partial<FeedbackRecord> | null;
  if (!r || typeof r !== 'object' || !Array.isArray(r.ramps))
    throw new Error(`line ${line}: not a feedback record (no "ramps" list)`);
  for (const x of r.ramps) {
    if (!Number.isInteger(x?.id) || !Number.isInteger(x?.argmax) || typeof x?.score !== 'number')
      throw new Error(`line ${line}: ramp readings need integer id and argmax and a numeric score`);
  }
  if (r.final !== null && (typeof r.final !== 'object' || !Number.isInteger(r.final?.argmax)))
    throw new Error(`line ${line}: "final" must be {argmax, confidence} or null`);
  return r as FeedbackRecord;
}

/** What the trace supplies, or replay sets itself, so a replay's tuner options leave it out. */
type SetByReplay = 'rule' | 'profile' | 'hindsight' | 'rampSet';
/** What replay gives a default: budget 0.01, confidence 0.95, window 1000, every ramp in the trace. */
type DefaultedByReplay = 'budget' | 'confidence' | 'window' | 'activeRamps';
type ForReplay<O> = O extends TunerOptions
  ? Omit<O, SetByReplay | DefaultedByReplay> & Partial<Pick<O, DefaultedByReplay>>
  : never;

/**
 * The tuner to replay, as TunerOptions (its `kind` and that kind's knobs; `thresholds` are the
 * starting ones, and the static tuner's for good), and what the replay itself needs.
 */
export type ReplayOptions = ForReplay<TunerOptions> & {
  /** For the patience policy (default 2, as the SLO file). */
  patience?: number;
  /**
   * Static without `thresholds`: rows at the start of the trace the guarded search calibrates
   * on, before they are frozen (default 4 × window).
   */
  calibrationRows?: number;
  /**
   * Online tuners without `thresholds`: where they start (default never). calibrated: each active
   * ramp at its solo-curve threshold for the window-safe rate (calibration.ts), as a served guarded
   * tuner starts; the header must carry every active ramp's `soloCurve`.
   */
  start?: TunerStart;
  /** Share of windows the compliant hindsight reference keeps within budget (default 0.99). */
  compliance?: number;
  /**
   * The rows the replayed stream was drawn from, when it was drawn (a resampled trace): the
   * traffic's distribution, on which the compliant hindsight reference is found. Found on the
   * drawn stream itself, it would also know that draw's noise — which rows came up more often —
   * and fit it, and so vary from one seed of the draw to the next (README, Online tuning).
   */
  population?: readonly FeedbackRecord[];
  /** Compute hindsight-optimal savings per window (default true; the slow part). The tuner's own hindsight estimate is always off in a replay. */
  hindsight?: boolean;
  /** Online tuners: let the tuner drop and add ramps (absent: fixed ramp set; default available ramps: every ramp in the trace). */
  rampSet?: Omit<RampSetOptions, 'availableRamps'> & { availableRamps?: readonly number[] };
  /** How feedback reaches the tuner (see the top of this file; default: release, every row). */
  feedback?: ReplayFeedback;
};

/** A live server's feedback, replayed: its exit mode and drop mode's probe shares (the SLO file's `exits`). */
export interface ReplayFeedback {
  mode: ExitMode;
  /** `exits.drop_feedback_fraction`: the probe share once the tuner has settled (or is idle). */
  settledShare: number;
  /** `exits.learning_feedback_fraction`: the probe share while the tuner learns. */
  learningShare: number;
  /** Seeds the probe draws (default 1). */
  seed?: number;
}

export interface ReplayWindow {
  index: number;
  /** First row of the window in the trace (0-based). */
  startRow: number;
  rows: number;
  countedRows: number;
  disagreements: number;
  disagreement: number;
  withinBudget: boolean;
  savings: number;
  hindsightSavings: number | null;
  /** Share of the window's rows answered at each ramp. */
  exitRates: Record<number, number>;
  activeRamps: number[];
  /** Thresholds in force after the window's last row. */
  thresholdsAfter: Record<number, number | null>;
}

export interface ReplayReport {
  model: string;
  /** Thresholds the tuner started from (null = never). */
  startThresholds: Record<number, number | null>;
  policy: ExitPolicyKind;
  tuner: TunerKind;
  budget: number;
  confidence: number;
  window: number;
  rows: number;
  windows: ReplayWindow[];
  /** Share of full windows whose realised disagreement ≤ budget (null without a full window). */
  withinBudgetFraction: number | null;
  overallDisagreement: number;
  /** Mean of the windows' realised savings (over all rows when there is no full window). */
  meanSavings: number;
  meanHindsightSavings: number | null;
  /** Σ savings / Σ hindsight savings over windows; null when hindsight is off or ≤ 0. */
  fractionOfHindsight: number | null;
  /**
   * The best fixed setting for the whole trace at the rate where a window keeps the budget with
   * probability `compliance` (hindsight.ts), for the ramps active at the start; null
   * when hindsight is off. The yardstick for the tuner: the per-window optimum fits each
   * window's noise and is out of reach for a tuner that must keep ≥ 99 % of windows.
   */
  compliantHindsight: CompliantHindsight | null;
  /** meanSavings / compliantHindsight.savings; null when hindsight is off or that is ≤ 0. */
  fractionOfCompliantHindsight: number | null;
  /** Rows fed back to the tuner (every row in release mode; the probes in drop mode). */
  feedbackRows: number;
  /** Thresholds after each window, in order. */
  trajectory: { afterRow: number; thresholds: Record<number, number | null> }[];
  /** What the tuner did, after which row (thresholds as plain records, so the report is JSON). */
  events: { afterRow: number; event: ReplayEvent }[];
}

export type ReplayEvent =
  | (Omit<Extract<TunerEvent, { type: 'retune' }>, 'thresholds'> & { thresholds: Record<number, number | null> })
  | Exclude<TunerEvent, { type: 'retune' }>;

function plainEvent(event: TunerEvent): ReplayEvent {
  return event.type === 'retune' ? { ...event, thresholds: asRecord(event.thresholds) } : event;
}

function asRecord(map: ReadonlyMap<number, number | null>): Record<number, number | null> {
  return Object.fromEntries([...map].sort(([a], [b]) => a - b));
}

/** Replays a trace through a tuner, live-order, and reports per window and overall. */
export function replayTrace(
  header: TraceHeader,
  records: readonly FeedbackRecord[],
  options: ReplayOptions,
): ReplayReport {
  const { patience, calibrationRows, compliance, population, hindsight, rampSet, start, ...tunerOptions } = options;
  const budget = options.budget ?? 0.01;
  const confidence = options.confidence ?? 0.95;
  const window = options.window ?? 1000;
  const rule = { policy: header.policy, patience: patience ?? 2 };
  const profile = header.profile;
  const latencyBatchSize = options.latencyBatchSize ?? 1;
  const allRamps = header.ramps.map((r) => r.id).sort((a, b) => a - b);
  const activeRamps = [...(options.activeRamps ?? allRamps)].sort((a, b) => a - b);
  for (const id of activeRamps)
    if (!allRamps.includes(id)) throw new RangeError(`ramp ${id} is not in the trace (ramps: ${allRamps.join(', ')})`);

  let initial: Thresholds | undefined = options.thresholds;
  if (options.kind !== 'static' && !initial && start === 'calibrated') {
    const ramps = activeRamps.map((id) => {
      const soloCurve = header.ramps.find((r) => r.id === id)?.soloCurve;
      if (!soloCurve)
        throw new RangeError(`ramp ${id} has no solo-exit curve in the trace header: no calibrated start`);
      return { id, soloCurve };
    });
    initial = calibratedThresholds(ramps, calibratedStartRate({ budget, confidence, window }), rule.policy);
  }
  if (options.kind === 'static' && !initial) {
    const first = records.slice(0, calibrationRows ?? 4 * window);
    initial = guardedThresholds(
      first,
      { activeRamps, rule, profile, batchSize: latencyBatchSize },
      { budget, confidence, windowRows: window },
    ).thresholds;
  }
  const set = {
    rule,
    profile,
    latencyBatchSize,
    budget,
    confidence,
    window,
    activeRamps,
    ...(initial ? { thresholds: initial } : {}),
  };
  const tuner = createTuner(
    tunerOptions.kind === 'static'
      ? { ...tunerOptions, ...set }
      : {
          ...tunerOptions,
          ...set,
          hindsight: false, // replay computes hindsight per window itself
          ...(rampSet ? { rampSet: { ...rampSet, availableRamps: rampSet.availableRamps ?? allRamps } } : {}),
        },
  );

  const vanilla = atBatch(profile, profile.fullModelMs, latencyBatchSize);
  const windows: ReplayWindow[] = [];
  const trajectory: ReplayReport['trajectory'] = [];
  const events: ReplayReport['events'] = [];
  // Accumulators for the window being filled.
  let winStart = 0;
  let winRows = 0;
  let winCounted = 0;
  let winDisagree = 0;
  let winLatency = 0;
  let winExits = new Map<number, number>();
  let totalCounted = 0;
  let totalDisagree = 0;
  let totalLatency = 0;

  const closeWindow = (): void => {
    const windowRecords = records.slice(winStart, winStart + winRows);
    const endRamps = [...tuner.activeRamps];
    let hindsightSavings: number | null = null;
    if (hindsight !== false && endRamps.length > 0) {
      const ev = new WindowEvaluator(windowRecords, {
        activeRamps: endRamps,
        rule,
        profile,
        batchSize: latencyBatchSize,
      });
      hindsightSavings = hindsightOptimal(ev, { budget, confidence, seeds: [ev.toVector(tuner.thresholds)] }).savings;
    } else if (hindsight !== false) {
      hindsightSavings = 0;
    }
    const disagreement = winCounted > 0 ? winDisagree / winCounted : 0;
    windows.push({
      index: windows.length,
      startRow: winStart,
      rows: winRows,
      countedRows: winCounted,
      disagreements: winDisagree,
      disagreement,
      withinBudget: winDisagree <= budget * winCounted + 1e-9,
      savings: vanilla > 0 ? 1 - winLatency / winRows / vanilla : 0,
      hindsightSavings,
      exitRates: Object.fromEntries([...winExits].sort(([a], [b]) => a - b).map(([id, n]) => [id, n / winRows])),
      activeRamps: endRamps,
      thresholdsAfter: asRecord(tuner.thresholds),
    });
    trajectory.push({ afterRow: winStart + winRows, thresholds: asRecord(tuner.thresholds) });
    winStart += winRows;
    winRows = 0;
    winCounted = 0;
    winDisagree = 0;
    winLatency = 0;
    winExits = new Map();
  };

  const batchSize = header.batch_size;
  const feedback = options.feedback ?? { mode: 'release', settledShare: 1, learningShare: 1 };
  const drawProbe = seededRandom(feedback.seed ?? 1);
  let feedbackRows = 0;
  for (let start = 0; start < records.length; start += batchSize) {
    const batch = records.slice(start, start + batchSize);
    const ramps = tuner.activeRamps;
    const active = new Set(ramps);
    const thresholds = tuner.thresholds;
    const plan = { mode: feedback.mode, ramps: ramps.map((id) => ({ threshold: thresholds.get(id) ?? null })) };
    // As the executor draws them (`drawsProbes`: drop mode, or a dormant batch), each row by the
    // share the tuner asks for now; otherwise every row is fed back.
    const draws = drawsProbes(plan);
    const share = draws
      ? probeShareFor(tuner.feedbackDemand, feedback.mode, {
          settled: feedback.settledShare,
          learning: feedback.learningShare,
        })
      : 1;
    const dormant = isDormant(plan);
    const live: FeedbackRecord[] = [];
    for (const record of batch) {
      // One draw per row exactly when the executor draws one, so that a replay seeded like an
      // executor (src/engine/executor/backbone-runner.ts) draws the same probes.
      const probe = draws ? drawProbe() < share : true;
      const answer = decideExit(record, ramps, thresholds, rule);
      const latency = dormant && !probe ? vanilla : latencyToAnswer(profile, ramps, answer.exit, latencyBatchSize);
      // What a live server would have fed back: the exit taken, the readings of the active ramps.
      const fed: FeedbackRecord = { ...record, exit: answer.exit, ramps: record.ramps.filter((r) => active.has(r.id)) };
      const disagrees = realisedDisagreement(fed);
      const counted = disagrees >= 0;
      if (probe) live.push(fed);
      winRows++;
      winLatency += latency;
      totalLatency += latency;
      if (answer.exit >= 0) winExits.set(answer.exit, (winExits.get(answer.exit) ?? 0) + 1);
      if (counted) {
        winCounted++;
        totalCounted++;
        winDisagree += disagrees;
        totalDisagree += disagrees;
      }
      if (winRows === window) {
        // The window closes mid-batch with the thresholds that decided it still in force.
        closeWindow();
      }
    }
    feedbackRows += live.length;
    for (const event of tuner.observe(live)) events.push({ afterRow: start + batch.length, event: plainEvent(event) });
  }

  const hindsightSum = windows.reduce((s, w) => s + (w.hindsightSavings ?? 0), 0);
  const savingsSum = windows.reduce((s, w) => s + w.savings, 0);
  const useHindsight = hindsight !== false && windows.length > 0;
  const compliant = useHindsight
    ? compliantHindsight(
        population ?? records,
        { activeRamps, rule, profile, batchSize: latencyBatchSize },
        { budget, windowRows: window, ...(compliance !== undefined ? { compliance } : {}) },
      )
    : null;
  const meanSavings =
    windows.length > 0
      ? savingsSum / windows.length
      : records.length > 0 && vanilla > 0
        ? 1 - totalLatency / records.length / vanilla
        : 0;
  return {
    model: header.model,
    startThresholds: asRecord(new Map(activeRamps.map((id) => [id, initial?.get(id) ?? null]))),
    policy: header.policy,
    tuner: options.kind,
    budget,
    confidence,
    window,
    rows: records.length,
    windows,
    withinBudgetFraction: windows.length > 0 ? windows.filter((w) => w.withinBudget).length / windows.length : null,
    overallDisagreement: totalCounted > 0 ? totalDisagree / totalCounted : 0,
    meanSavings,
    meanHindsightSavings: useHindsight ? hindsightSum / windows.length : null,
    fractionOfHindsight: useHindsight && hindsightSum > 0 ? savingsSum / hindsightSum : null,
    compliantHindsight: compliant,
    fractionOfCompliantHindsight: compliant && compliant.savings > 0 ? meanSavings / compliant.savings : null,
    feedbackRows,
    trajectory,
    events,
  };
}
