/**
 * One row's feedback: what each active ramp said and what the full model said. The engine
 * produces these live (src/engine/feedback.ts keeps a window of them), `offramp record` writes
 * them one per line, and the tuner reads them. Defined here because tuner/ imports nothing
 * from the runtime.
 */

export interface RampFeedback {
  id: number;
  argmax: number;
  confidence: number;
  /** Score under the serving policy (confidence, −entropy or margin). */
  score: number;
}

export interface FeedbackRecord {
  /** Milliseconds since the Unix epoch when the batch finished. */
  t: number;
  batchSize: number;
  /** Ramp that answered the row, or -1 (full model). */
  exit: number;
  /** Active ramps that scored this row, in model order. */
  ramps: RampFeedback[];
  /** The full model's answer; null when the row left the batch early (drop mode). */
  final: { argmax: number; confidence: number } | null;
  /**
   * Probe: chosen before the batch ran to go to the end whatever its exits, so probe rows are an
   * unbiased sample of traffic. Only the live drop-mode path produces false; absent in traces
   * recorded before this field existed: read absent as true.
   */
  probe?: boolean;
  /** Time in queue and from arrival to the answer, in ms (absent in recorded traces). */
  queueMs?: number;
  latencyMs?: number;
  /** True label, when a trace was recorded from labelled data. */
  label?: number;
}

/** Whether a record is a probe (FeedbackRecord.probe; absent, as in older traces, reads as one). */
export function isProbe(record: FeedbackRecord): boolean {
  return record.probe !== false;
}
