/**
 * The serving thread's handle on the online tuner running in its worker (tuner-worker.ts).
 * Feedback goes in with `observe` and returns at once; when the tuner changes thresholds or the
 * ramp set, `onChange` runs with its new state. Between messages the handle serves the latest
 * state it heard (thresholds, ramp set, estimates), so readers never wait on the worker.
 */
import type { Worker } from 'node:worker_threads';
import type { FeedbackRecord } from '../../tuner/feedback-record.js';
import { noEstimates } from '../../tuner/feedback-history.js';
import type {
  FeedbackDemand,
  OnlineTunerKind,
  OnlineTunerOptions,
  TunerEstimates,
  TunerEvent,
} from '../../tuner/tuner.js';
import type { CompactResumePoint } from '../../tuner/resume.js';
import { spawnWorker } from './spawn-worker.js';

export type ToTuner =
  | { type: 'observe'; records: FeedbackRecord[] }
  | { type: 'withdraw'; ramp: number }
  | { type: 'resume-point'; id: number; maxRows: number };

export type FromTuner =
  | {
      type: 'state';
      events: TunerEvent[];
      thresholds: [number, number | null][];
      activeRamps: number[];
      estimates: TunerEstimates;
    }
  | { type: 'error'; message: string }
  /** The answer to a `resume-point` request; null when the tuner failed to give one (an error message came first). */
  | { type: 'resume-point'; id: number; point: CompactResumePoint | null };

export class TunerThread {
  readonly kind: OnlineTunerKind;
  /** Called with the tuner's events after it changed thresholds or the ramp set. */
  onChange: ((events: TunerEvent[]) => void) | undefined;
  /** Called when the tuner failed on a batch (the plan in force stays). */
  onError: ((message: string) => void) | undefined;
  private readonly worker: Worker;
  private currentThresholds: Map<number, number | null>;
  private currentRamps: number[];
  private currentEstimates: TunerEstimates = noEstimates();
  private closed = false;
  /** `resumePoint` requests the worker has not answered yet, by id. */
  private readonly pendingPoints = new Map<number, (point: CompactResumePoint | undefined) => void>();
  private nextPointId = 0;

  constructor(options: OnlineTunerOptions) {
    this.kind = options.kind;
    this.currentRamps = [...options.activeRamps].sort((a, b) => a - b);
    this.currentThresholds = new Map(this.currentRamps.map((id) => [id, options.thresholds?.get(id) ?? null]));
    this.worker = spawnWorker(import.meta.url, 'tuner-worker', options);
    // The tuner thread must not keep a finished process alive.
    this.worker.unref();
    this.worker.on('message', (message: FromTuner) => {
      if (message.type === 'error') {
        this.onError?.(message.message);
        return;
      }
      if (message.type === 'resume-point') {
        this.pendingPoints.get(message.id)?.(message.point ?? undefined);
        this.pendingPoints.delete(message.id);
        return;
      }
      this.currentThresholds = new Map(message.thresholds);
      this.currentRamps = message.activeRamps;
      this.currentEstimates = message.estimates;
      if (message.events.length > 0) this.onChange?.(message.events);
    });
    this.worker.on('error', (err) => this.onError?.(err.stack ?? String(err)));
  }

  /** Thresholds the tuner wants, per active ramp (null = never), as last heard. */
  get thresholds(): ReadonlyMap<number, number | null> {
    return this.currentThresholds;
  }

  /** Active ramps, in model order, as last heard. */
  get activeRamps(): readonly number[] {
    return this.currentRamps;
  }

  get estimates(): TunerEstimates {
    return this.currentEstimates;
  }

  /** Whether the tuner is learning, as last heard. */
  get learning(): boolean {
    return this.currentEstimates.learning;
  }

  /** The tuner's feedback demand, as last heard (the worker reports a change at once). */
  get feedbackDemand(): FeedbackDemand {
    return this.currentEstimates.feedbackDemand;
  }

  observe(records: readonly FeedbackRecord[]): void {
    if (this.closed || records.length === 0) return;
    this.worker.postMessage({ type: 'observe', records: [...records] } satisfies ToTuner);
  }

  /**
   * Ramp `id` can no longer run (Tuner.withdrawRamp). It leaves the state served here at once, so
   * no plan built before the worker answers names it; the worker's answer brings the rest.
   */
  withdrawRamp(id: number): void {
    this.currentRamps = this.currentRamps.filter((x) => x !== id);
    this.currentThresholds.delete(id);
    if (!this.closed) this.worker.postMessage({ type: 'withdraw', ramp: id } satisfies ToTuner);
  }

  /**
   * The tuner's resume point (Tuner.resumePoint), its rows compact, as of every batch observed
   * so far (the worker takes messages in order); undefined once closed or when the tuner failed.
   */
  resumePoint(maxRows: number): Promise<CompactResumePoint | undefined> {
    if (this.closed) return Promise.resolve(undefined);
    const id = ++this.nextPointId;
    return new Promise((resolve) => {
      this.pendingPoints.set(id, resolve);
      this.worker.postMessage({ type: 'resume-point', id, maxRows } satisfies ToTuner);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const resolve of this.pendingPoints.values()) resolve(undefined);
    this.pendingPoints.clear();
    await this.worker.terminate();
  }
}
