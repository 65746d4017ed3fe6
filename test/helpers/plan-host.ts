/** A stand-in for the ModelRunner that LiveTuning drives, for tests of the live exit plan. */
import type { ExitPlan } from '../../src/engine/backend.js';
import type { PlanHost } from '../../src/engine/live-tuning.js';
import type { FeedbackRecord } from '../../tuner/feedback-record.js';
import { exitPlan } from './exit-plans.js';

/** Holds the plan LiveTuning sets; the test feeds finished batches' feedback through `feed`. */
export class PlanHostStub implements PlanHost {
  plansSet = 0;
  onFeedback: ((records: FeedbackRecord[]) => void) | undefined;
  constructor(public exitPlan: ExitPlan) {}
  setExitPlan(plan: ExitPlan): void {
    this.exitPlan = plan;
    this.plansSet++;
  }
  /** The records, in batches of 16 rows, as a runner's finished batches hand them over. */
  feed(records: readonly FeedbackRecord[]): void {
    for (let i = 0; i < records.length; i += 16) this.onFeedback?.(records.slice(i, i + 16));
  }
  thresholds(): Record<number, number | null> {
    return Object.fromEntries(this.exitPlan.ramps.map((r) => [r.id, r.threshold]));
  }
}

/** The confidence policy in release mode with every one of `ramps` at "never". */
export function neverPlan(ramps: readonly number[]): ExitPlan {
  return exitPlan(ramps.map((id) => ({ id, threshold: null })));
}
