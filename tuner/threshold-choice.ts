/**
 * What every threshold search returns (guarded, hindsight, Apparate): the chosen setting and
 * how it does on the rows it was chosen on. Kept apart from the searches so none of them depends
 * on another for its result type.
 */
import { clopperPearsonUpper } from './clopper-pearson.js';
import type { WindowEvaluation, WindowEvaluator } from './window-eval.js';

export interface ThresholdChoice {
  thresholds: Map<number, number | null>;
  /** Disagreements of the chosen setting on the window, and their rate over counted rows. */
  disagreements: number;
  disagreementRate: number;
  /** Upper Clopper–Pearson bound of that rate at the tuner's confidence. */
  upperBound: number;
  /** The constraint the search worked under. */
  allowedDisagreements: number;
  savings: number;
  exitRates: Map<number, number>;
  rows: number;
}

/** Describes a chosen setting on the window. */
export function describeChoice(
  ev: WindowEvaluator,
  vector: Float64Array,
  allowed: number,
  confidence: number,
): ThresholdChoice {
  return describeFigures(ev.toThresholds(vector), ev.evaluate(vector), allowed, confidence);
}

/**
 * Describes a chosen setting from its figures on the window (a WindowEvaluation, or the same
 * figures from running totals: path-tally.ts).
 */
export function describeFigures(
  thresholds: Map<number, number | null>,
  figures: Pick<
    WindowEvaluation,
    'rows' | 'countedRows' | 'disagreements' | 'disagreementRate' | 'exitRates' | 'savings'
  >,
  allowed: number,
  confidence: number,
): ThresholdChoice {
  return {
    thresholds,
    disagreements: figures.disagreements,
    disagreementRate: figures.disagreementRate,
    upperBound:
      figures.countedRows > 0 ? clopperPearsonUpper(figures.disagreements, figures.countedRows, confidence) : 1,
    allowedDisagreements: allowed,
    savings: figures.savings,
    exitRates: figures.exitRates,
    rows: figures.rows,
  };
}

/** Throws a RangeError unless 0 < budget < 1 and 0 < confidence < 1. */
export function checkBudget(budget: number, confidence: number): void {
  if (!(budget > 0 && budget < 1)) throw new RangeError(`budget must be in (0, 1), got ${budget}`);
  if (!(confidence > 0 && confidence < 1)) throw new RangeError(`confidence must be in (0, 1), got ${confidence}`);
}
