/**
 * The static tuner (`tuner: static`): the thresholds it was given ("never" for a ramp without
 * one), for good. It still keeps the realised window, so its estimates report the disagreement
 * of the answers it let through.
 */
import { carriesReadings, type FeedbackRecord } from './feedback-record.js';
import { checkTunerOptions, FeedbackHistory, noEstimates } from './feedback-history.js';
import type { StaticTunerOptions, Tuner, TunerEstimates, TunerEvent, TunerResumePoint } from './tuner.js';

export class StaticTuner implements Tuner {
  readonly kind = 'static';
  private readonly window: number;
  private readonly history: FeedbackHistory;
  private active: readonly number[];
  private readonly current: Map<number, number | null>;

  constructor(options: StaticTunerOptions) {
    checkTunerOptions(options);
    this.window = options.window;
    this.history = new FeedbackHistory(options.window);
    this.active = [...options.activeRamps].sort((a, b) => a - b);
    this.current = new Map(this.active.map((id) => [id, options.thresholds?.get(id) ?? null]));
  }

  get thresholds(): ReadonlyMap<number, number | null> {
    return this.current;
  }

  get activeRamps(): readonly number[] {
    return this.active;
  }

  /** A static tuner learns nothing. */
  readonly learning = false;
  /** Nothing to learn: the plan's own probe share. */
  readonly feedbackDemand = 'settled';

  get estimates(): TunerEstimates {
    return {
      ...noEstimates(),
      ...this.history.windowFigures(),
      learning: this.learning,
      feedbackDemand: this.feedbackDemand,
    };
  }

  /** The ramp leaves the active set; a static tuner reports no event (it never proposes a ramp set). */
  withdrawRamp(id: number): TunerEvent[] {
    this.active = this.active.filter((x) => x !== id);
    this.current.delete(id);
    return [];
  }

  /** Its fixed thresholds, and the rows of its realised window that carry every active ramp's reading. */
  resumePoint(maxRows: number): TunerResumePoint {
    const records = this.history
      .recent()
      .map((row) => row.record)
      .filter((record) => carriesReadings(record, this.active));
    return {
      activeRamps: [...this.active],
      thresholds: new Map(this.current),
      records: records.slice(Math.max(0, records.length - maxRows)),
    };
  }

  /** Keeps the rows for the estimates; changes nothing. */
  observe(records: readonly FeedbackRecord[]): TunerEvent[] {
    if (records.length === 0) return [];
    this.history.add(records);
    this.history.trim(this.window);
    return [];
  }
}
