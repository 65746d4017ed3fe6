/**
 * Dynamic batching as a pure step function the engine calls whenever something changes (a
 * request arrives, a batch finishes, a timer fires). It never sleeps or reads a clock: `now` and
 * how many workers are idle are passed in, so it is tested with hand-made times and no model.
 *
 *  - a batch holds at most `maxBatchSize` rows; a request's rows may span several batches
 *  - dispatch at once when a full batch (or the largest preferred size) is queued
 *  - otherwise, by `delay`:
 *    - work-conserving (the default): dispatch what is queued at once when a worker is idle;
 *      while every worker is busy, let the batch grow, and dispatch when a worker frees (the
 *      engine steps again when a batch finishes). Batches grow with the load, and a request never
 *      waits while a worker sits idle.
 *    - fixed (Triton's rule): wait for a fuller batch up to `maxQueueDelayMs` after the oldest
 *      arrival, whatever the workers are doing
 *  - in both, never wait so long that the most urgent deadline cannot be met given the profiled
 *    latency of the batch that would run
 *  - the queue is bounded (`maxQueueSize` requests): a request beyond it is rejected
 *  - a request whose deadline has passed before it ran is timed out, not run
 *  - lower `priority` values go first; equal priorities go first come, first served
 */
import type { BatchingConfig } from '../config/index.js';
import type { EngineRequest } from './request.js';

/** A contiguous range of one request's rows placed in a batch. */
export interface RowSlice {
  request: EngineRequest;
  firstRow: number;
  rows: number;
}

export type Step =
  | { kind: 'batch'; slices: RowSlice[]; rows: number; expired: EngineRequest[] }
  | { kind: 'wait'; untilMs: number; expired: EngineRequest[] }
  | { kind: 'idle'; expired: EngineRequest[] };

/** What the executor can take now, as the engine reads it before each step. */
export interface WorkerState {
  /** Workers with nothing running or waiting: a batch sent now starts at once. */
  idleWorkers: number;
}

export interface BatchScheduler {
  /** False when the queue is full (the caller rejects the request). */
  add(request: EngineRequest): boolean;
  /** Removes a request's undispatched rows (cancellation); true when it was still queued. */
  remove(request: EngineRequest): boolean;
  /** Empties the queue (the executor can take no more work), answering the requests it held. */
  removeAll(): EngineRequest[];
  /**
   * Decides what to do now: form a batch, wait until a time, or nothing to do. The engine calls
   * it only when the executor has room for a batch (an idle worker, or a busy worker's waiting
   * place), and again whenever a batch finishes.
   */
  step(nowMs: number, workers: WorkerState): Step;
  reconfigure(config: BatchingConfig): void;
  readonly queuedRequests: number;
  readonly queuedRows: number;
  /** Undispatched rows a request of this priority would queue behind (its level and more urgent ones). */
  rowsAhead(priority: number): number;
}

const DEFAULT_PRIORITY_LEVEL = 1;

function priorityLevel(priority: number): number {
  return priority === 0 ? DEFAULT_PRIORITY_LEVEL : priority;
}

function level(request: EngineRequest): number {
  return priorityLevel(request.priority);
}

export class DynamicBatcher implements BatchScheduler {
  private queue: EngineRequest[] = [];

  /**
   * @param latencyMs profiled latency of a batch of the given size (it grows with the size).
   */
  constructor(
    private config: BatchingConfig,
    private readonly latencyMs: (batchSize: number) => number,
  ) {}

  /** New limits apply from the next step; queued requests stay queued (even beyond a smaller bound). */
  reconfigure(config: BatchingConfig): void {
    this.config = config;
  }

  get queuedRequests(): number {
    return this.queue.length;
  }

  get queuedRows(): number {
    return this.queue.reduce((sum, r) => sum + r.rows - r.dispatchedRows, 0);
  }

  rowsAhead(priority: number): number {
    const l = priorityLevel(priority);
    return this.queue.reduce((sum, r) => (level(r) <= l ? sum + r.rows - r.dispatchedRows : sum), 0);
  }

