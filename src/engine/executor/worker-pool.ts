/**
 * The real ExecutionBackend: N worker threads, each with its own onnxruntime sessions for the
 * prepared model. Each worker runs one batch at a time and holds at most one more; the engine
 * never asks for more than `slots`.
 *
 * A worker that fails — an uncaught error in its thread (`crash`), a batch held longer than
 * `workerTimeoutMs` (`hang`: the thread is terminated), the thread ending unasked (`exit`) — is
 * replaced by a fresh one after a short backoff; a replacement that cannot load the model
 * (`load`) fails too. Its batches are retried once or failed (see `failWorker`); other workers'
 * batches are untouched. A worker place that fails MAX_FAILURES times within FAILURE_WINDOW_MS is
 * given up; once every place is given up the pool takes no more work and says why (`failure`).
 */
import type { Worker } from 'node:worker_threads';
import { OfframpError } from '../../errors.js';
import type {
  BatchInput,
  BatchResult,
  ExecutionBackend,
  ExecutorObserver,
  ExitPlan,
  FaultKind,
  RowExit,
  WorkerFailureCause,
} from '../backend.js';
import type { FromWorker, ToWorker, WorkerInit } from './messages.js';
import { spawnWorker } from '../spawn-worker.js';
import { createStopWord, requestStop } from './thread-stop.js';

/**
 * Batches a worker holds at once: one running and one waiting, so it starts the next batch the
 * moment the last one ends instead of waiting for the serving thread to hand it over. Under
 * work-conserving batching the engine fills the waiting place only with a batch that cannot grow
 * (full, or due by its deadline); src/engine/scheduler.ts says why.
 */
const DEPTH = 2;

/**
 * The restart bound: a worker place that fails this many times within FAILURE_WINDOW_MS is not
 * restarted again. A model that crashes onnxruntime, or files that no longer load, would
 * otherwise respawn forever; five tries over a minute ride out a transient fault (a poison batch
 * costs at most two: see `failWorker`), and the backoff below spends about 1.5 s on them.
 */
export const MAX_FAILURES = 5;
export const FAILURE_WINDOW_MS = 60_000;
/** Delay before the first restart; it doubles with each failure in the window, up to RESTART_BACKOFF_MAX_MS. */
const RESTART_BACKOFF_MS = 100;
const RESTART_BACKOFF_MAX_MS = 2_000;

interface Batch {
  id: number;
  input: BatchInput;
  plan: ExitPlan;
  onExit: (exits: RowExit[]) => void;
  resolve: (result: BatchResult) => void;
  reject: (err: Error) => void;
  /** A row of it was answered (an 'exit' message arrived): it is never run again. */
  answered: boolean;
  /** It was on a worker that failed before: failing again fails it. */
  retried: boolean;
}

/**
 * starting: the thread loads the model; ready: it takes batches; restarting: it failed and a
 * replacement is due after the backoff; retired: it failed too often and is not restarted.
 */
type PlaceState = 'starting' | 'ready' | 'restarting' | 'retired';

/** One worker place: the thread in it changes with every restart. */
interface Place {
  index: number;
  state: PlaceState;
  /** The thread now in this place; undefined once it failed. Events of an older thread are ignored. */
  worker: Worker | undefined;
  /** The word shared with that thread to stop it safely (thread-stop.ts). */
  stopWord: Int32Array;
  /** Batches posted to the worker, in order: the first is running, the other waits. */
  pending: Map<number, Batch>;
  /** Fires when the running batch has run for workerTimeoutMs (hang detection). */
  watchdog: NodeJS.Timeout | undefined;
  restartTimer: NodeJS.Timeout | undefined;
  /** performance.now() of each failure within the window, oldest first. */
  failures: number[];
  /** Cause and message of the last failure, for logs and the not-ready reason. */
  lastFailure: string | undefined;
  /** While the pool starts: settles the start's wait for this place. */
  started?: { resolve: () => void; reject: (err: Error) => void };
  /** Callers of injectFault('crash-worker') waiting to see this worker fail. */
  crashWaiters: (() => void)[];
}

export interface WorkerPoolOptions {
  workers: number;
  intraOpThreads: number;
  /** A batch running longer than this means the worker stopped answering (server.worker_timeout_ms). */
  workerTimeoutMs: number;
  /** The name the model is served under, for errors and logs; default: the directory. */
  modelName?: string;
  /** Cascade tiers in front of the model (every worker runs them); absent: none. */
  cascade?: WorkerInit['cascade'];
  observer?: ExecutorObserver;
  log?: (line: string) => void;
  /**
   * Tests only: seeds every worker's drop-mode probe draws (BackboneRunner.load's `seed`), so
   * that with one worker a single seeded stream draws every batch's probes, as replay draws them
   * from `feedback.seed` (test/replay-live.test.ts). A restarted worker starts the stream again.
   * Serving leaves it unset: each worker draws from a random seed.
   */
  probeSeed?: number;
}

