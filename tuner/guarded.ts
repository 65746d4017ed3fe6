/**
 * The guarded tuner (`tuner: guarded`, our default) and the hindsight-optimal reference.
 *
 * Guarded: thresholds for all active ramps jointly that maximise the estimated savings while the
 * budget holds with confidence 1 − δ: the upper Clopper–Pearson bound of the disagreement must be
 * ≤ budget. The bound turns into an integer per sample size — at most
 * `maxAllowedDisagreements(rows, budget, confidence)` disagreements (1 of 500 rows, 4 of 1,000
 * for a 1 % budget at 95 %).
 *
 * The budget is judged per window (1,000 rows), and a true rate just under it still breaks many
 * windows by chance (at 0.8 % one window in four). With `windowRows` the bound is therefore held
 * below `windowSafeRate(windowRows, budget, confidence)` instead — the rate at which a window
 * keeps the budget with the same confidence (0.62 % for 1 % over 1,000 rows at 95 %). On
 * synthetic traces this kept 100 % of windows within budget where the plain guard kept 96–98 %,
 * at about the same savings (it tests on more rows: the online tuner's default tuning window
 * is 4,000 rows).
 *
 * Why not simply "search the window for the best setting whose bound holds on that window": a
 * search over thousands of settings finds ones that are lucky on this sample — thresholds that
 * sit just above the few rows that disagree — and the bound, valid for one setting fixed in
 * advance, says nothing about a chosen one. On synthetic traces that in-window guard chose
 * settings at 0.4 % disagreement on the window that disagreed 1.3 % on the next windows. So we
 * split the window (Learn then Test, DESIGN.md §4):
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
 * Hindsight-optimal: the best setting on the very window with the plain empirical constraint
 * (≤ budget × rows disagreements), searched hard: coordinate ascent from all-never, the same
 * Lagrangian relaxation with λ found by bisection (coordinate ascent alone gets stuck when the
 * first ramp takes the whole budget), a constrained polish, every recorded score a candidate,
 * plus caller-given starting points. It is what an oracle that saw the window in advance would
 * pick: the reference for "fraction of hindsight" — an optimistic one, since it fits the noise
 * of the window it is scored on.
 */
import { clopperPearsonUpper, maxAllowedDisagreements, windowSafeRate } from './clopper-pearson.js';
import type { FeedbackRecord } from './feedback-record.js';
import { WindowEvaluator, type WindowEvalOptions } from './window-eval.js';

export interface ThresholdSearchOptions {
  /** Largest number of disagreements allowed on the window; −1: only all-never is allowed. */
  maxDisagreements: number;
  /** Candidates per ramp: rank quantiles, or every distinct recorded score. */
  candidates: number | 'all';
  /** Most coordinate-ascent passes over the ramps. */
  passes: number;
  /** Bisection steps on the Lagrange multiplier (0: skip the Lagrangian phase). */
  lagrangeSteps: number;
  /** Extra starting points (threshold vectors indexed like the evaluator's activeRamps). */
  seeds?: readonly Float64Array[];
}

export interface ThresholdChoice {
  thresholds: Map<number, number | null>;
  /** Disagreements of the chosen setting on the window, and their rate over counted rows. */
  disagreements: number;
  disagreementRate: number;
  /** Upper Clopper–Pearson bound of that rate at the tuner's confidence. */
  upperBound: number;
  /** The constraint the search worked under. */
  allowedDisagreements: number;
  savings: number;
  exitRates: Map<number, number>;
  rows: number;
}

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
   * the traffic it has not yet noticed: on the shifted trace of the bundled model, without it
   * the third window after the shift broke the budget (1.2 %); with it none did.
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

interface Point {
  vector: Float64Array;
  latency: number;
  disagreements: number;
}

const EPS = 1e-9;

function better(a: Point, b: Point): boolean {
  if (a.latency < b.latency - EPS) return true;
  if (a.latency > b.latency + EPS) return false;
  return a.disagreements < b.disagreements;
}

