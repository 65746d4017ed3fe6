/** Messages between the serving thread and an executor worker (structured-clone safe). */
import type { TierExecution, TierSpec } from '../../model/cascade.js';
import type { BatchInput, BatchResult, ExitPlan, FaultKind, RowExit } from '../backend.js';

export interface WorkerInit {
  modelDir: string;
  /** Tiers of an agreement-based cascade in front of the model (cascade-runner.ts); absent: none. */
  cascade?: { tiers: TierSpec[]; execution: TierExecution };
  intraOpThreads: number;
  /** Seeds the worker's probe draws (WorkerPoolOptions.probeSeed); absent: a random seed. */
  probeSeed?: number;
  /** The word the pool and this worker share to stop the thread safely (thread-stop.ts). */
  stopWord: SharedArrayBuffer;
}

export type ToWorker =
  | { type: 'run'; batchId: number; input: BatchInput; plan: ExitPlan }
  | { type: 'fault'; fault: FaultKind }
  | { type: 'close' };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'load-error'; message: string }
  | { type: 'exit'; batchId: number; exits: RowExit[] }
  | { type: 'done'; batchId: number; result: BatchResult }
  | { type: 'error'; batchId: number; message: string }
  | { type: 'closed' };
