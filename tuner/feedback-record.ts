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

/**
 * Whether a record carries a reading of every one of `rampIds`: only such rows can be re-decided
 * under any thresholds of those ramps (a row without a ramp's reading left the batch before it, or
 * the ramp was not running then), so the tuners learn from these rows only (online-tuner.ts).
 */
export function carriesReadings(record: FeedbackRecord, rampIds: readonly number[]): boolean {
  for (const id of rampIds) if (!record.ramps.some((r) => r.id === id)) return false;
  return true;
}

/**
 * Realised disagreement of one row: whether the answer it was actually given — the argmax of
 * the ramp it exited at (`exit`), else the final answer — differs from the full model's. 1: it
 * differs; 0: the same; −1: unknown, and not counted (no final answer, as for a row that left the
 * batch in drop mode, or no reading of the ramp it exited at). The one definition behind the
 * window disagreement /exits and /metrics report (src/engine/feedback.ts), the online tuners'
 * violation checks, and replay's per-window figures.
 */
export function realisedDisagreement(record: FeedbackRecord): -1 | 0 | 1 {
  if (!record.final) return -1;
  if (record.exit < 0) return 0;
  const reading = record.ramps.find((r) => r.id === record.exit);
  if (!reading) return -1;
  return reading.argmax === record.final.argmax ? 0 : 1;
}