/** Coordinate ascent under "disagreements ≤ max": each ramp in turn to its best allowed candidate. */
function constrainedAscent(ev: WindowEvaluator, start: Point, candidates: Float64Array[], max: number, passes: number): Point {
  const current: Point = { vector: Float64Array.from(start.vector), latency: start.latency, disagreements: start.disagreements };
  for (let pass = 0; pass < passes; pass++) {
    let moved = false;
    for (let j = 0; j < current.vector.length; j++) {
      const cands = candidates[j] as Float64Array;
      const s = ev.sweep(j, current.vector, cands);
      let best = -1;
      for (let c = 0; c <= cands.length; c++) {
        if ((s.disagreements[c] as number) > max) continue;
        if (best < 0) {
          best = c;
          continue;
        }
        const lc = s.latencyTotalMs[c] as number;
        const lb = s.latencyTotalMs[best] as number;
        if (lc < lb - EPS || (Math.abs(lc - lb) <= EPS && (s.disagreements[c] as number) < (s.disagreements[best] as number))) best = c;
      }
      if (best < 0) continue;
      const candidate: Point = { vector: current.vector, latency: s.latencyTotalMs[best] as number, disagreements: s.disagreements[best] as number };
      if (better(candidate, current)) {
        current.vector[j] = best === 0 ? Number.POSITIVE_INFINITY : (cands[best - 1] as number);
        current.latency = candidate.latency;
        current.disagreements = candidate.disagreements;
        moved = true;
      }
    }
    if (!moved) break;
  }
  return current;
}

/** Coordinate ascent on latency + λ · disagreements (no constraint), from `start` or all-never. */
function lagrangianAscent(ev: WindowEvaluator, lambda: number, candidates: Float64Array[], passes: number, start?: Point): Point {
  const vector = start ? Float64Array.from(start.vector) : ev.neverVector();
  let totals = start ? { latencyTotalMs: start.latency, disagreements: start.disagreements } : ev.totals(vector);
  for (let pass = 0; pass < passes; pass++) {
    let moved = false;
    for (let j = 0; j < vector.length; j++) {
      const cands = candidates[j] as Float64Array;
      const s = ev.sweep(j, vector, cands);
      const objective = (c: number): number => (s.latencyTotalMs[c] as number) + lambda * (s.disagreements[c] as number);
      const currentObjective = totals.latencyTotalMs + lambda * totals.disagreements;
      let best = 0;
      for (let c = 1; c <= cands.length; c++) if (objective(c) < objective(best) - EPS) best = c;
      if (objective(best) < currentObjective - EPS) {
        vector[j] = best === 0 ? Number.POSITIVE_INFINITY : (cands[best - 1] as number);
        totals = { latencyTotalMs: s.latencyTotalMs[best] as number, disagreements: s.disagreements[best] as number };
        moved = true;
      }
    }
    if (!moved) break;
  }
  return { vector, latency: totals.latencyTotalMs, disagreements: totals.disagreements };
}

/** The search described at the top of this file; returns the best threshold vector found. */
export function searchThresholds(ev: WindowEvaluator, options: ThresholdSearchOptions): Float64Array {
  const never = ev.neverVector();
  const neverTotals = ev.totals(never);
  let best: Point = { vector: never, latency: neverTotals.latencyTotalMs, disagreements: neverTotals.disagreements };
  const max = options.maxDisagreements;
  if (max < 0 || ev.activeRamps.length === 0 || ev.rows === 0) return best.vector;
  const candidates = ev.activeRamps.map((_, j) => ev.candidates(j, options.candidates));
  const consider = (p: Point): void => {
    if (p.disagreements <= max && better(p, best)) best = { vector: Float64Array.from(p.vector), latency: p.latency, disagreements: p.disagreements };
  };

  consider(constrainedAscent(ev, best, candidates, max, options.passes));

  if (options.lagrangeSteps > 0) {
    // λ in ms of latency per disagreement. Above hi no disagreement is worth any saving.
    const m = ev.activeRamps.length;
    const spread = (ev.latencyMs[m] as number) - Math.min(...Array.from(ev.latencyMs.subarray(0, m)));
    let hi = Math.max(spread, EPS) * (ev.rows + 1);
    let lo = hi * 1e-6;
    let bestLagrangian: Point | undefined;
    for (let step = 0; step < options.lagrangeSteps; step++) {
      const lambda = Math.sqrt(lo * hi);
      const p = lagrangianAscent(ev, lambda, candidates, options.passes);
      if (p.disagreements <= max) {
        hi = lambda;
        if (!bestLagrangian || better(p, bestLagrangian)) bestLagrangian = p;
      } else {
        lo = lambda;
      }
    }
    if (bestLagrangian) consider(constrainedAscent(ev, bestLagrangian, candidates, max, options.passes));
  }

  for (const seed of options.seeds ?? []) {
    const t = ev.totals(seed);
    if (t.disagreements > max) continue;
    const start: Point = { vector: Float64Array.from(seed), latency: t.latencyTotalMs, disagreements: t.disagreements };
    consider(start);
    consider(constrainedAscent(ev, start, candidates, max, options.passes));
  }
  return best.vector;
}

