/**
 * A request's life inside the engine, as an explicit state (one `isFinished`: nothing answers twice):
 *
 *   queued → running → exited      (every row answered by a ramp)
 *                    → finished    (at least one row needed the full model)
 *   queued → rejected | timed_out | cancelled      (never ran)
 *   running → failed | cancelled
 *
 * A request may carry several rows; it is answered when the last of them is decided.
 */
import type { OfframpError } from '../errors.js';
import type { TokenRow } from '../model/token-batch.js';

/**
 * A request's rows, converted to what the model reads, in one of two forms the batcher knows how to
 * join: `dense` rows all have one shape and are concatenated (images, fixed-length ids); `tokens`
 * rows each have their own length and a batch is padded to its longest (text models).
 */
export type RequestRows =
  | { kind: 'dense'; rows: number; data: Float32Array | BigInt64Array; rowShape: number[] }
  | { kind: 'tokens'; rows: number; tokens: TokenRow[] };

export type RequestState =
  'queued' | 'running' | 'exited' | 'finished' | 'rejected' | 'timed_out' | 'cancelled' | 'failed';

const FINISHED: ReadonlySet<RequestState> = new Set([
  'exited',
  'finished',
  'rejected',
  'timed_out',
  'cancelled',
  'failed',
]);

export function isFinished(state: RequestState): boolean {
  return FINISHED.has(state);
}

/** How one row was answered. */
export interface RowAnswer {
  /** Exit id (a ramp, or a cascade tier: src/engine/backend.ts), or -1 for the full model. */
  ramp: number;
  argmax: number;
  confidence: number;
  probs: Float32Array;
  /** Share of the model's compute run before the answer (1 for the full model). */
  depth: number;
  /** Answered by a cascade tier: each member's vote, in member order. */
  votes?: number[];
  /** Answered by a cascade tier: the plurality's share of the votes. */
  agreement?: number;
}

/** The row answered last in the model (largest depth): it decides when a request is done. */
export function deepestAnswer(answers: readonly RowAnswer[]): RowAnswer {
  return answers.reduce((d, a) => (a.depth > d.depth ? a : d));
}

export interface EngineRequest {
  id: string;
  rows: number;
  /** Input for all rows, already converted to the model's input type. */
  input: RequestRows;
  /** Lower value = more urgent; 0 means the default level (1). */
  priority: number;
  arrivalMs: number;
  /** Answer by then or not at all (arrival + timeout, or + the SLO latency). */
  deadlineMs: number;
  state: RequestState;
  /** Rows handed to the executor so far. */
  dispatchedRows: number;
  answers: (RowAnswer | undefined)[];
  answeredRows: number;
  /** When the first row left the queue (queue wait = this − arrival). */
  startedMs?: number;
  resolve: (answers: RowAnswer[]) => void;
  reject: (err: OfframpError) => void;
}
