/**
 * Which ramps pay for themselves, and where to try a new one (after Apparate; docs/algorithms.md).
 *
 * Utility of active ramp k on a window, per row, in ms:
 *     exit_rate_k · (L_next − L_k)  −  pass_rate_k · cost_k
 * where L_k is the time to answer at k, L_next the time to answer at the next active ramp (or
 * the final layer) — what a row exiting at k would otherwise have waited at least — pass_rate_k
 * the share of rows that reach k and go on, and cost_k k's head latency, which those rows pay
 * for nothing. Measured under the thresholds in force, so a ramp the tuner cannot open
 * (threshold "never") has negative utility.
 *
 * `rampSetDecision` turns utilities into a proposal — drop ramps with utility ≤ 0 (and the least
 * useful beyond `maxRamps` or the overhead budget), try one new position between the last kept
 * ramp and the latest useful cut — and returns it; the caller (online-tuner.ts) decides when to act.
 */
import type { ExitRule } from './exit-policy.js';
import type { FeedbackRecord } from './feedback-record.js';
import { atBatch, exitCostMs, latencyToAnswer, rampOverheadShare, type LatencyProfileData } from './latency-model.js';
import { WindowEvaluator, type Thresholds } from './window-eval.js';

export interface RampUtility {
  rampId: number;
  /** Share of the window's rows answered at this ramp. */
  exitRate: number;
  /** Share of rows that reached this ramp and went on. */
  passRate: number;
  /** L_next − L_k, ms. */
  gainMs: number;
  /** The head's latency, ms. */
  costMs: number;
  /** exitRate · gainMs − passRate · costMs, ms per row. */
  utilityMs: number;
  /** utilityMs as a share of vanilla latency. */
  utilityShare: number;
}

export interface RampUtilityOptions {
  activeRamps: readonly number[];
  thresholds: Thresholds;
  rule: ExitRule;
  profile: LatencyProfileData;
  batchSize?: number;
}

/** Utility of every active ramp on a window of records, in model order. */
export function rampUtilities(records: readonly FeedbackRecord[], options: RampUtilityOptions): RampUtility[] {
  const batchSize = options.batchSize ?? 1;
  const active = options.activeRamps;
  const ev = new WindowEvaluator(records, {
    activeRamps: active,
    rule: options.rule,
    profile: options.profile,
    batchSize,
  });
  const evaluation = ev.evaluate(options.thresholds);
  const n = Math.max(1, evaluation.rows);
  const vanilla = atBatch(options.profile, options.profile.fullModelMs, batchSize) || 1;
  const exitCounts = new Map<number, number>();
  for (const e of evaluation.exits) if (e >= 0) exitCounts.set(e, (exitCounts.get(e) ?? 0) + 1);
  let reached = evaluation.rows;
  return active.map((id, j) => {
    const exited = exitCounts.get(id) ?? 0;
    const exitRate = exited / n;
    const passRate = Math.max(0, reached - exited) / n;
    reached -= exited;
    const next = j + 1 < active.length ? (active[j + 1] as number) : -1;
    const gainMs =
      latencyToAnswer(options.profile, active, next, batchSize) -
      latencyToAnswer(options.profile, active, id, batchSize);
    const costMs = exitCostMs(options.profile, id, batchSize);
    const utilityMs = exitRate * gainMs - passRate * costMs;
    return { rampId: id, exitRate, passRate, gainMs, costMs, utilityMs, utilityShare: utilityMs / vanilla };
  });
}

export interface RampSetInput {
  utilities: readonly RampUtility[];
  activeRamps: readonly number[];
  /** Every position that has a trained head, in model order. */
  availableRamps: readonly number[];
  profile: LatencyProfileData;
  batchSize?: number;
  maxRamps: number;
  /** Largest total head cost as a share of full-model latency. */
  rampBudget: number;
  /** Positions not to propose now (e.g. dropped recently). */
  exclude?: readonly number[];
  /** Ramps not to drop now (e.g. added too recently to judge). */
  protect?: readonly number[];
}