/** Describes a chosen setting on the window. */
export function describeChoice(ev: WindowEvaluator, vector: Float64Array, allowed: number, confidence: number): ThresholdChoice {
  const evaluation = ev.evaluate(vector);
  return {
    thresholds: ev.toThresholds(vector),
    disagreements: evaluation.disagreements,
    disagreementRate: evaluation.disagreementRate,
    upperBound: ev.countedRows > 0 ? clopperPearsonUpper(evaluation.disagreements, ev.countedRows, confidence) : 1,
    allowedDisagreements: allowed,
    savings: evaluation.savings,
    exitRates: evaluation.exitRates,
    rows: ev.rows,
  };
}

function checkBudget(budget: number, confidence: number): void {
  if (!(budget > 0 && budget < 1)) throw new RangeError(`budget must be in (0, 1), got ${budget}`);
  if (!(confidence > 0 && confidence < 1)) throw new RangeError(`confidence must be in (0, 1), got ${confidence}`);
}

/**
 * The strict-to-loose path on the fit rows, by steepest marginal rate: from all-never, repeatedly
 * loosen the one ramp whose next small step (at most `maxStep` candidates) saves the most latency
 * per added disagreement (steps that add none first), until no step saves time or the
 * disagreements pass `maxDisagreements`. Small steps keep the path fine-grained, so the test half
 * can stop it close to where the budget runs out. Meant for an evaluator with smoothed
 * disagreement (see WindowEvalOptions). The first entry is all-never. A generator: the test
 * stops at its first failure, and the path beyond it need not be computed.
 */
export interface PathPoint {
  vector: Float64Array;
  /** Totals on the evaluator the path was learned on. */
  latencyTotalMs: number;
  disagreements: number;
}

export function* frontierPath(ev: WindowEvaluator, options: { quantiles: number; maxDisagreements: number; maxStep?: number }): Generator<PathPoint> {
  const m = ev.activeRamps.length;
  const maxStep = options.maxStep ?? 3;
  const vector = ev.neverVector();
  const start = ev.totals(vector);
  let latency = start.latencyTotalMs;
  let disagreements = start.disagreements;
  yield { vector: Float64Array.from(vector), latencyTotalMs: latency, disagreements };
  if (m === 0 || ev.rows === 0) return;
  const candidates = ev.activeRamps.map((_, j) => ev.candidates(j, options.quantiles));
  /** Per ramp: 0 = never, c = candidates[c − 1]. */
  const position = new Int32Array(m);
  for (let step = 0; step < 100_000; step++) {
    let bestRamp = -1;
    let bestCandidate = 0;
    let bestFree = false;
    let bestValue = 0;
    let bestLatency = latency;
    let bestDisagreements = disagreements;
    for (let j = 0; j < m; j++) {
      const cands = candidates[j] as Float64Array;
      const from = position[j] as number;
      if (from >= cands.length) continue;
      const s = ev.sweep(j, vector, cands);
      for (let c = from + 1; c <= Math.min(cands.length, from + maxStep); c++) {
        const saved = latency - (s.latencyTotalMs[c] as number);
        if (saved <= EPS) continue;
        const total = s.disagreements[c] as number;
        if (total > options.maxDisagreements + EPS) continue;
        const added = total - disagreements;
        const free = added <= EPS;
        // Free steps rank by saving; others by saving per added disagreement.
        const value = free ? saved : saved / added;
        if (bestRamp < 0 || (free && !bestFree) || (free === bestFree && value > bestValue + EPS)) {
          bestRamp = j;
          bestCandidate = c;
          bestFree = free;
          bestValue = value;
          bestLatency = s.latencyTotalMs[c] as number;
          bestDisagreements = total;
        }
      }
    }
    if (bestRamp < 0) break;
    position[bestRamp] = bestCandidate;
    vector[bestRamp] = (candidates[bestRamp] as Float64Array)[bestCandidate - 1] as number;
    latency = bestLatency;
    disagreements = bestDisagreements;
    yield { vector: Float64Array.from(vector), latencyTotalMs: latency, disagreements };
  }
}

