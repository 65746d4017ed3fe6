/**
 * Connects the online tuner (tuner/online-tuner.ts, pure) to a running model: every finished
 * batch's feedback goes in, and whenever the tuner changes thresholds or the ramp set, the new
 * exit plan applies from the next batch. Only for `tuner: guarded | apparate`; `static` and `off`
 * keep the plan they start with.
 */
import type { PreparedManifest } from '../../ramps/manifest.js';
import { OnlineTuner, type TunerEstimates } from '../../tuner/online-tuner.js';
import type { ModelConfig } from '../config/index.js';
import type { ModelRunner } from './model-runner.js';

export interface LiveTuning {
  readonly tuner: OnlineTuner;
  estimates(): TunerEstimates;
}

export function attachTuner(runner: ModelRunner, manifest: PreparedManifest, config: ModelConfig): LiveTuning | undefined {
  const kind = config.tuner.kind;
  if (kind !== 'guarded' && kind !== 'apparate') return undefined;
  const plan = runner.exitPlan;
  const tuner = new OnlineTuner({
    kind,
    rule: { policy: plan.policy, patience: plan.patience },
    profile: manifest.profile,
    budget: config.accuracy.budget,
    confidence: config.accuracy.confidence,
    window: config.accuracy.window,
    activeRamps: plan.ramps.map((r) => r.id),
    thresholds: new Map(plan.ramps.map((r) => [r.id, r.threshold])),
    // The ramp set stays the one the model started with: live ramp-set changes (prune/add) are
    // not enabled yet — on the bundled model they pruned every ramp before thresholds opened.
  });
  runner.onFeedback = (records) => {
    if (tuner.observe(records).length === 0) return;
    const thresholds = tuner.thresholds;
    runner.setExitPlan({ ...runner.exitPlan, ramps: tuner.activeRamps.map((id) => ({ id, threshold: thresholds.get(id) ?? null })) });
  };
  return { tuner, estimates: () => tuner.estimates };
}
