/**
 * The real ExecutionBackend: N worker threads, each with its own onnxruntime sessions for the
 * prepared model. Each worker runs one batch at a time and holds at most one more; the engine
 * never asks for more than `slots`.
 */
import type { Worker } from 'node:worker_threads';
import type { BatchInput, BatchResult, ExecutionBackend, ExitPlan, RowExit } from '../backend.js';
import type { FromWorker, ToWorker, WorkerInit } from './messages.js';
import { spawnWorker } from '../spawn-worker.js';

interface Pending {
  onExit: (exits: RowExit[]) => void;
  resolve: (result: BatchResult) => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  /** Set when the worker crashed: it takes no more batches. */
  broken: boolean;
  pending: Map<number, Pending>;
}

/**
 * Batches a worker holds at once: one running and one waiting, so it starts the next batch the
 * moment the last one ends instead of waiting for the serving thread to hand it over. Under
 * work-conserving batching the engine fills the waiting place only with a batch that cannot grow
 * (full, or due by its deadline); src/engine/scheduler.ts says why.
 */
const DEPTH = 2;

function createWorker(init: WorkerInit): Worker {
  return spawnWorker(import.meta.url, 'worker', init);
}

export class WorkerPool implements ExecutionBackend {
  private nextBatchId = 1;
  private closed = false;

  private constructor(private readonly workers: Slot[]) {}

  get slots(): number {
    return this.workers.length * DEPTH;
  }

  /** A worker's pending map is emptied before its last batch's promise settles, so this never lags. */
  get idleWorkers(): number {
    return this.workers.filter((w) => !w.broken && w.pending.size === 0).length;
  }

  static async start(modelDir: string, options: { workers: number; intraOpThreads: number }): Promise<WorkerPool> {
    const init: WorkerInit = { modelDir, intraOpThreads: options.intraOpThreads };
    const slots = await Promise.all(
      Array.from(
        { length: options.workers },
        () =>
          new Promise<Slot>((resolve, reject) => {
            const worker = createWorker(init);
            const slot: Slot = { worker, broken: false, pending: new Map() };
            const onFirst = (message: FromWorker): void => {
              if (message.type === 'ready') resolve(slot);
              else if (message.type === 'load-error')
                reject(new Error(`executor could not load ${modelDir}: ${message.message}`));
            };
            worker.once('message', onFirst);
            worker.once('error', reject);
          }),
      ),
    );
    const pool = new WorkerPool(slots);
    for (const slot of slots) pool.attach(slot);
    return pool;
  }

  private attach(slot: Slot): void {
    slot.worker.on('message', (message: FromWorker) => {
      if (message.type === 'exit') slot.pending.get(message.batchId)?.onExit(message.exits);
      else if (message.type === 'done' || message.type === 'error') {
        const pending = slot.pending.get(message.batchId);
        slot.pending.delete(message.batchId);
        if (message.type === 'done') pending?.resolve(message.result);
        else pending?.reject(new Error(message.message));
      }
    });
    // A crashed worker fails its batch instead of hanging it; the slot is not reused.
    slot.worker.on('error', (err) => {
      for (const p of slot.pending.values()) p.reject(err);
      slot.pending.clear();
      slot.broken = true;
    });
  }

  run(input: BatchInput, plan: ExitPlan, onExit: (exits: RowExit[]) => void): Promise<BatchResult> {
    if (this.closed) return Promise.reject(new Error('executor is closed'));
    // The least loaded healthy worker.
    const slot = this.workers
      .filter((w) => !w.broken && w.pending.size < DEPTH)
      .sort((a, b) => a.pending.size - b.pending.size)[0];
    if (!slot) return Promise.reject(new Error('all executor workers are busy'));
    const batchId = this.nextBatchId++;
    return new Promise<BatchResult>((resolve, reject) => {
      slot.pending.set(batchId, { onExit, resolve, reject });
      const message: ToWorker = { type: 'run', batchId, input, plan };
      slot.worker.postMessage(message);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(
      this.workers.map(
        (slot) =>
          new Promise<void>((resolve) => {
            // Wait for 'closed' specifically: results of batches still queued may arrive first.
            slot.worker.on('message', (m: FromWorker) => {
              if (m.type === 'closed') void slot.worker.terminate().then(() => resolve());
            });
            slot.worker.once('exit', () => resolve());
            slot.worker.postMessage({ type: 'close' } satisfies ToWorker);
          }),
      ),
    );
  }
}