/**
 * Candidate thresholds per ramp for a path learned on `rows` rows over `ramps` ramps: one per
 * ~100 rows, from 32 up to 384 / ramps (128 for 3 ramps). Finer steps let the test stop closer
 * to where the budget runs out, but each step must still move enough learning rows to be told
 * apart from noise; and the path's cost grows with ramps² × candidates × rows (every step sweeps
 * every ramp), hence the cap. Measured on the bundled model's stationary trace (ramps 0, 3, 5;
 * 100 resampled windows, seeds 1–3; path learned on up to 20,000 older rows): 128 candidates
 * saved 91.7–94.4 % of the compliant reference where 32 saved 90.6–92.6 %. On 3,333 interleaved
 * rows, 64 made the shifted trace break the budget after the shift; the rule gives 33 there.
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
export function testPath(path: readonly Float64Array[], test: WindowEvaluator, options: PathTestOptions): GuardedChoice {
  checkBudget(options.budget, options.confidence);
  const target = options.windowRows ? windowSafeRate(options.windowRows, options.budget, options.confidence) : options.budget;
  const recent = options.recent;
  const recentAllowed = recent ? Math.floor(target * recent.countedRows + EPS) : 0;
  const allowed = maxAllowedDisagreements(test.countedRows, target, options.confidence);
  let best = test.neverVector();
  let bestLatency = test.totals(best).latencyTotalMs;
  let bestDisagreements = 0;
  let pathLength = 0;
  let passed = 0;
  if (allowed >= 0) {
    for (const vector of path) {
      pathLength++;
      const tested = test.totals(vector);
      if (tested.disagreements > allowed) break;
      if (recent && recent.totals(vector).disagreements > recentAllowed) break;
      passed++;
      if (tested.latencyTotalMs < bestLatency - EPS) {
        best = vector;
        bestLatency = tested.latencyTotalMs;
        bestDisagreements = tested.disagreements;
      }
    }
  }
  return {
    ...describeChoice(test, best, allowed, options.confidence),
    upperBound: test.countedRows > 0 ? clopperPearsonUpper(bestDisagreements, test.countedRows, options.confidence) : 1,
    fitRows: options.fitRows,
    certifyRows: test.rows,
    certifyDisagreements: bestDisagreements,
    certifyAllowed: allowed,
    pathLength,
    passed,
  };
}

/**
 * Guarded thresholds for a window of records (oldest first): learn a path on one row in
 * `fitEvery`, test it in order on the others, keep the best setting that passed (see the top of
 * this file).
 */
export function guardedThresholds(records: readonly FeedbackRecord[], window: WindowEvalOptions, options: GuardedOptions): GuardedChoice {
  checkBudget(options.budget, options.confidence);
  // Interleaved parts: both equally recent, so drift within the window affects both alike.
  const every = options.fitEvery ?? 2;
  const full = new WindowEvaluator(records, window);
  const fitEv = full.subset((i) => i % every === 0, { smoothDisagreement: true });
  const testEv = full.subset((i) => i % every !== 0);
  const recentFrom = options.recentRows !== undefined && options.recentRows < full.rows ? full.rows - options.recentRows : null;
  const target = options.windowRows ? windowSafeRate(options.windowRows, options.budget, options.confidence) : options.budget;
  // No path to learn when the test part is too small for the bound to allow any exit.
  const testable = maxAllowedDisagreements(testEv.countedRows, target, options.confidence) >= 0;
  const path = testable ? learnPath(fitEv, { budget: options.budget, ...(options.quantiles !== undefined ? { quantiles: options.quantiles } : {}) }) : [];
  return testPath(path, testEv, {
    budget: options.budget,
    confidence: options.confidence,
    fitRows: fitEv.rows,
    ...(options.windowRows !== undefined ? { windowRows: options.windowRows } : {}),
    ...(recentFrom !== null ? { recent: full.subset((i) => i >= recentFrom) } : {}),
  });
}

export interface HindsightOptions {
  budget: number;
  /** Only to report the upper bound of the choice (default 0.95). */
  confidence?: number;
  /** Extra starting points (e.g. the tuner's own choice, so hindsight is never below it). */
  seeds?: readonly Float64Array[];
}

/** The best setting in hindsight: max savings with empirical disagreement ≤ budget on this window. */
export function hindsightOptimal(ev: WindowEvaluator, options: HindsightOptions): ThresholdChoice {
  const confidence = options.confidence ?? 0.95;
  checkBudget(options.budget, confidence);
  const allowed = Math.floor(options.budget * ev.countedRows + EPS);
  const vector = searchThresholds(ev, {
    maxDisagreements: allowed,
    candidates: 'all',
    // Measured: more passes or steps than this find nothing better on 1,000-row windows.
    passes: 5,
    lagrangeSteps: 14,
    seeds: options.seeds ?? [],
  });
  return describeChoice(ev, vector, allowed, confidence);
}
