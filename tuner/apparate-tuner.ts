/**
 * The Apparate tuner (`tuner: apparate`): Apparate's hill-climb (apparate.ts) on the rows of its
 * last `windowBatches` batches (4 in Apparate). Its violation check is Apparate's: the realised
 * disagreement of those rows exceeds the budget, and it simply re-tunes on them — no tightening,
 * no statistical guard. A faithful baseline, not a tuner we recommend.
 */
import type { FeedbackRecord } from './feedback-record.js';
import { apparateThresholds } from './apparate.js';
import { breaksBudget, tally, type HistoryRow } from './feedback-history.js';
import { OnlineTuner } from './online-tuner.js';
import type { ThresholdChoice } from './threshold-choice.js';
import type { ApparateTunerOptions, TunerEvent } from './tuner.js';

export class ApparateTuner extends OnlineTuner<ApparateTunerOptions> {
  private readonly windowBatches: number;

  /** Apparate as published: it keeps its heads running whatever they save. */
  protected override readonly goesIdle = false;

  constructor(options: ApparateTunerOptions) {
    super(options);
    this.windowBatches = options.windowBatches ?? 4;
  }

  /** The realised window's rows, and every row of the last `windowBatches` batches. */
  protected override trimHistory(): void {
    this.history.trim(this.options.window, this.firstBatch());
  }

  protected override reactToViolation(): { events: TunerEvent[]; stop: boolean } {
    if (!breaksBudget(tally(this.windowRows()), this.options.budget)) return { events: [], stop: false };
    const event = this.retune('violation');
    return { events: event ? [event] : [], stop: false };
  }

  protected override choose(): { choice: ThresholdChoice; records: FeedbackRecord[] } | null {
    const records = this.usable(this.windowRows());
    if (records.length === 0) return null;
    const { budget, confidence, rule } = this.options;
    return {
      choice: apparateThresholds(this.evaluator(records), { budget, policy: rule.policy, confidence }),
      records,
    };
  }

  private firstBatch(): number {
    return this.history.batches - this.windowBatches;
  }

  private windowRows(): HistoryRow[] {
    return this.history.sinceBatch(this.firstBatch());
  }
}
