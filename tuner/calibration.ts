/**
 * Offline calibration: thresholds read from each ramp's solo-exit curve, which `prepare`
 * measured on the bootstrap set's evaluation rows (src/model/manifest.ts `soloCurve`; traces
 * recorded by `offramp record` carry it in their header). The one calibration behind the static
 * plan's thresholds, the guarded tuner's calibrated start (src/engine/exit-plan.ts) and replay's
 * (replay.ts). Pure, like the rest of tuner/.
 */
import { windowSafeRate } from './clopper-pearson.js';
import type { ExitPolicyKind } from './exit-policy.js';

/** One point of a ramp's solo-exit curve: exiting alone at `threshold` disagreed on `budget` of rows and exited `exitFraction`. */
export interface SoloCurvePoint {
  budget: number;
  exitFraction: number;
  threshold: number;
}

/** What calibration reads of a ramp. */
export interface CalibratedRamp {
  id: number;
  soloCurve: readonly SoloCurvePoint[];
}

/** The solo-curve point with the largest budget not above `budget` (the strictest if none; "exits nothing" without a curve). */
export function soloPointAt(ramp: CalibratedRamp, budget: number): { threshold: number; exitFraction: number } {
  const points = [...ramp.soloCurve].sort((a, b) => a.budget - b.budget);
  let chosen = points[0];
  for (const p of points) if (p.budget <= budget + 1e-12) chosen = p;
  return chosen
    ? { threshold: chosen.threshold, exitFraction: chosen.exitFraction }
    : { threshold: 1.01, exitFraction: 0 };
}

/** Whether the solo curves calibrate this policy's thresholds (they are confidence thresholds). */
export function calibratesPolicy(policy: ExitPolicyKind): boolean {
  return policy === 'confidence' || policy === 'patience';
}

/**
 * Thresholds for a set of k ramps sharing the disagreement `rate`: each at its solo-curve point
 * for rate / k (the union bound keeps the set within `rate` on the bootstrap rows). Null
 * ("never") for every ramp when the policy is not one the curves calibrate.
 */
export function calibratedThresholds(
  ramps: readonly CalibratedRamp[],
  rate: number,
  policy: ExitPolicyKind,
): Map<number, number | null> {
  const share = rate / Math.max(1, ramps.length);
  return new Map(ramps.map((r) => [r.id, calibratesPolicy(policy) ? soloPointAt(r, share).threshold : null]));
}

/**
 * The rate the guarded tuner's calibrated start is calibrated at: the window-safe rate (the
 * rate at which a window of `window` rows keeps the budget with the given confidence; 0.62 % for
 * 1 % per 1,000 rows at 95 %), the target the guard holds its own choices below. The curves come
 * from a few hundred bootstrap rows, not live traffic: calibrated at the budget itself, the
 * start's true rate sits near the budget, where many windows break it by chance.
 */
export function calibratedStartRate(accuracy: { budget: number; confidence: number; window: number }): number {
  return windowSafeRate(accuracy.window, accuracy.budget, accuracy.confidence);
}
