/** Exit plans for executor-level tests (the backbone and cascade runners): the confidence policy. */
import type { ExitPlan } from '../../src/engine/backend.js';

export const exitPlan = (
  ramps: ExitPlan['ramps'],
  mode: ExitPlan['mode'] = 'release',
  feedbackFraction = 0,
): ExitPlan => ({
  policy: 'confidence',
  patience: 2,
  mode,
  feedbackFraction,
  ramps,
});
