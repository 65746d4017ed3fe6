/**
 * What-if: the thresholds a tuner would choose at another accuracy budget on a window of
 * feedback, and how they would do there, beside the thresholds in force (the dashboard's budget
 * slider; src/data-plane/engine-data-plane.ts `whatIf`). Pure and deterministic: it runs the
 * tuners' own choice functions on the rows it is given and touches no tuner.
 *
 * Which choice, by tuner kind:
 *  - guarded: the guarded search as the guarded tuner runs it on a short history
 *    (`interleavedSearch`, guarded-tuner.ts: one row in three learns the path, the others test
 *    it, the bound held below the window-safe rate and the budget kept on the last `window`
 *    rows). On the same rows and options it is the tuner's own choice; the live tuner itself,
 *    once its history is long, learns on older rows and tests on up to ten windows, which the
 *    served feedback window does not hold — so at the tuner's own budget the what-if can differ
 *    from the thresholds in force (usually it is stricter: fewer test rows, a looser bound);
 *  - apparate: Apparate's hill-climb (apparate.ts) on all the rows (the tuner climbs on its last
 *    few batches only); it has no statistical bound, so `upperBound` is null;
 *  - static and off: no tuner chooses anything while they serve; the guarded choice shows what the
 *    guarded tuner would set on these rows (for `off`, with no ramps, that is nothing).
 *
 * Rows: the probes (an unbiased sample: in drop mode a row that is not one stays to the end only
 * when no ramp took it) that carry a reading of every active ramp, as the tuners learn from. The
 * chosen and the current thresholds are both judged on all of those rows, so the two columns
 * compare like with like; the guarded choice's `upperBound` is its bound on its test rows.
 */
import { carriesReadings, isProbe, type FeedbackRecord } from './feedback-record.js';
import { guardedThresholds } from './guarded.js';
import { interleavedSearch } from './guarded-tuner.js';
import { apparateThresholds } from './apparate.js';
import type { SettingJudgeOptions, TunerSetting } from './tuner.js';
import { WindowEvaluator, type Thresholds, type WindowEvalOptions } from './window-eval.js';

/** `budget` is the budget to choose at (not necessarily the tuner's). */
export interface WhatIfOptions extends SettingJudgeOptions {
  kind: TunerSetting;
  /** Ramps the tuner chooses thresholds for (any order; judged in model order). */
  activeRamps: readonly number[];
  /** The thresholds in force (absent = "never"), judged on the same rows for comparison. */
  current: Thresholds;
}

/** A setting's figures on the what-if's rows. */
export interface WhatIfFigures {
  /** Active ramp id → threshold (null = never), in model order. */
  thresholds: Map<number, number | null>;
  /** Share of the rows answered by a ramp. */
  earlyShare: number;
  /** Share of the full model's latency saved (latency-model.ts). */
  savings: number;
  /** Disagreement with the full model over the rows whose final answer is known. */
  disagreement: number;
}

export interface WhatIfResult {
  /** Rows the figures are computed on (see the file comment); 0 when none could be. */
  rows: number;
  /** What the tuner would choose, and (guarded) its upper confidence bound on the disagreement. */
  chosen: WhatIfFigures & { upperBound: number | null };
  current: WhatIfFigures;
}

/** The rows a what-if can judge: probes that carry a reading of every active ramp. */
export function whatIfRows(records: readonly FeedbackRecord[], activeRamps: readonly number[]): FeedbackRecord[] {
  return records.filter((r) => isProbe(r) && carriesReadings(r, activeRamps));
}

/** What a tuner of `options.kind` would choose at `options.budget` on `records` (see the file comment). */
export function whatIf(records: readonly FeedbackRecord[], options: WhatIfOptions): WhatIfResult {
  const activeRamps = [...options.activeRamps].sort((a, b) => a - b);
  const rows = whatIfRows(records, activeRamps);
  const windowOptions: WindowEvalOptions = {
    activeRamps,
    rule: options.rule,
    profile: options.profile,
    batchSize: options.latencyBatchSize ?? 1,
  };
  const ev = new WindowEvaluator(rows, windowOptions);
  const { budget, confidence } = options;
  let thresholds: Map<number, number | null>;
  let upperBound: number | null;
  if (rows.length === 0) {
    // Nothing to choose on: every ramp stays at "never", with no bound to speak of.
    thresholds = new Map();
    upperBound = null;
  } else if (options.kind === 'apparate') {
    thresholds = apparateThresholds(ev, { budget, policy: options.rule.policy, confidence }).thresholds;
    upperBound = null;
  } else {
    const choice = guardedThresholds(rows, windowOptions, interleavedSearch(options));
    thresholds = choice.thresholds;
    upperBound = choice.upperBound;
  }
  const figures = (setting: Thresholds): WhatIfFigures => {
    const evaluation = ev.evaluate(setting);
    let early = 0;
    for (const rate of evaluation.exitRates.values()) early += rate;
    return {
      thresholds: new Map(activeRamps.map((id) => [id, setting.get(id) ?? null])),
      earlyShare: early,
      savings: evaluation.savings,
      disagreement: evaluation.disagreementRate,
    };
  };
  return { rows: rows.length, chosen: { ...figures(thresholds), upperBound }, current: figures(options.current) };
}
