/**
 * Feedback: for every row that ran far enough, what each active ramp said and what the full
 * model said. Labels do not exist online, so accuracy is agreement with the final layer. The
 * window is bounded; the tuner (tuner/) reads it, /exits and /metrics summarise it.
 *
 * The same record, one JSON object per line, is what `offramp record` writes (TRACE.jsonl).
 */
import type { BatchResult } from './backend.js';
import { argmaxRows } from '../model/numeric.js';
import { isProbe, realisedDisagreement, type FeedbackRecord, type RampFeedback } from '../../tuner/feedback-record.js';

export type { FeedbackRecord, RampFeedback };

/**
 * Feedback records for every row of a finished batch. `t` is stamped by the caller; timing
 * fields are added by the caller when it knows them (the live runner does, a recording does not).
 */
export function batchFeedback(result: BatchResult, t: number): FeedbackRecord[] {
  const rows = result.exitRamp.length;
  const c = result.classes;
  const finals = new Map<number, { argmax: number; confidence: number }>();
  const finalArgmax = argmaxRows(result.finalProbs, c);
  result.finalRows.forEach((row, i) => {
    const argmax = finalArgmax[i] as number;
    finals.set(row, { argmax, confidence: result.finalProbs[i * c + argmax] as number });
  });
  const readings: RampFeedback[][] = Array.from({ length: rows }, () => []);
  for (const reading of result.readings) {
    reading.rows.forEach((row, i) => {
      readings[row]?.push({
        id: reading.ramp,
        argmax: reading.argmax[i] as number,
        confidence: reading.confidence[i] as number,
        score: reading.score[i] as number,
      });
    });
  }
  return Array.from({ length: rows }, (_, row) => ({
    t,
    batchSize: rows,
    exit: result.exitRamp[row] as number,
    ramps: readings[row] ?? [],
    final: finals.get(row) ?? null,
    probe: result.probe[row] === 1,
  }));
}

export interface WindowStats {
  size: number;
  capacity: number;
  /**
   * Among probe rows (drop mode's unbiased sample; every row in release mode): their realised
   * disagreement (tuner/feedback-record.ts), the share answered differently from the full model.
   * Null before any probe with a known final answer.
   */
  disagreement: number | null;
  /** Share of rows answered by a ramp. */
  earlyFraction: number | null;
  perRamp: Map<number, { exits: number; readings: number; agreeing: number; compared: number }>;
}

export class FeedbackWindow {
  private readonly records: (FeedbackRecord | undefined)[];
  private next = 0;
  private count = 0;
  /** Total records ever added; lets readers ask "what is new since I last looked". */
  total = 0;

  constructor(readonly capacity: number) {
    this.records = new Array<FeedbackRecord | undefined>(capacity);
  }

  add(record: FeedbackRecord): void {
    this.records[this.next] = record;
    this.next = (this.next + 1) % this.capacity;
    this.count = Math.min(this.count + 1, this.capacity);
    this.total++;
  }

  /** The window's records, oldest first. */
  snapshot(): FeedbackRecord[] {
    const out: FeedbackRecord[] = [];
    for (let i = 0; i < this.count; i++) {
      const r = this.records[(this.next - this.count + i + this.capacity) % this.capacity];
      if (r) out.push(r);
    }
    return out;
  }

  clear(): void {
    this.records.fill(undefined);
    this.next = 0;
    this.count = 0;
  }

  stats(): WindowStats {
    let known = 0;
    let disagree = 0;
    let early = 0;
    const perRamp = new Map<number, { exits: number; readings: number; agreeing: number; compared: number }>();
    const rows = this.snapshot();
    for (const r of rows) {
      if (r.exit >= 0) early++;
      for (const reading of r.ramps) {
        const s = perRamp.get(reading.id) ?? { exits: 0, readings: 0, agreeing: 0, compared: 0 };
        s.readings++;
        if (r.exit === reading.id) s.exits++;
        if (r.final && isProbe(r)) {
          s.compared++;
          if (reading.argmax === r.final.argmax) s.agreeing++;
        }
        perRamp.set(reading.id, s);
      }
      // Only probes: in drop mode a non-probe row keeps its final answer only when no ramp took
      // it, so counting it would count every easy row that left as nothing and every hard row
      // that stayed as agreeing.
      const disagrees = isProbe(r) ? realisedDisagreement(r) : -1;
      if (disagrees >= 0) {
        known++;
        disagree += disagrees;
      }
    }
    return {
      size: rows.length,
      capacity: this.capacity,
      disagreement: known > 0 ? disagree / known : null,
      earlyFraction: rows.length > 0 ? early / rows.length : null,
      perRamp,
    };
  }
}
