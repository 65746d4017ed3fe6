/**
 * The guarded search (`tuner: guarded`, our default): thresholds for all active ramps jointly
 * that maximise the estimated savings while the budget holds with confidence 1 − δ: the upper
 * Clopper–Pearson bound of the disagreement must be ≤ budget. The bound turns into an integer per
 * sample size — at most `maxAllowedDisagreements(rows, budget, confidence)` disagreements (1 of
 * 500 rows, 4 of 1,000 for a 1 % budget at 95 %).
 *
 * The budget is judged per window, and a true rate just under it still breaks many windows by
 * chance. With `windowRows` the bound is therefore held below
 * `windowSafeRate(windowRows, budget, confidence)` instead — the rate at which a window keeps the
 * budget with the same confidence — so that windows, not just the long-run rate, keep the budget.
 *
 * Why not simply "search the window for the best setting whose bound holds on that window": a
 * search over thousands of settings finds ones that are lucky on this sample — thresholds that
 * sit just above the few rows that disagree — and the bound, valid for one setting fixed in
 * advance, says nothing about a chosen one: such a setting disagrees more on the next windows
 * than on the one it was chosen on. So the rows are split (learn, then test; docs/algorithms.md):
 *  - learn: on some rows (the "fit" part: one row in `fitEvery` of the window, or older rows the
 *    online tuner kept), trace a path from strictest to loosest over all ramps jointly: from
 *    all-never, repeatedly make the one-threshold move with the most latency saved per added
 *    disagreement (`frontierPath`, `learnPath`);
 *  - test: walk that path in its fixed order on other rows (the "certify" part) and keep
 *    settings while their upper bound there stays ≤ budget; stop at the first that fails
 *    (fixed-sequence testing: the order was fixed before the certify rows were looked at, so
 *    no correction for the number of settings tested is needed; `testPath`);
 *  - choose, among the settings that passed, the one with the most savings on the test rows.
 * "Never" for every ramp is the start of the path and cannot disagree.
 *
 * The references the guarded search is measured against (the hindsight optima) are in
 * hindsight.ts.
 */
import { clopperPearsonUpper, maxAllowedDisagreements, windowSafeRate } from './clopper-pearson.js';
import type { FeedbackRecord } from './feedback-record.js';
import type { PathTally } from './path-tally.js';
import { checkBudget, describeChoice, describeFigures, type ThresholdChoice } from './threshold-choice.js';
import { thresholdsOf, WindowEvaluator, type WindowEvalOptions } from './window-eval.js';

export interface GuardedOptions {
  budget: number;
  /** 1 − δ. */
  confidence: number;
  /** Quantile candidates per ramp on the fit part (default `pathQuantiles`). */
  quantiles?: number;
  /** Every this many rows, one goes to the fit part, the rest to the test part (default 2: halves). */
  fitEvery?: number;
  /**
   * Judge the budget per window of this many rows: the bound must then stay below
   * `windowSafeRate(windowRows, budget, confidence)` rather than the budget itself.
   */
  windowRows?: number;
  /**
   * Also hold the target rate (the budget, or the window-safe rate with `windowRows`) on the last
   * this many rows of the window, learn and test rows alike: a setting is kept only while its
   * disagreements there stay ≤ target × rows. Guards a long tuning window against a change in
   * the traffic it has not yet noticed: most of its rows still describe the old traffic, and
   * without this guard a window soon after a shift can break the budget (the bundled model's
   * shifted trace did; README, Online tuning).
   */
  recentRows?: number;
}

export interface GuardedChoice extends ThresholdChoice {
  fitRows: number;
  certifyRows: number;
  /** Disagreements of the chosen setting on the certify half, and what the bound allows there. */
  certifyDisagreements: number;
  certifyAllowed: number;
  /** Settings on the learned path that were tested (the first failure included), and how many passed. */
  pathLength: number;
  passed: number;
}

const EPS = 1e-9;

/** One setting on a learned path. */
export interface PathPoint {
  vector: Float64Array;
  /** Totals on the evaluator the path was learned on. */
  latencyTotalMs: number;
  disagreements: number;
}

