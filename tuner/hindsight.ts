/**
 * The hindsight references: the best setting an oracle that saw the rows in advance would pick.
 * Neither is a tuner (both look at the very rows they are judged on); replay and the online
 * tuners' estimates measure the tuners against them.
 *
 * Per-window hindsight optimum (`hindsightOptimal`): the best setting on the very window with the
 * plain empirical constraint (≤ budget × rows disagreements), searched hard: coordinate ascent
 * from all-never, a Lagrangian relaxation with λ found by bisection (coordinate ascent alone gets
 * stuck when the first ramp takes the whole budget), a constrained polish, every recorded score a
 * candidate, plus caller-given starting points. The reference for "fraction of hindsight" — an
 * optimistic one, since it fits the noise of the window it is scored on.
 *
 * Compliant hindsight optimum (`compliantHindsight`): the best fixed thresholds for the trace's
 * traffic, chosen with all of it in view, that keep the budget in the share of windows the tuner
 * is asked to keep (`compliance`, 99 % by default). The per-window optimum re-fits every window
 * to disagree at exactly the budget on that very window — it fits the window's noise, and on
 * fresh rows of the same traffic it would break the budget in about half the windows. A tuner
 * held to "≥ 99 % of windows within budget" must run at a true rate r* where a window of
 * `windowRows` rows breaks the budget with probability ≤ 1 % (`windowSafeRate`); so does this
 * reference. It knows the traffic exactly (all rows of the trace are its distribution), so it
 * pays nothing for learning, for the statistical guard, or for starting at "never": it is the
 * most any online tuner could save at that compliance on this traffic.
 */
import { windowSafeRate } from './clopper-pearson.js';
import type { FeedbackRecord } from './feedback-record.js';
import { checkBudget, describeChoice, type ThresholdChoice } from './threshold-choice.js';
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
function constrainedAscent(
  ev: WindowEvaluator,
  start: Point,
  candidates: Float64Array[],
  max: number,
  passes: number,
): Point {
  const current: Point = {
    vector: Float64Array.from(start.vector),
    latency: start.latency,
    disagreements: start.disagreements,
  };
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
        if (
          lc < lb - EPS ||
          (Math.abs(lc - lb) <= EPS && (s.disagreements[c] as number) < (s.disagreements[best] as number))
        )
          best = c;
      }
      if (best < 0) continue;
      const candidate: Point = {
        vector: current.vector,
        latency: s.latencyTotalMs[best] as number,
        disagreements: s.disagreements[best] as number,
      };
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
function lagrangianAscent(
  ev: WindowEvaluator,
  lambda: number,
  candidates: Float64Array[],
  passes: number,
  start?: Point,
): Point {
  const vector = start ? Float64Array.from(start.vector) : ev.neverVector();
  let totals = start ? { latencyTotalMs: start.latency, disagreements: start.disagreements } : ev.totals(vector);
  for (let pass = 0; pass < passes; pass++) {
    let moved = false;
    for (let j = 0; j < vector.length; j++) {
      const cands = candidates[j] as Float64Array;
      const s = ev.sweep(j, vector, cands);
      const objective = (c: number): number =>
        (s.latencyTotalMs[c] as number) + lambda * (s.disagreements[c] as number);
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

/** The per-window search described at the top of this file; returns the best threshold vector found. */
export function searchThresholds(ev: WindowEvaluator, options: ThresholdSearchOptions): Float64Array {
  const never = ev.neverVector();
  const neverTotals = ev.totals(never);
  let best: Point = { vector: never, latency: neverTotals.latencyTotalMs, disagreements: neverTotals.disagreements };
  const max = options.maxDisagreements;
  if (max < 0 || ev.activeRamps.length === 0 || ev.rows === 0) return best.vector;
  const candidates = ev.activeRamps.map((_, j) => ev.candidates(j, options.candidates));
  const consider = (p: Point): void => {
    if (p.disagreements <= max && better(p, best))
      best = { vector: Float64Array.from(p.vector), latency: p.latency, disagreements: p.disagreements };
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
    // Enough for 1,000-row windows: more passes or steps were tried there and found nothing better.
    passes: 5,
    lagrangeSteps: 14,
    seeds: options.seeds ?? [],
  });
  return describeChoice(ev, vector, allowed, confidence);
}

export interface CompliantHindsight {
  thresholds: Map<number, number | null>;
  /** Savings over the whole trace. */
  savings: number;
  /** Disagreement over the whole trace (≤ `rate`). */
  disagreement: number;
  /** r*: the true rate at which a window keeps the budget with probability `compliance`. */
  rate: number;
  compliance: number;
}

/** The best fixed setting for all of `records` at the rate where a window keeps the budget with probability `compliance` (see the top of this file). */
export function compliantHindsight(
  records: readonly FeedbackRecord[],
  window: WindowEvalOptions,
  options: { budget: number; windowRows: number; compliance?: number },
): CompliantHindsight {
  const compliance = options.compliance ?? 0.99;
  const rate = windowSafeRate(options.windowRows, options.budget, compliance);
  const ev = new WindowEvaluator(records, window);
  const choice = hindsightOptimal(ev, { budget: rate });
  return {
    thresholds: choice.thresholds,
    savings: choice.savings,
    disagreement: choice.disagreementRate,
    rate,
    compliance,
  };
}

/**
 * The savings of a quicker hindsight search — 64 candidates per ramp, two passes, a short
 * Lagrangian phase — for a question the online tuners ask every half window: would any setting
 * of the active ramps save anything on these rows (online-tuner.ts, idle)? It finds at most what
 * `hindsightOptimal` finds, and near it where it matters: a setting that saves a little is found
 * either way.
 */
export function quickHindsightSavings(ev: WindowEvaluator, budget: number, seeds: readonly Float64Array[]): number {
  const allowed = Math.floor(budget * ev.countedRows + EPS);
  const vector = searchThresholds(ev, {
    maxDisagreements: allowed,
    candidates: 64,
    passes: 2,
    lagrangeSteps: 6,
    seeds,
  });
  return ev.evaluate(vector).savings;
}
