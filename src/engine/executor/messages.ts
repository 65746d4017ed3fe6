/** Messages between the serving thread and an executor worker (structured-clone safe). */
import type { BatchInput, BatchResult, ExitPlan, RowExit } from '../backend.js';

export interface WorkerInit {
  modelDir: string;
  intraOpThreads: number;
}

export type ToWorker = { type: 'run'; batchId: number; input: BatchInput; plan: ExitPlan } | { type: 'close' };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'load-error'; message: string }
  | { type: 'exit'; batchId: number; exits: RowExit[] }
  | { type: 'done'; batchId: number; result: BatchResult }
  | { type: 'error'; batchId: number; message: string }
  | { type: 'closed' };