/**
 * The strict-to-loose path on the fit rows, by steepest marginal rate: from all-never, repeatedly
 * loosen the one ramp whose next small step (at most `maxStep` candidates) saves the most latency
 * per added disagreement (steps that add none first), until no step saves time or the
 * disagreements pass `maxDisagreements`. Small steps keep the path fine-grained, so the test half
 * can stop it close to where the budget runs out. Meant for an evaluator with smoothed
 * disagreement (see WindowEvalOptions). The first entry is all-never. A generator: the test
 * stops at its first failure, and the path beyond it need not be computed.
 *
 * Moves that tie (within ε) keep the first found: the earlier ramp, then the smaller step. Ties
 * are common — within one block of smoothed disagreement, every step of a ramp saves the same
 * per added disagreement — and the running figures (LooseningSearch) are sums over a few
 * candidate gaps, exact enough for them to be found as ties. Sweeping every row at every step,
 * as this did before, took savings as differences of totals of ~10⁴ ms (rounding ~1e-12), which
 * divided by added disagreements of ~1e-3 moved values by more than ε: such ties went whichever
 * way the rounding fell, and a path may now take a smaller step where it took a larger one.
 */
export function* frontierPath(
  ev: WindowEvaluator,
  options: { quantiles: number; maxDisagreements: number; maxStep?: number },
): Generator<PathPoint> {
  const m = ev.activeRamps.length;
  const maxStep = options.maxStep ?? 3;
  const vector = ev.neverVector();
  if (m === 0 || ev.rows === 0) {
    const start = ev.totals(vector);
    yield { vector, latencyTotalMs: start.latencyTotalMs, disagreements: start.disagreements };
    return;
  }
  const candidates = ev.activeRamps.map((_, j) => ev.candidates(j, options.quantiles));
  // Each step reads what the next few candidates of every ramp would change, kept up to date
  // move by move (window-eval.ts), rather than sweeping every ramp over every row.
  const search = ev.loosening(candidates);
  yield {
    vector: Float64Array.from(vector),
    latencyTotalMs: search.latencyTotalMs,
    disagreements: search.disagreements,
  };
  for (let step = 0; step < 100_000; step++) {
    let bestRamp = -1;
    let bestCandidate = 0;
    let bestFree = false;
    let bestValue = 0;
    for (let j = 0; j < m; j++) {
      const cands = candidates[j] as Float64Array;
      const from = search.position(j);
      let saved = 0;
      let added = 0;
      for (let c = from + 1; c <= Math.min(cands.length, from + maxStep); c++) {
        saved += search.savedIn(j, c - 1);
        added += search.addedIn(j, c - 1);
        if (saved <= EPS) continue;
        if (search.disagreements + added > options.maxDisagreements + EPS) continue;
        const free = added <= EPS;
        // Free steps rank by saving; others by saving per added disagreement.
        const value = free ? saved : saved / added;
        if (bestRamp < 0 || (free && !bestFree) || (free === bestFree && value > bestValue + EPS)) {
          bestRamp = j;
          bestCandidate = c;
          bestFree = free;
          bestValue = value;
        }
      }
    }
    if (bestRamp < 0) break;
    search.move(bestRamp, bestCandidate);
    vector[bestRamp] = (candidates[bestRamp] as Float64Array)[bestCandidate - 1] as number;
    yield {
      vector: Float64Array.from(vector),
      latencyTotalMs: search.latencyTotalMs,
      disagreements: search.disagreements,
    };
  }
}

/**
 * Candidate thresholds per ramp for a path learned on `rows` rows over `ramps` ramps: one per
 * ~100 rows, from 32 up to 384 / ramps (128 for 3 ramps). Finer steps let the test stop closer
 * to where the budget runs out, but each step must still move enough learning rows to be told
 * apart from noise. The cap dates from when every step swept every ramp over every row (a cost
 * of ramps² × candidates × rows); a path now costs far less, but the measurements below were made
 * with the cap. On the bundled model's traces, more candidates on long learning
 * histories saved a little more, while too many on a short interleaved history let the shifted
 * trace break the budget after the shift; one per ~100 rows avoids both (README, Online tuning,
 * has the measurements).
 */
export function pathQuantiles(rows: number, ramps: number): number {
  const cap = Math.max(32, Math.floor(384 / Math.max(1, ramps)));
  return Math.min(cap, Math.max(32, Math.round(rows / 100)));
}

/**
 * Learn: the strict-to-loose path on the learning rows (an evaluator with smoothed
 * disagreement), as far as a test could still pass — past twice the budget on the learning
 * rows it cannot. Entry 0 is all-never.
 */
export function learnPath(fit: WindowEvaluator, options: { budget: number; quantiles?: number }): Float64Array[] {
  const maxFit = Math.ceil(2 * options.budget * fit.countedRows) + 2;
  const quantiles = options.quantiles ?? pathQuantiles(fit.rows, fit.activeRamps.length);
  return Array.from(frontierPath(fit, { quantiles, maxDisagreements: maxFit }), (point) => point.vector);
}