  add(request: EngineRequest): boolean {
    if (this.queue.length >= this.config.maxQueueSize) return false;
    // Insert after every request of the same or a more urgent level: FCFS within a level.
    const l = level(request);
    let at = this.queue.length;
    while (at > 0 && level(this.queue[at - 1] as EngineRequest) > l) at--;
    this.queue.splice(at, 0, request);
    return true;
  }

  remove(request: EngineRequest): boolean {
    const i = this.queue.indexOf(request);
    if (i < 0) return false;
    this.queue.splice(i, 1);
    return true;
  }

  removeAll(): EngineRequest[] {
    const all = this.queue;
    this.queue = [];
    return all;
  }

  step(nowMs: number, workers: WorkerState): Step {
    // Requests with no row dispatched yet whose deadline passed are timed out, not run. A request
    // already partly running keeps its remaining rows: dropping them would waste the work done.
    const expired = this.queue.filter((r) => r.dispatchedRows === 0 && r.deadlineMs <= nowMs);
    if (expired.length > 0) this.queue = this.queue.filter((r) => !expired.includes(r));
    const queued = this.queuedRows;
    if (queued === 0) return { kind: 'idle', expired };

    const max = this.config.maxBatchSize;
    const size = Math.min(queued, max);
    const preferred = [...this.config.preferredBatchSizes].filter((p) => p <= queued).sort((a, b) => b - a)[0];
    const earliestDeadline = Math.min(...this.queue.map((r) => r.deadlineMs));
    // The latest moment to start a batch of this size and still answer the most urgent request in time.
    const latestStart = earliestDeadline - this.latencyMs(size);

    // A batch that cannot grow goes now, even into a busy worker's waiting place: forming it
    // later would not make it fuller, and sending it ahead hides the dispatch round-trip.
    if (queued >= max) return { kind: 'batch', ...this.take(max), expired };
    if (preferred !== undefined && preferred === Math.max(...this.config.preferredBatchSizes))
      return { kind: 'batch', ...this.take(preferred), expired };
    // At its latest start a batch stops growing (a larger one would take longer); with every
    // worker busy it takes a waiting place, the soonest it can start.
    if (nowMs >= latestStart) return { kind: 'batch', ...this.take(size), expired };

    if (this.config.delay === 'fixed') {
      const flushAt = Math.min(...this.queue.map((r) => r.arrivalMs)) + this.config.maxQueueDelayMs;
      if (nowMs >= flushAt) return { kind: 'batch', ...this.take(size), expired };
      return { kind: 'wait', untilMs: Math.min(flushAt, latestStart), expired };
    }
    // Work-conserving. An idle worker that waited for a fuller batch would only add latency.
    if (workers.idleWorkers > 0) return { kind: 'batch', ...this.take(size), expired };
    // Every worker is busy, though one may have a free waiting place. A partial batch is not sent
    // there: it could not start before the worker frees anyway, and formed then it holds every
    // request that arrived meanwhile — a fuller batch, and those requests ride it instead of
    // waiting a whole batch more. The cost is one dispatch round-trip of idle worker time per
    // batch; full batches (above) still use the waiting place, so at saturation nothing is lost.
    // The engine steps again when a batch finishes; the timer only guards the deadline.
    return { kind: 'wait', untilMs: latestStart, expired };
  }

  private take(rows: number): { slices: RowSlice[]; rows: number } {
    const slices: RowSlice[] = [];
    let left = rows;
    for (const request of this.queue) {
      if (left === 0) break;
      const available = request.rows - request.dispatchedRows;
      const n = Math.min(available, left);
      slices.push({ request, firstRow: request.dispatchedRows, rows: n });
      request.dispatchedRows += n;
      left -= n;
    }
    this.queue = this.queue.filter((r) => r.dispatchedRows < r.rows);
    return { slices, rows: rows - left };
  }
}