export class WorkerPool implements ExecutionBackend {
  private nextBatchId = 1;
  private closed = false;
  private failureReason: string | null = null;
  /** Batches of failed workers waiting for a place; served before any new batch. */
  private readonly retries: Batch[] = [];
  private capacityListener: (() => void) | undefined;
  private readonly places: Place[];
  private readonly modelName: string;

  private constructor(
    private readonly init: Omit<WorkerInit, 'stopWord'>,
    private readonly options: WorkerPoolOptions,
  ) {
    this.modelName = options.modelName ?? init.modelDir;
    this.places = Array.from({ length: options.workers }, (_, index) => ({
      index,
      state: 'starting' as const,
      worker: undefined,
      stopWord: new Int32Array(createStopWord()),
      pending: new Map<number, Batch>(),
      watchdog: undefined,
      restartTimer: undefined,
      failures: [],
      lastFailure: undefined,
      crashWaiters: [],
    }));
  }

  get slots(): number {
    return this.readyWorkers * DEPTH;
  }

  /** A worker's pending map is emptied before its last batch's promise settles, so this never lags. */
  get idleWorkers(): number {
    return this.places.filter((p) => p.state === 'ready' && p.pending.size === 0).length;
  }

  get readyWorkers(): number {
    return this.places.filter((p) => p.state === 'ready').length;
  }

  get failure(): string | null {
    return this.failureReason;
  }

  onCapacityChange(listener: () => void): void {
    this.capacityListener = listener;
  }

  /** Starts every worker; rejects (with every thread stopped) if one cannot load the model. */
  static async start(modelDir: string, options: WorkerPoolOptions): Promise<WorkerPool> {
    const pool = new WorkerPool(
      {
        modelDir,
        intraOpThreads: options.intraOpThreads,
        ...(options.cascade ? { cascade: options.cascade } : {}),
        ...(options.probeSeed !== undefined ? { probeSeed: options.probeSeed } : {}),
      },
      options,
    );
    try {
      await Promise.all(
        pool.places.map(
          (place) =>
            new Promise<void>((resolve, reject) => {
              place.started = { resolve, reject };
              pool.spawn(place);
            }),
        ),
      );
    } catch (err) {
      await pool.close();
      throw err;
    } finally {
      for (const place of pool.places) delete place.started;
    }
    pool.options.observer?.readyWorkers?.(pool.readyWorkers);
    return pool;
  }

  private spawn(place: Place): void {
    const stopWord = createStopWord();
    const worker = spawnWorker(import.meta.url, 'worker', { ...this.init, stopWord } satisfies WorkerInit);
    place.worker = worker;
    place.stopWord = new Int32Array(stopWord);
    place.state = 'starting';
    // Events of a thread the place no longer holds are stale: 'exit' follows 'error' and
    // terminate(), by when the place holds no thread or its replacement. A closing pool stops
    // its threads itself: their end is no failure.
    const failing = (): boolean => place.worker === worker && !this.closed;
    worker.on('message', (message: FromWorker) => {
      if (place.worker === worker) this.onMessage(place, message);
    });
    worker.on('error', (err) => {
      if (failing()) this.failWorker(place, place.state === 'starting' ? 'load' : 'crash', err.message);
    });
    worker.on('exit', (code) => {
      if (failing())
        this.failWorker(place, place.state === 'starting' ? 'load' : 'exit', `the thread exited with code ${code}`);
    });
  }

  private onMessage(place: Place, message: FromWorker): void {
    switch (message.type) {
      case 'ready': {
        place.state = 'ready';
        if (place.started) place.started.resolve();
        else this.log(`worker ${place.index} is back after ${place.lastFailure ?? 'a failure'}`);
        this.dispatchRetries();
        this.capacityChanged();
        return;
      }
      case 'load-error':
        this.failWorker(place, 'load', message.message);
        return;
      case 'exit': {
        const batch = place.pending.get(message.batchId);
        if (!batch) return;
        batch.answered = true;
        batch.onExit(message.exits);
        return;
      }
      case 'done':
      case 'error': {
        const batch = place.pending.get(message.batchId);
        place.pending.delete(message.batchId);
        // The next batch started on the worker the moment this one ended.
        this.armWatchdog(place);
        // Retried batches take the freed place before the engine, which steps once this settles.
        this.dispatchRetries();
        if (message.type === 'done') batch?.resolve(message.result);
        // onnxruntime raised in the worker: the worker is fine, the batch failed (OFFRAMP_INFERENCE_FAILED).
        else batch?.reject(new Error(message.message));
        return;
      }
      case 'closed':
        return; // close() listens for it itself
    }
  }