export interface PathTestOptions {
  budget: number;
  confidence: number;
  /** As in GuardedOptions: hold the bound below `windowSafeRate(windowRows, …)`. */
  windowRows?: number;
  /** The most recent rows (a part of the test rows or not): the target rate must hold there too (GuardedOptions.recentRows). */
  recent?: WindowEvaluator;
  /** Rows the path was learned on, for the report. */
  fitRows: number;
}

/**
 * Test: walk a learned path in its order on test rows the path was not learned from, keep
 * settings while their upper bound stays below the target (and, with `recent`, while the
 * recent rows keep the target rate), stop at the first that fails; choose the passed setting
 * with the least latency on the test rows. The choice is described on the test rows: its
 * disagreement, savings and exit rates there are estimates the path could not have fitted.
 */
export function testPath(
  path: readonly Float64Array[],
  test: WindowEvaluator,
  options: PathTestOptions,
): GuardedChoice {
  const { recent } = options;
  const never = test.neverVector();
  const walk = walkPath(path.length, test.countedRows, recent?.countedRows ?? null, options, {
    neverLatency: () => test.totals(never).latencyTotalMs,
    totals: (step) => test.totals(path[step] as Float64Array),
    recentDisagreements: (step) => (recent as WindowEvaluator).totals(path[step] as Float64Array).disagreements,
  });
  const best = walk.best === 'never' ? never : (path[walk.best] as Float64Array);
  return {
    ...describeChoice(test, best, walk.allowed, options.confidence),
    fitRows: options.fitRows,
    certifyRows: test.rows,
    ...walk.report,
  };
}

/**
 * `testPath` on running tallies of the path (path-tally.ts): `test` holds the test rows,
 * `recent` (optional) the most recent rows. The same walk on the same totals, so the same
 * choice as `testPath` on evaluators of those rows; only a setting's latency total is summed by
 * exit (count × time to answer) rather than row by row, which can differ in the last bits, far
 * below the walk's tolerance for "less latency".
 */
export function testPathTally(
  test: PathTally,
  options: Omit<PathTestOptions, 'recent'> & { recent?: PathTally },
): GuardedChoice {
  const { recent } = options;
  const walk = walkPath(test.steps, test.countedRows, recent?.countedRows ?? null, options, {
    neverLatency: () => test.figures('never').latencyTotalMs,
    totals: (step) => ({ latencyTotalMs: test.latencyTotalMs(step), disagreements: test.disagreementsAt(step) }),
    recentDisagreements: (step) => (recent as PathTally).disagreementsAt(step),
  });
  const best = walk.best === 'never' ? test.figures('never') : test.figures(walk.best);
  const vector = walk.best === 'never' ? neverVectorOf(test.options.activeRamps.length) : test.path[walk.best];
  return {
    ...describeFigures(
      thresholdsOf(test.options.activeRamps, vector as Float64Array),
      best,
      walk.allowed,
      options.confidence,
    ),
    fitRows: options.fitRows,
    certifyRows: test.rows,
    ...walk.report,
  };
}

function neverVectorOf(ramps: number): Float64Array {
  return new Float64Array(ramps).fill(Number.POSITIVE_INFINITY);
}

/** What the walk of a path needs of the test rows: each setting's totals there, and on the recent rows. */
interface PathTotals {
  /** Latency total of all-never on the test rows (the choice when no setting passes). */
  neverLatency(): number;
  totals(step: number): { latencyTotalMs: number; disagreements: number };
  recentDisagreements(step: number): number;
}

/**
 * What the guard allows a setting on `testCounted` counted test rows: at most `allowed`
 * disagreements there (−1: too few rows for any exit), the upper bound held below the target
 * rate (the budget, or with `windowRows` the window-safe rate); and at most `recentAllowed` on
 * `recentCounted` recent rows (0 without them), where the target rate itself must hold.
 */
function guardLimits(
  testCounted: number,
  recentCounted: number | null,
  options: { budget: number; confidence: number; windowRows?: number },
): { allowed: number; recentAllowed: number } {
  checkBudget(options.budget, options.confidence);
  const target = options.windowRows
    ? windowSafeRate(options.windowRows, options.budget, options.confidence)
    : options.budget;
  return {
    allowed: maxAllowedDisagreements(testCounted, target, options.confidence),
    recentAllowed: recentCounted !== null ? Math.floor(target * recentCounted + EPS) : 0,
  };
}

/** The guard's verdict on one setting (`checkSetting`) and the figures behind it. */
export interface SettingCheck {
  passed: boolean;
  /** Disagreements of the setting on the counted test rows, and what the guard allows there. */
  disagreements: number;
  countedRows: number;
  allowed: number;
  /** Upper Clopper–Pearson bound of its disagreement there; null without counted rows. */
  upperBound: number | null;
}

