/**
 * The exit plan a model starts serving with: which ramps run and their thresholds.
 *
 *  - tuner `off`: no ramps (vanilla serving);
 *  - thresholds given in the SLO file: those ramps, those thresholds;
 *  - tuner `guarded` / `apparate`: the ramps chosen below, all at "never" — the online tuner
 *    loosens them as feedback comes in;
 *  - tuner `static`: thresholds calibrated offline by `prepare` on the bootstrap set
 *    (BranchyNet/SDN-style): pick up to `max_ramps` ramps by the compute they can save,
 *    and split the accuracy budget evenly among them, taking each ramp's threshold from its
 *    solo-exit curve at budget/k — the union bound keeps the total within budget on the
 *    bootstrap rows. Those curves are confidence thresholds, so this applies to the
 *    confidence and patience policies; entropy and margin start at "never".
 *
 * The online tuner (tuner/) replaces this plan as live feedback comes in.
 */
import type { PreparedManifest, RampEntry } from '../model/manifest.js';
import type { ModelConfig } from '../config/index.js';
import type { ExitPlan } from './backend.js';

/** The solo-curve point with the largest budget not above `budget` (strictest if none). */
function thresholdAt(ramp: RampEntry, budget: number): { threshold: number; exitFraction: number } {
  const points = [...ramp.soloCurve].sort((a, b) => a.budget - b.budget);
  let chosen = points[0];
  for (const p of points) if (p.budget <= budget + 1e-12) chosen = p;
  return chosen
    ? { threshold: chosen.threshold, exitFraction: chosen.exitFraction }
    : { threshold: 1.01, exitFraction: 0 };
}

/** Fraction of the full model's batch-1 latency a ramp's head costs. */
function overheadShare(manifest: PreparedManifest, rampId: number): number {
  const full = manifest.profile.fullModelMs[0] ?? 1;
  return (manifest.profile.headMs[rampId]?.[0] ?? 0) / full;
}

export function staticPlan(manifest: PreparedManifest, config: ModelConfig): ExitPlan {
  const base = {
    policy: config.exits.policy,
    patience: config.exits.patience,
    mode: config.exits.mode,
    feedbackFraction: config.exits.dropFeedbackFraction,
  };
  if (config.tuner.kind === 'off' || config.exits.maxRamps === 0) return { ...base, ramps: [] };
  const configured = config.exits.thresholds;
  if (configured) {
    const ramps = manifest.ramps
      .filter((r) => configured[r.id] !== undefined)
      .map((r) => ({ id: r.id, threshold: configured[r.id] as number }));
    return { ...base, ramps };
  }
  const byConfidence = config.exits.policy === 'confidence' || config.exits.policy === 'patience';
  const max = Math.min(config.exits.maxRamps, manifest.ramps.length);
  // Try k = 1..max ramps; keep the set with the best estimated saving at budget/k each.
  let best: { ramps: { id: number; threshold: number | null }[]; saving: number } = { ramps: [], saving: 0 };
  for (let k = 1; k <= max; k++) {
    const share = config.accuracy.budget / k;
    const scored = manifest.ramps
      .map((r) => {
        const point = thresholdAt(r, share);
        return { r, point, value: point.exitFraction * (1 - r.computeBefore) - overheadShare(manifest, r.id) };
      })
      .filter((x) => x.value > 0)
      .sort((a, b) => b.value - a.value)
      .slice(0, k);
    if (scored.length < k) break;
    // Rows exit at the first ramp that fires; this adds up solo figures, an optimistic but
    // consistent way to compare sets of the same ramps.
    const saving = scored.reduce((s, x) => s + x.value, 0);
    if (saving > best.saving) {
      best = {
        saving,
        ramps: scored
          .map((x) => ({
            id: x.r.id,
            threshold: byConfidence && config.tuner.kind === 'static' ? x.point.threshold : null,
          }))
          .sort((a, b) => a.id - b.id),
      };
    }
  }
  return { ...base, ramps: best.ramps };
}