  /** (Re)starts the running batch's clock, or stops it when the worker holds none. */
  private armWatchdog(place: Place): void {
    if (place.watchdog) clearTimeout(place.watchdog);
    place.watchdog = undefined;
    const running = place.pending.values().next().value;
    if (!running) return;
    const timeoutMs = this.options.workerTimeoutMs;
    place.watchdog = setTimeout(() => {
      place.watchdog = undefined;
      this.failWorker(place, 'hang', `batch ${running.id} ran longer than server.worker_timeout_ms (${timeoutMs} ms)`);
    }, timeoutMs);
  }

  /**
   * A worker failed: stop its thread, deal with its batches, restart it after the backoff or give
   * the place up.
   *
   * Its batches are retried once, on another worker or its replacement, when no row of them was
   * answered yet: to every client such a batch looks like one that started late — each row answered
   * once, from one run, with one feedback record. A batch part of which was answered is failed
   * with OFFRAMP_EXECUTOR_FAILED (retryable by the client) instead: running it again would answer
   * its other rows from a second run whose probe draw differs, so its feedback could not be one
   * run's, and the clients of the rows already answered would wait on work done twice. A batch
   * that was already retried is failed too: a batch that kills every worker it runs on (a poison
   * batch) then costs two workers, not all of them in a loop.
   */
  private failWorker(place: Place, cause: WorkerFailureCause, message: string): void {
    const worker = place.worker;
    place.worker = undefined;
    // A hung thread must be stopped, one that reported a failed load may still be loading; a
    // crashed or exited one is gone already (stopping it does nothing).
    if (worker) stopThread(worker, place.stopWord);
    if (place.watchdog) clearTimeout(place.watchdog);
    place.watchdog = undefined;
    const reason = `${cause}: ${message}`;
    place.lastFailure = reason;
    for (const waiter of place.crashWaiters.splice(0)) waiter();

    if (place.started) {
      // While the pool starts, a worker that fails fails the start (the server does not come up).
      place.state = 'retired';
      place.started.reject(new Error(`executor could not load ${this.init.modelDir}: ${message}`));
      return;
    }

    const batches = [...place.pending.values()];
    place.pending.clear();
    let failed = 0;
    for (const batch of batches) {
      if (batch.answered || batch.retried) {
        failed++;
        batch.reject(
          new OfframpError('OFFRAMP_EXECUTOR_FAILED', {
            model: this.modelName,
            reason: `worker ${place.index} ${reason}`,
          }),
        );
      } else {
        batch.retried = true;
        this.retries.push(batch);
      }
    }

    const held = `${batches.length - failed} of its batches retried, ${failed} failed`;
    const now = performance.now();
    place.failures = [...place.failures.filter((t) => now - t < FAILURE_WINDOW_MS), now];
    if (place.failures.length >= MAX_FAILURES) {
      place.state = 'retired';
      this.log(
        `worker ${place.index} failed ${place.failures.length} times within ${FAILURE_WINDOW_MS / 1000} s ` +
          `(last: ${reason}); ${held}; it is not restarted again`,
      );
      if (this.places.every((p) => p.state === 'retired')) {
        this.failureReason =
          `every executor worker failed ${MAX_FAILURES} times within ${FAILURE_WINDOW_MS / 1000} s ` +
          `and is no longer restarted (last: ${reason})`;
        this.log(`model not ready: ${this.failureReason}`);
        for (const batch of this.retries.splice(0))
          batch.reject(
            new OfframpError('OFFRAMP_MODEL_NOT_READY', { model: this.modelName, reason: this.failureReason }),
          );
      }
    } else {
      place.state = 'restarting';
      const delay = Math.min(RESTART_BACKOFF_MAX_MS, RESTART_BACKOFF_MS * 2 ** (place.failures.length - 1));
      this.log(`worker ${place.index} failed (${reason}); ${held}; restarting it in ${delay} ms`);
      this.options.observer?.workerRestarted?.(cause);
      place.restartTimer = setTimeout(() => {
        place.restartTimer = undefined;
        if (!this.closed) this.spawn(place);
      }, delay);
    }
    this.dispatchRetries();
    this.capacityChanged();
  }

  /** Moves retried batches onto ready workers with room, least loaded first. */
  private dispatchRetries(): void {
    while (this.retries.length > 0) {
      const place = this.placeWithRoom();
      if (!place) return;
      this.post(place, this.retries.shift() as Batch);
    }
  }