/**
 * The guard's judgement of one setting fixed before `test` was looked at (a restarted tuner's
 * saved thresholds): the judgement `testPath` makes of each setting on its path — its
 * disagreements on the test rows within what the bound allows, and on the `recent` rows within
 * the target rate. All-never cannot disagree, and passes even without rows.
 */
export function checkSetting(
  vector: Float64Array,
  test: WindowEvaluator,
  options: Omit<PathTestOptions, 'fitRows'>,
): SettingCheck {
  const { recent } = options;
  const { allowed, recentAllowed } = guardLimits(test.countedRows, recent?.countedRows ?? null, options);
  const disagreements = test.totals(vector).disagreements;
  const never = vector.every((t) => t === Number.POSITIVE_INFINITY);
  const passed =
    never ||
    (disagreements <= allowed && (recent === undefined || recent.totals(vector).disagreements <= recentAllowed));
  return {
    passed,
    disagreements,
    countedRows: test.countedRows,
    allowed,
    upperBound: test.countedRows > 0 ? clopperPearsonUpper(disagreements, test.countedRows, options.confidence) : null,
  };
}

/**
 * The walk `testPath` makes (see there), on any source of per-setting totals: the setting kept
 * (an index on the path, or all-never), what the bound allows, and the report's path figures.
 * `recentCounted`: counted rows of the recent rows, null without them.
 */
function walkPath(
  steps: number,
  testCounted: number,
  recentCounted: number | null,
  options: { budget: number; confidence: number; windowRows?: number },
  totals: PathTotals,
): {
  best: number | 'never';
  allowed: number;
  report: Pick<GuardedChoice, 'upperBound' | 'certifyDisagreements' | 'certifyAllowed' | 'pathLength' | 'passed'>;
} {
  const { allowed, recentAllowed } = guardLimits(testCounted, recentCounted, options);
  let best: number | 'never' = 'never';
  let bestLatency = totals.neverLatency();
  let bestDisagreements = 0;
  let pathLength = 0;
  let passed = 0;
  if (allowed >= 0) {
    for (let step = 0; step < steps; step++) {
      pathLength++;
      const tested = totals.totals(step);
      if (tested.disagreements > allowed) break;
      if (recentCounted !== null && totals.recentDisagreements(step) > recentAllowed) break;
      passed++;
      if (tested.latencyTotalMs < bestLatency - EPS) {
        best = step;
        bestLatency = tested.latencyTotalMs;
        bestDisagreements = tested.disagreements;
      }
    }
  }
  return {
    best,
    allowed,
    report: {
      upperBound: testCounted > 0 ? clopperPearsonUpper(bestDisagreements, testCounted, options.confidence) : 1,
      certifyDisagreements: bestDisagreements,
      certifyAllowed: allowed,
      pathLength,
      passed,
    },
  };
}

/**
 * Guarded thresholds for a window of records (oldest first): learn a path on one row in
 * `fitEvery`, test it in order on the others, keep the best setting that passed (see the top of
 * this file).
 */
export function guardedThresholds(
  records: readonly FeedbackRecord[],
  window: WindowEvalOptions,
  options: GuardedOptions,
): GuardedChoice {
  checkBudget(options.budget, options.confidence);
  // Interleaved parts: both equally recent, so drift within the window affects both alike.
  const every = options.fitEvery ?? 2;
  const full = new WindowEvaluator(records, window);
  const fitEv = full.subset((i) => i % every === 0, { smoothDisagreement: true });
  const testEv = full.subset((i) => i % every !== 0);
  const recentFrom =
    options.recentRows !== undefined && options.recentRows < full.rows ? full.rows - options.recentRows : null;
  const target = options.windowRows
    ? windowSafeRate(options.windowRows, options.budget, options.confidence)
    : options.budget;
  // No path to learn when the test part is too small for the bound to allow any exit.
  const testable = maxAllowedDisagreements(testEv.countedRows, target, options.confidence) >= 0;
  const path = testable
    ? learnPath(fitEv, {
        budget: options.budget,
        ...(options.quantiles !== undefined ? { quantiles: options.quantiles } : {}),
      })
    : [];
  return testPath(path, testEv, {
    budget: options.budget,
    confidence: options.confidence,
    fitRows: fitEv.rows,
    ...(options.windowRows !== undefined ? { windowRows: options.windowRows } : {}),
    ...(recentFrom !== null ? { recent: full.subset((i) => i >= recentFrom) } : {}),
  });
}
