/**
 * The exit plan a model starts serving with: which ramps run and their thresholds.
 *
 *  - tuner `off`: no ramps (vanilla serving);
 *  - thresholds given in the SLO file: those ramps, those thresholds;
 *  - tuner `static`: thresholds calibrated offline by `prepare` on the bootstrap set
 *    (BranchyNet/SDN-style): pick up to `max_ramps` ramps by the compute they can save,
 *    and split the accuracy budget evenly among them, taking each ramp's threshold from its
 *    solo-exit curve at budget/k — the union bound keeps the total within budget on the
 *    bootstrap rows (tuner/calibration.ts). Those curves are confidence thresholds, so this
 *    applies to the confidence and patience policies; entropy and margin start at "never";
 *  - tuner `guarded` with `tuner.start: calibrated` (the default): the same ramps, calibrated the
 *    same way but at the window-safe rate (`calibratedStartRate`) instead of the budget — a
 *    stricter start that leaves the margin the guard itself keeps, because these thresholds were
 *    calibrated on bootstrap rows, not on live traffic. The guard watches them from the first
 *    row (a broken window or a drift sends every ramp to "never") and replaces them at its first
 *    re-tune that has enough rows to test a setting;
 *  - tuner `apparate`, or `guarded` with `tuner.start: never`: the same ramps, all at "never" —
 *    the online tuner loosens them as feedback comes in.
 *
 * The online tuner (tuner/) replaces this plan as live feedback comes in. A disabled ramp (its
 * head failed to load, src/model/ramp-head.ts) is never chosen, nor kept from the SLO file's
 * thresholds.
 */
import { calibratedStartRate, calibratedThresholds, soloPointAt } from '../../tuner/calibration.js';
import type { CalibratedRamp } from '../../tuner/calibration.js';
import type { LatencyProfileData } from '../../tuner/latency-model.js';
import type { TraceHeader } from '../../tuner/replay.js';
import type { ModelConfig } from '../config/index.js';
import type { ExitPlan } from './backend.js';
import { isOnlineTunerKind } from '../../tuner/tuner.js';

/**
 * What a plan is chosen from: the model's ramps (where each sits, its solo-exit curve from
 * `prepare`) and its latency profile. A prepared manifest is one; so is a trace's header, which
 * is how replay starts where the server would (src/cli/replay-command.ts).
 */
export interface PlanningView {
  ramps: readonly (CalibratedRamp & { computeBefore: number })[];
  profile: Pick<LatencyProfileData, 'fullModelMs' | 'headMs'>;
}

/** A trace's header as what a plan is chosen from: its ramps (without curves: none to choose by) and profile. */
export function tracePlanningView(header: Pick<TraceHeader, 'ramps' | 'profile'>): PlanningView {
  return { ramps: header.ramps.map((r) => ({ ...r, soloCurve: r.soloCurve ?? [] })), profile: header.profile };
}

/** Fraction of the full model's batch-1 latency a ramp's head costs. */
function overheadShare(manifest: PlanningView, rampId: number): number {
  const full = manifest.profile.fullModelMs[0] ?? 1;
  return (manifest.profile.headMs[rampId]?.[0] ?? 0) / full;
}

export function staticPlan(
  manifest: PlanningView,
  config: ModelConfig,
  disabled: ReadonlyMap<number, string> = new Map(),
): ExitPlan {
  const base = {
    policy: config.exits.policy,
    patience: config.exits.patience,
    mode: config.exits.mode,
    feedbackFraction: config.exits.dropFeedbackFraction,
  };
  if (config.tuner.kind === 'off' || config.exits.maxRamps === 0) return { ...base, ramps: [] };
  const servable = manifest.ramps.filter((r) => !disabled.has(r.id));
  const configured = config.exits.thresholds;
  if (configured) {
    const ramps = servable
      .filter((r) => configured[r.id] !== undefined)
      .map((r) => ({ id: r.id, threshold: configured[r.id] as number }));
    return { ...base, ramps };
  }
  const max = Math.min(config.exits.maxRamps, servable.length);
  // Try k = 1..max ramps; keep the set with the best estimated saving at budget/k each.
  let best: { ramps: PlanningView['ramps'][number][]; saving: number } = { ramps: [], saving: 0 };
  for (let k = 1; k <= max; k++) {
    const share = config.accuracy.budget / k;
    const scored = servable
      .map((r) => {
        const point = soloPointAt(r, share);
        return { r, value: point.exitFraction * (1 - r.computeBefore) - overheadShare(manifest, r.id) };
      })
      .filter((x) => x.value > 0)
      .sort((a, b) => b.value - a.value)
      .slice(0, k);
    if (scored.length < k) break;
    // Rows exit at the first ramp that fires; this adds up solo figures, an optimistic but
    // consistent way to compare sets of the same ramps.
    const saving = scored.reduce((s, x) => s + x.value, 0);
    if (saving > best.saving) best = { saving, ramps: scored.map((x) => x.r).sort((a, b) => a.id - b.id) };
  }
  const rate = startRate(config);
  const thresholds =
    rate === null ? new Map<number, null>() : calibratedThresholds(best.ramps, rate, config.exits.policy);
  return { ...base, ramps: best.ramps.map((r) => ({ id: r.id, threshold: thresholds.get(r.id) ?? null })) };
}