  private placeWithRoom(): Place | undefined {
    return this.places
      .filter((p) => p.state === 'ready' && p.pending.size < DEPTH)
      .sort((a, b) => a.pending.size - b.pending.size)[0];
  }

  private post(place: Place, batch: Batch): void {
    place.pending.set(batch.id, batch);
    if (place.pending.size === 1) this.armWatchdog(place);
    // Copied, not transferred: a retry needs the input again.
    const message: ToWorker = { type: 'run', batchId: batch.id, input: batch.input, plan: batch.plan };
    (place.worker as Worker).postMessage(message);
  }

  private capacityChanged(): void {
    this.options.observer?.readyWorkers?.(this.readyWorkers);
    this.capacityListener?.();
  }

  private log(line: string): void {
    this.options.log?.(`executor: ${line}`);
  }

  run(input: BatchInput, plan: ExitPlan, onExit: (exits: RowExit[]) => void): Promise<BatchResult> {
    if (this.closed) return Promise.reject(new Error('executor is closed'));
    if (this.failureReason !== null)
      return Promise.reject(
        new OfframpError('OFFRAMP_MODEL_NOT_READY', { model: this.modelName, reason: this.failureReason }),
      );
    const place = this.placeWithRoom();
    if (!place) return Promise.reject(new Error('all executor workers are busy'));
    return new Promise<BatchResult>((resolve, reject) => {
      const batch: Batch = {
        id: this.nextBatchId++,
        input,
        plan,
        onExit,
        resolve,
        reject,
        answered: false,
        retried: false,
      };
      this.post(place, batch);
    });
  }

  /**
   * Makes the worker in place `index` crash or hang on its thread (see FAULT_KINDS). A crash
   * resolves once the pool has seen the worker fail (`failed`); a hang once the worker was told
   * (the pool sees it when a batch it holds runs past workerTimeoutMs).
   */
  async injectFault(fault: FaultKind, index = 0): Promise<{ worker: number; failed: boolean }> {
    const place = this.places[index];
    if (!place)
      throw new OfframpError('OFFRAMP_INVALID_ADMIN_REQUEST', {
        reason: `there is no worker ${index} (workers: 0..${this.places.length - 1})`,
      });
    const worker = place.worker;
    if (place.state !== 'ready' || !worker)
      throw new OfframpError('OFFRAMP_INVALID_ADMIN_REQUEST', {
        reason: `worker ${index} is not running (${place.state}); try again once the model is ready`,
      });
    const failed =
      fault === 'crash-worker' ? new Promise<void>((resolve) => place.crashWaiters.push(resolve)) : undefined;
    worker.postMessage({ type: 'fault', fault } satisfies ToWorker);
    if (!failed) return { worker: index, failed: false };
    // A worker already hung reads no message: answer after workerTimeoutMs at the latest.
    let timer: NodeJS.Timeout | undefined;
    const seen = await Promise.race([
      failed.then(() => true),
      new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), this.options.workerTimeoutMs))),
    ]);
    clearTimeout(timer);
    return { worker: index, failed: seen };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const batch of this.retries.splice(0)) batch.reject(new Error('executor is closed'));
    await Promise.all(
      this.places.map((place) => {
        if (place.restartTimer) clearTimeout(place.restartTimer);
        if (place.watchdog) clearTimeout(place.watchdog);
        const worker = place.worker;
        if (!worker) return Promise.resolve();
        const word = place.stopWord;
        return new Promise<void>((resolve) => {
          worker.once('exit', () => resolve());
          // A worker still loading has no batches; stop it outright.
          if (place.state !== 'ready') {
            stopThread(worker, word);
            return;
          }
          // A hung worker never answers 'close': stopped after workerTimeoutMs like any hang.
          const hung = setTimeout(() => stopThread(worker, word), this.options.workerTimeoutMs);
          worker.once('exit', () => clearTimeout(hung));
          // Wait for 'closed' specifically: results of batches still queued may arrive first.
          worker.on('message', (m: FromWorker) => {
            if (m.type === 'closed') stopThread(worker, word);
          });
          worker.postMessage({ type: 'close' } satisfies ToWorker);
        });
      }),
    );
    // The engine drains before it closes, so this finds nothing unless a worker died while closing.
    for (const place of this.places) {
      place.worker = undefined;
      for (const batch of place.pending.values()) batch.reject(new Error('executor is closed'));
      place.pending.clear();
    }
  }
}

/**
 * Stops a worker thread without risking the process (thread-stop.ts): terminated at once when it
 * is in JavaScript, else it ends itself when its native call returns. Unreferenced, so that a
 * thread stuck inside native code for good does not keep the process alive.
 */
function stopThread(worker: Worker, stopWord: Int32Array): void {
  worker.unref();
  if (requestStop(stopWord)) void worker.terminate();
}
