/**
 * The compliant hindsight optimum: the best fixed thresholds for the trace's traffic, chosen with
 * all of it in view, that keep the budget in the share of windows the tuner is asked to keep
 * (`compliance`, 99 % by default).
 *
 * This is the reference replay judges the tuner's savings against, beside the per-window
 * hindsight optimum of guarded.ts. That one re-fits every window to disagree at exactly the
 * budget on that very window — it fits the window's noise, and on fresh rows of the same traffic
 * it would break the budget in about half the windows. A tuner held to "≥ 99 % of windows within
 * budget" must run at a true rate r* where a window of `windowRows` rows breaks the budget with
 * probability ≤ 1 % (0.48 % for a 1 % budget over 1,000 rows; `windowSafeRate`); so does this
 * reference. It knows the traffic exactly (all rows of the trace are its distribution), so it
 * pays nothing for learning, for the statistical guard, or for starting at "never": it is the
 * most any online tuner could save at that compliance on this traffic.
 */
import { windowSafeRate } from './clopper-pearson.js';
import type { FeedbackRecord } from './feedback-record.js';
import { hindsightOptimal } from './guarded.js';
import { WindowEvaluator, type WindowEvalOptions } from './window-eval.js';

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

export function compliantHindsight(
  records: readonly FeedbackRecord[],
  window: WindowEvalOptions,
  options: { budget: number; windowRows: number; compliance?: number },
): CompliantHindsight {
  const compliance = options.compliance ?? 0.99;
  const rate = windowSafeRate(options.windowRows, options.budget, compliance);
  const ev = new WindowEvaluator(records, window);
  const choice = hindsightOptimal(ev, { budget: rate });
  return { thresholds: choice.thresholds, savings: choice.savings, disagreement: choice.disagreementRate, rate, compliance };
}