/** The rate the plan's thresholds are calibrated at; null: they start at "never". */
function startRate(config: ModelConfig): number | null {
  if (config.tuner.kind === 'static') return config.accuracy.budget;
  if (config.tuner.kind === 'guarded' && config.tuner.start === 'calibrated')
    return calibratedStartRate(config.accuracy);
  return null;
}

/**
 * The plan a model starts serving with (and gets again on a config reload), whether or not a
 * cascade stands in front of it. `prepared` is the model's own manifest; `disabled` is keyed by
 * exit id (for a cascade: tiers 0..T−1, then ramp r as exit T + r, src/model/cascade.ts).
 *
 * A cascade's plan: its tiers, each at its fixed θ (tuner static) or, when tuned under the guarded
 * tuner with `tuner.start: calibrated`, at the strict end of its rule's range — θ = 1 for the vote
 * rule (ABC's default: all agree), `STRICT_SCORE_START` for the score rule — which the guard checks
 * from the first row, as it checks calibrated ramps, and replaces at its first tested re-tune (a
 * tier has no bootstrap calibration to start from: its members are whatever the SLO file names);
 * at "never" otherwise. Then the backbone's ramps as `staticPlan` chooses them — at "never" under
 * an online tuner (below). With tuner `off`, nothing: the tiers do not run either.
 */
export function servingPlan(
  prepared: PlanningView,
  config: ModelConfig,
  disabled: ReadonlyMap<number, string> = new Map(),
): ExitPlan {
  const cascade = config.cascade;
  if (!cascade) return staticPlan(prepared, config, disabled);
  const T = cascade.tiers.length;
  const backboneDisabled = new Map(
    [...disabled].filter(([id]) => id >= T).map(([id, reason]) => [id - T, reason] as const),
  );
  const chosen = staticPlan(prepared, config, backboneDisabled);
  if (config.tuner.kind === 'off') return chosen;
  // Behind a tier, the ramps see only the rows the tier passed on — those its members could not
  // agree on, harder than the bootstrap rows the ramps were calibrated on — so under an online
  // tuner they start at "never" and open as the guard learns them on those rows. (Started at
  // their calibrated thresholds, a breach there sends every exit, the tiers too, to "never".)
  const backbone = isOnlineTunerKind(config.tuner.kind)
    ? { ...chosen, ramps: chosen.ramps.map((r) => ({ ...r, threshold: null })) }
    : chosen;
  const tiers = cascade.tiers
    .map((tier, id) => ({ id, threshold: tierStart(tier.theta, tier.rule, config) }))
    .filter((t) => !disabled.has(t.id));
  return { ...backbone, ramps: [...tiers, ...backbone.ramps.map((r) => ({ ...r, id: r.id + T }))] };
}

/** A tuned score-rule tier's calibrated start: the members' mean probability of their answer ≥ 0.99. */
const STRICT_SCORE_START = 0.99;

function tierStart(theta: number | 'tuned', rule: 'vote' | 'score', config: ModelConfig): number | null {
  if (theta !== 'tuned') return theta;
  if (config.tuner.kind !== 'guarded' || config.tuner.start !== 'calibrated') return null;
  return rule === 'vote' ? 1 : STRICT_SCORE_START;
}
