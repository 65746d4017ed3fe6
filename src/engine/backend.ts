/**
 * What the engine asks of whatever runs the model: run one batch segment by segment under an
 * exit plan, report rows that exit *as they exit*, then report the whole batch. The real
 * implementation is a pool of worker threads (executor/worker-pool.ts) whose workers run
 * executor/backbone-runner.ts; tests use a fake. This file names only host tensor types
 * (src/model/tensor.ts), never the onnxruntime wrapper, so the interface does not load its
 * implementation.
 *
 * Exits are numbered. A ramped backbone's exits are its ramps (executor/backbone-runner.ts); an
 * agreement-based cascade (executor/cascade-runner.ts) numbers its tiers first, 0..T−1, and the
 * backbone's ramp r is exit T + r (src/model/cascade.ts). One plan, one result shape, one tuner
 * for both: `ramps` in the types below means exits, a tier being an exit whose "head" is its
 * members' vote. Which runner a worker uses is fixed when the model loads.
 */
import type { ExitMode, ExitPolicyKind } from '../../tuner/exit-policy.js';
import type { HostTensor } from '../model/tensor.js';

export interface ExitPlan {
  /** How a ramp's softmax becomes a score (a cascade tier scores by its own rule). */
  policy: ExitPolicyKind;
  /** Patience policy: consecutive agreeing ramps needed. */
  patience: number;
  mode: ExitMode;
  /** Exits that run, in model order; threshold null = "never" (scores, never answers). */
  ramps: { id: number; threshold: number | null }[];
  /**
   * Drop mode: share of rows drawn as probes at the start of each batch. A probe runs to the end
   * whatever its exits (it is still answered the moment a ramp decides it), so probes carry
   * every active ramp's reading and the final answer: an unbiased sample for the tuner.
   */
  feedbackFraction: number;
}

/**
 * One batch's feeds: a tensor per model input, each with the batch as its first dimension (an
 * image model's pixels; a text model's `input_ids` and `attention_mask`, padded to the batch's
 * longest row).
 */
export type BatchInput = Record<string, HostTensor>;

/** Rows in a batch: the first dimension of its tensors (they all agree). */
export function batchRows(input: BatchInput): number {
  const first = Object.values(input)[0];
  return first ? (first.dims[0] as number) : 0;
}

/** A row answered by an exit (a ramp or a cascade tier), sent while the rest of its batch still runs. */
export interface RowExit {
  row: number;
  /** The exit's id (see ExitPlan). */
  ramp: number;
  argmax: number;
  confidence: number;
  /** The exit's class probabilities for this row (a tier's: its members' mean). */
  probs: Float32Array;
  /** A cascade tier's answer: each member's vote (argmax), in member order. */
  votes?: number[];
  /** A cascade tier's answer: the plurality's share of the votes. */
  agreement?: number;
}

/** One active ramp's reading of the rows that reached it. */
export interface RampReadings {
  ramp: number;
  rows: Int32Array;
  argmax: Int32Array;
  confidence: Float32Array;
  score: Float32Array;
}

/**
 * Something the executor stopped doing because it failed, so that the serving thread logs it and
 * plans around it. A fault is reported once, with the next batch result the executor returns
 * (whichever batch that is):
 *  - `ramp-disabled`: the ramp's head failed to load, failed a run or scored a non-finite
 *    probability. The executor runs that ramp no more whatever a plan says: its rows go on to the
 *    final layer, and no row was ever answered from the failed scores.
 *  - `resplit-failed`: re-splitting the backbone at these ramps failed; batches with that ramp
 *    set keep running on the prepared segments, and the re-split is not tried again.
 */
export type ExecutorFault =
  { kind: 'ramp-disabled'; ramp: number; reason: string } | { kind: 'resplit-failed'; ramps: number[]; reason: string };

export interface BatchResult {
  /** Rows that ran to the final layer (all rows in release mode) and their final probabilities. */
  finalRows: Int32Array;
  finalProbs: Float32Array;
  classes: number;
  readings: RampReadings[];
  /** Exit ramp per row, -1 for rows answered by the final layer. */
  exitRamp: Int32Array;
  /**
   * Per row, 1 if it was drawn as a probe before the batch ran (it ran to the end whatever its
   * exits), else 0. Every row is a probe in release mode and with no active ramp.
   */
  probe: Uint8Array;
  timings: { segmentMs: number[]; headMs: number[]; totalMs: number };
  /** Faults since the executor's last result (absent: none). */
  faults?: ExecutorFault[];
}

/**
 * Why an executor worker was replaced: it threw an uncaught error (`crash`), held a batch longer
 * than `server.worker_timeout_ms` (`hang`), ended without being asked (`exit`), or, being
 * (re)started, could not load the model (`load`). The metrics label `cause` takes these values.
 */
export const WORKER_FAILURE_CAUSES = ['crash', 'hang', 'exit', 'load'] as const;
export type WorkerFailureCause = (typeof WORKER_FAILURE_CAUSES)[number];

/**
 * Faults an operator (or a chaos test) can inject into an executor worker through the admin
 * endpoint `POST /v2/models/{m}/admin/faults`, when `server.fault_injection` is on. Each really
 * happens on the worker's thread: `crash-worker` throws an uncaught exception there at once,
 * `hang-worker` spins there until the pool's hang detection terminates it. A new kind is added
 * here, then handled in the worker (executor/worker.ts); the endpoint accepts every kind listed.
 */
export const FAULT_KINDS = ['crash-worker', 'hang-worker'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Hooks for metrics on the executor's workers; the engine itself does not know Prometheus. */
export interface ExecutorObserver {
  /** A failed worker is being replaced (counted when the restart is scheduled). */
  workerRestarted?(cause: WorkerFailureCause): void;
  /** Workers ready to take a batch, after every change. */
  readyWorkers?(count: number): void;
}

export interface ExecutionBackend {
  /**
   * How many batches it holds at once, running or waiting for their worker; the engine never sends
   * more. Counts only workers that can take a batch now: it drops while a worker restarts.
   */
  readonly slots: number;
  /**
   * Workers with no batch running or waiting: a batch sent now starts at once. Read before each
   * scheduling step; it must drop as soon as `run` is called and rise before a finished batch's
   * promise settles, so the engine never sees a busy worker as idle.
   */
  readonly idleWorkers: number;
  /** Workers loaded and taking batches; 0 while every worker restarts (the model is then not ready). */
  readonly readyWorkers: number;
  /**
   * Null while the backend takes work or will again (a worker restarting); once it has given up on
   * every worker (each failed too often), why, for the model's not-ready answers. It never clears.
   */
  readonly failure: string | null;
  /**
   * Registers the one function called when `slots`, `readyWorkers` or `failure` change other than
   * by a batch settling (a worker lost, back, or given up on), so the engine schedules again then.
   */
  onCapacityChange(listener: () => void): void;
  run(input: BatchInput, plan: ExitPlan, onExit: (exits: RowExit[]) => void): Promise<BatchResult>;
  /**
   * Injects a fault into one worker (index into the workers, default 0). Resolves once the fault
   * has taken hold as far as can be seen: for a crash, once the worker was seen to fail (`failed`);
   * a hang is only seen by the next batch, so it resolves once the worker was told.
   */
  injectFault?(fault: FaultKind, worker?: number): Promise<{ worker: number; failed: boolean }>;
  close(): Promise<void>;
}