export interface RampSetDecision {
  /** Ramps to deactivate. */
  drop: number[];
  /** A position to activate (at "never"), or null. */
  add: number | null;
  /** Ramps kept, in model order. */
  keep: number[];
  /** The latest position where a ramp can still answer sooner than the full model, or null. */
  latestUsefulCut: number | null;
  /** Head overhead share of the resulting set. */
  overheadShare: number;
  /** Why, in words (for logs and /exits). */
  reasons: string[];
}

/**
 * Latest available position where answering (with that ramp alone active) is still faster than
 * the full model: past it a ramp can only cost.
 */
export function latestUsefulCut(
  profile: LatencyProfileData,
  availableRamps: readonly number[],
  batchSize = 1,
): number | null {
  const vanilla = atBatch(profile, profile.fullModelMs, batchSize);
  let latest: number | null = null;
  for (const r of availableRamps)
    if (latencyToAnswer(profile, [r], r, batchSize) < vanilla) latest = latest === null ? r : Math.max(latest, r);
  return latest;
}

/** Proposes ramp-set changes; applies nothing. */
export function rampSetDecision(input: RampSetInput): RampSetDecision {
  const batchSize = input.batchSize ?? 1;
  const protect = new Set(input.protect ?? []);
  const utilityOf = new Map(input.utilities.map((u) => [u.rampId, u.utilityMs]));
  const reasons: string[] = [];
  const drop: number[] = [];
  let keep = [...input.activeRamps];

  for (const id of input.activeRamps) {
    const u = utilityOf.get(id);
    if (u !== undefined && u <= 0 && !protect.has(id)) {
      drop.push(id);
      reasons.push(`ramp ${id}: utility ${u.toFixed(4)} ms/row ≤ 0`);
    }
  }
  keep = keep.filter((id) => !drop.includes(id));
  // Over the ramp count or the overhead budget: drop the least useful until within both.
  const overBudget = (set: number[]): boolean =>
    set.length > input.maxRamps || rampOverheadShare(input.profile, set, batchSize) > input.rampBudget + 1e-12;
  while (keep.length > 0 && overBudget(keep)) {
    const candidates = keep.filter((id) => !protect.has(id));
    const pool = candidates.length > 0 ? candidates : keep;
    const worst = pool.reduce((a, b) => ((utilityOf.get(b) ?? 0) < (utilityOf.get(a) ?? 0) ? b : a));
    keep = keep.filter((id) => id !== worst);
    drop.push(worst);
    reasons.push(
      `ramp ${worst}: least useful while over max_ramps (${input.maxRamps}) or ramp_budget (${input.rampBudget})`,
    );
  }

  const latest = latestUsefulCut(input.profile, input.availableRamps, batchSize);
  let add: number | null = null;
  if (latest !== null && keep.length < input.maxRamps) {
    const exclude = new Set([...(input.exclude ?? []), ...input.activeRamps]);
    const last = keep.length > 0 ? Math.max(...keep) : Math.min(...input.availableRamps) - 1;
    const middle = (last + latest) / 2;
    const options = input.availableRamps
      .filter((r) => r > last && r <= latest && !exclude.has(r))
      .filter((r) => rampOverheadShare(input.profile, [...keep, r], batchSize) <= input.rampBudget + 1e-12)
      .sort((a, b) => Math.abs(a - middle) - Math.abs(b - middle) || a - b);
    add = options[0] ?? null;
    if (add !== null) reasons.push(`try ramp ${add}: between the last kept ramp and the latest useful cut (${latest})`);
  }
  const finalSet = [...keep, ...(add !== null ? [add] : [])].sort((a, b) => a - b);
  return {
    drop: drop.sort((a, b) => a - b),
    add,
    keep: keep.sort((a, b) => a - b),
    latestUsefulCut: latest,
    overheadShare: rampOverheadShare(input.profile, finalSet, batchSize),
    reasons,
  };
}
