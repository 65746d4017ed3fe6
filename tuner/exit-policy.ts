/**
 * Exit policies: how a ramp's softmax becomes a score, and when a row may leave.
 * Pure functions, shared by the executor (deciding exits live) and the tuner (replaying
 * recorded scores against candidate thresholds).
 *
 *   confidence  max p                       (higher = surer)
 *   entropy     −H(p)  (≤ 0)                (BranchyNet, DeeBERT)
 *   margin      p(1) − p(2)
 *   patience    max p, and the last m active ramps agree on the argmax (PABEE)
 *
 * A row exits at ramp k when its score ≥ τ_k. τ_k = null means "never": the ramp still scores
 * (so the tuner learns from it) but answers nothing. Every new ramp starts at "never".
 */

/** Every exit policy, in the order the SLO file and the CLIs list them. */
export const EXIT_POLICIES = ['confidence', 'entropy', 'margin', 'patience'] as const;
export type ExitPolicyKind = (typeof EXIT_POLICIES)[number];

/**
 * What happens to a row once a ramp answers it. release: it is answered early but runs to the
 * end (every row gives feedback); drop: it leaves the batch and saves compute (only probe rows
 * run to the end). Defined here, beside the policies, as the other half of "how rows exit".
 */
export const EXIT_MODES = ['release', 'drop'] as const;
export type ExitMode = (typeof EXIT_MODES)[number];

/**
 * Ramps that all stand at "never" (null), in either mode: no row can exit, so only probes need the
 * heads — their readings are what the tuner learns from — and every other row takes the unsplit
 * model as if no ramp were active. Probes are drawn for such a batch in release mode too, at the
 * plan's share (1 unless the tuner is idle: tuner.ts probeShareFor). The one definition the
 * executor (src/engine/executor/backbone-runner.ts), the latency model of a plan and replay use.
 */
export function isDormant(plan: { ramps: readonly { threshold: number | null }[] }): boolean {
  return plan.ramps.length > 0 && plan.ramps.every((r) => r.threshold === null);
}

/** Whether the executor draws probes for a batch under this plan (drop mode, or a dormant batch). */
export function drawsProbes(plan: { mode: ExitMode; ramps: readonly { threshold: number | null }[] }): boolean {
  return plan.ramps.length > 0 && (plan.mode === 'drop' || isDormant(plan));
}

/** Whether a string names an exit policy (for parsers of CLI options and trace headers). */
export function isExitPolicy(value: unknown): value is ExitPolicyKind {
  return (EXIT_POLICIES as readonly unknown[]).includes(value);
}

export interface RampReading {
  argmax: number;
  /** max p, reported for every policy (responses carry it as "confidence"). */
  confidence: number;
  /** The policy's score (see above). */
  score: number;
}

/** Reads one row of a [rows × classes] probability matrix. */
export function readRamp(policy: ExitPolicyKind, probs: ArrayLike<number>, row: number, classes: number): RampReading {
  const base = row * classes;
  let best = 0;
  let second = -1;
  for (let c = 1; c < classes; c++) {
    const p = probs[base + c] as number;
    if (p > (probs[base + best] as number)) {
      second = best;
      best = c;
    } else if (second < 0 || p > (probs[base + second] as number)) {
      second = c;
    }
  }
  const confidence = probs[base + best] as number;
  let score = confidence;
  if (policy === 'entropy') {
    let h = 0;
    for (let c = 0; c < classes; c++) {
      const p = probs[base + c] as number;
      if (p > 0) h -= p * Math.log(p);
    }
    score = -h;
  } else if (policy === 'margin') {
    score = confidence - (second >= 0 ? (probs[base + second] as number) : 0);
  }
  return { argmax: best, confidence, score };
}

/** Per-row state the patience policy needs across ramps: how many ramps in a row agreed. */
export interface Streak {
  argmax: number;
  length: number;
}

export function extendStreak(streak: Streak | undefined, argmax: number): Streak {
  return streak && streak.argmax === argmax ? { argmax, length: streak.length + 1 } : { argmax, length: 1 };
}

export interface ExitRule {
  policy: ExitPolicyKind;
  /** For patience: how many consecutive active ramps must agree. */
  patience: number;
}

/** Whether a row leaves at this ramp. `threshold` null = never. */
export function shouldExit(rule: ExitRule, threshold: number | null, reading: RampReading, streak: Streak): boolean {
  if (threshold === null) return false;
  if (rule.policy === 'patience' && streak.length < rule.patience) return false;
  return reading.score >= threshold;
}
