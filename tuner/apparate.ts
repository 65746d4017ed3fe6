/**
 * Apparate's threshold search (`tuner: apparate`), kept as a faithful baseline (Dai et al.,
 * SOSP 2024, `threshold_tuner.py: greedy_search`; docs/algorithms.md).
 *
 * A greedy hill-climb over one threshold per active ramp:
 *  - every ramp starts at "never"; loosening a ramp lowers its threshold by that ramp's own step
 *    (Apparate writes thresholds as 1 − confidence and raises them; same thing);
 *  - each round tries loosening every ramp by its step, on the window; a move is allowed when the
 *    window's disagreement stays within the budget (empirical: Apparate has no statistical guard);
 *  - among allowed moves that change the latency it takes the one with the least accuracy lost
 *    per latency gained (|Δdisagreement| / |Δsavings|); if none changes the latency, the first
 *    allowed one (so the climb can cross score ranges where no row sits);
 *  - the moved ramp's step doubles, and so does the step of every other allowed move that cost
 *    no accuracy or gained no latency (Apparate's "positive directions");
 *  - when nothing can move, every step above the minimum halves; when none can, the climb ends.
 *  Apparate runs the climb from three initial steps (0.0125, 0.025, 0.05; minimum 0.0125) and
 *  keeps the result with the most savings; so do we.
 *
 * Differences, on purpose: a ramp whose threshold is already below every score on the window is
 * not moved further (Apparate stops at threshold 1, i.e. confidence 0: the same for confidence;
 * this also bounds entropy, whose scores have no fixed floor). Apparate's Python treats "best
 * direction = ramp 0" as "no direction" (`if not best_direction`); we do not copy that bug.
 * Apparate's window is the last 4 batches; here the window is whatever the caller evaluates
 * (ApparateTuner, apparate-tuner.ts, keeps the last `windowBatches` batches).
 */
import type { ExitPolicyKind } from './exit-policy.js';
import { describeChoice, type ThresholdChoice } from './threshold-choice.js';
import type { WindowEvaluator, WindowTotals } from './window-eval.js';

export interface ApparateOptions {
  budget: number;
  policy: ExitPolicyKind;
  /** Initial step sizes to try (default Apparate's 0.0125, 0.025, 0.05). */
  initialSteps?: readonly number[];
  /** Smallest step (default 0.0125). */
  minStep?: number;
  /** Only to report the upper bound of the choice (default 0.95). */
  confidence?: number;
}

/** Highest score a policy can give: confidence, margin and patience ≤ 1, −entropy ≤ 0. */
export function highestScore(policy: ExitPolicyKind): number {
  return policy === 'entropy' ? 0 : 1;
}

/** Threshold Apparate starts from: just above the highest possible score, so nothing exits. */
export function apparateNever(policy: ExitPolicyKind): number {
  return highestScore(policy) + 1e-9;
}

interface ClimbResult {
  vector: Float64Array;
  totals: WindowTotals;
}

function climb(
  ev: WindowEvaluator,
  start: number,
  initialStep: number,
  minStep: number,
  allowed: number,
  floors: Float64Array,
): ClimbResult {
  const m = ev.activeRamps.length;
  const vector = new Float64Array(m).fill(start);
  const steps = new Float64Array(m).fill(initialStep);
  let current = ev.totals(vector);
  // Each move lowers a threshold by at least minStep, or a halving happens; both are bounded.
  for (let round = 0; round < 100_000; round++) {
    let best = -1;
    let bestScore = Number.POSITIVE_INFINITY;
    let bestTotals: WindowTotals | undefined;
    let firstAllowed = -1;
    let firstAllowedTotals: WindowTotals | undefined;
    const positive: number[] = [];
    for (let d = 0; d < m; d++) {
      if ((vector[d] as number) <= (floors[d] as number)) continue; // already lets every row out
      const trial = Float64Array.from(vector);
      trial[d] = (trial[d] as number) - (steps[d] as number);
      const t = ev.totals(trial);
      if (t.disagreements > allowed) continue;
      const latencyChanged = Math.abs(t.latencyTotalMs - current.latencyTotalMs) > 1e-9;
      if (latencyChanged) {
        const score =
          Math.abs(t.disagreements - current.disagreements) /
          Math.abs(ev.savingsOf(t.latencyTotalMs) - ev.savingsOf(current.latencyTotalMs));
        if (score < bestScore) {
          bestScore = score;
          best = d;
          bestTotals = t;
        }
      }
      if (firstAllowed < 0) {
        firstAllowed = d;
        firstAllowedTotals = t;
      }
      if (!latencyChanged || t.disagreements === current.disagreements) positive.push(d);
    }
    if (best < 0 && firstAllowed >= 0) {
      best = firstAllowed;
      bestTotals = firstAllowedTotals;
    }
    if (best >= 0 && bestTotals) {
      vector[best] = (vector[best] as number) - (steps[best] as number);
      steps[best] = (steps[best] as number) * 2;
      for (const d of positive) if (d !== best) steps[d] = (steps[d] as number) * 2;
      current = bestTotals;
      continue;
    }
    let halved = false;
    for (let d = 0; d < m; d++) {
      if ((steps[d] as number) <= minStep + 1e-12 || (vector[d] as number) <= (floors[d] as number)) continue;
      steps[d] = (steps[d] as number) / 2;
      halved = true;
    }
    if (!halved) break;
  }
  return { vector, totals: current };
}

/**
 * Apparate's acceptance of a setting: at most this many disagreements on `countedRows` rows
 * (the empirical rate within the budget; no statistical bound).
 */
export function apparateAllowed(countedRows: number, budget: number): number {
  return Math.floor(budget * countedRows + 1e-9);
}

/** Apparate's greedy hill-climb on the window; empirical disagreement ≤ budget × counted rows. */
export function apparateThresholds(ev: WindowEvaluator, options: ApparateOptions): ThresholdChoice {
  if (!(options.budget > 0 && options.budget < 1))
    throw new RangeError(`budget must be in (0, 1), got ${options.budget}`);
  const allowed = apparateAllowed(ev.countedRows, options.budget);
  const start = apparateNever(options.policy);
  const floors = Float64Array.from(ev.activeRamps, (_, j) => ev.lowestScore(j));
  let best: ClimbResult | undefined;
  for (const step of options.initialSteps ?? [0.0125, 0.025, 0.05]) {
    const result = climb(ev, start, step, options.minStep ?? 0.0125, allowed, floors);
    if (!best || result.totals.latencyTotalMs < best.totals.latencyTotalMs - 1e-9) best = result;
  }
  const vector = best ? best.vector : ev.neverVector();
  // Thresholds still above every possible score are reported as "never".
  const top = highestScore(options.policy);
  for (let j = 0; j < vector.length; j++) if ((vector[j] as number) > top) vector[j] = Number.POSITIVE_INFINITY;
  return describeChoice(ev, vector, allowed, options.confidence ?? 0.95);
}
