/**
 * Serves one prepared model: requests go into the dynamic batcher, batches go to the executor,
 * rows are answered the moment a ramp (or the final layer) decides them, and every finished
 * row leaves a feedback record. The scheduler is consulted after every event — arrival, batch
 * done, timer — and cancellations and timeouts are applied between those steps.
 */
import { randomUUID } from 'node:crypto';
import type { BatchingConfig } from '../config/index.js';
import { OfframpError, isOfframpError } from '../errors.js';
import { atBatch, latencyToAnswer, tierCount } from '../../tuner/latency-model.js';
import { isDormant } from '../../tuner/exit-policy.js';
import type { PreparedManifest } from '../model/manifest.js';
import type { BatchResult, ExecutionBackend, ExecutorFault, ExecutorObserver, ExitPlan, RowExit } from './backend.js';
import { batchFeedback, FeedbackWindow, type FeedbackRecord } from './feedback.js';
import { deepestAnswer, isFinished, type EngineRequest, type RequestRows, type RowAnswer } from './request.js';
import { batchFeeds } from './batch-feeds.js';
import { DynamicBatcher, type BatchScheduler, type RowSlice } from './scheduler.js';

/**
 * How a request ended, as reported to `EngineObserver.outcome`. The engine owns the list; the
 * metrics layer (src/metrics.ts) imports it for the `outcome` label of `offramp_requests_total`,
 * so the label values and the engine's outcomes cannot drift apart.
 */
export const OUTCOMES = ['ok', 'rejected', 'timed_out', 'failed', 'cancelled'] as const;
export type Outcome = (typeof OUTCOMES)[number];

/** Hooks for metrics (the executor's too: one observer per model); the engine itself does not know Prometheus. */
export interface EngineObserver extends ExecutorObserver {
  answered?(exit: number, latencyMs: number): void;
  queueWait?(ms: number): void;
  batch?(rows: number): void;
  outcome?(outcome: Outcome, code?: string): void;
  /** A cascade's tier `tier` read this batch's rows: `answered` of them it answered, `deferred` it passed on. */
  tierRows?(tier: number, answered: number, deferred: number): void;
}

export interface SubmitOptions {
  priority: number;
  /** Explicit per-request timeout; the SLO latency applies otherwise. */
  timeoutMs?: number;
  signal?: AbortSignal;
  id?: string;
}

export interface RunnerOptions {
  /** The name the model is served under (errors name it). */
  modelName: string;
  batching: BatchingConfig;
  sloLatencyMs: number;
  feedbackWindow: number;
  plan: ExitPlan;
  observer?: EngineObserver;
  now?: () => number;
  /** Batches the backend runs side by side (its workers); divides the queued work in the wait prediction. Default 1. */
  parallelism?: number;
}

/**
 * How far the observed compute time of a batch may stray from its profiled latency in the wait
 * prediction: the profile was measured on some machine, the server may run on a slower or busier one.
 */
const LATENCY_SCALE_BOUNDS = { min: 0.25, max: 50 } as const;
/** Weight of the newest batch in the running mean of observed / profiled batch time. */
const LATENCY_SCALE_WEIGHT = 0.1;

/** Profiled latency of a batch under a plan: the unsplit model, or every segment plus the heads that run (on the probe share only when dormant). */
export function planLatencyMs(manifest: PreparedManifest, plan: ExitPlan, batchSize: number): number {
  const profile = manifest.profile;
  const full = atBatch(profile, profile.fullModelMs, batchSize);
  if (plan.ramps.length === 0) return full;
  const ramped = latencyToAnswer(
    profile,
    plan.ramps.map((r) => r.id),
    -1,
    batchSize,
  );
  // Dormant: only the probe share runs the heads and boundaries.
  return isDormant(plan) ? full + plan.feedbackFraction * (ramped - full) : ramped;
}

export class ModelRunner {
  readonly feedback: FeedbackWindow;
  private readonly scheduler: BatchScheduler;
  private plan: ExitPlan;
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private closing = false;
  private readonly now: () => number;
  private readonly depthOf: Map<number, number>;
  /** Running mean of a batch's observed compute time over its profiled latency (1 until a batch ran). */
  private latencyScale = 1;

  constructor(
    readonly manifest: PreparedManifest,
    private readonly backend: ExecutionBackend,
    private options: RunnerOptions,
  ) {
    this.plan = options.plan;
    this.now = options.now ?? (() => performance.now());
    this.feedback = new FeedbackWindow(options.feedbackWindow);
    this.scheduler = new DynamicBatcher(options.batching, (size) => planLatencyMs(manifest, this.plan, size));
    this.depthOf = new Map(manifest.ramps.map((r) => [r.id, r.computeBefore]));
    // A worker back from a restart (or given up on) changes what can run without a batch settling.
    backend.onCapacityChange(() => this.pump());
  }

  get exitPlan(): ExitPlan {
    return this.plan;
  }

  /** Takes effect from the next batch; batches already running keep the plan they started with. */
  setExitPlan(plan: ExitPlan): void {
    this.plan = plan;
  }

  /** Called with every finished batch's feedback records (the online tuner listens here). */
  onFeedback: ((records: FeedbackRecord[]) => void) | undefined;

  /** Called with the faults a batch result reports (LiveTuning disables the ramps), before the next batch is dispatched. */
  onExecutorFaults: ((faults: ExecutorFault[]) => void) | undefined;

  /** Applies new batching limits and SLO from the next scheduling step (config reload). */
  reconfigure(batching: BatchingConfig, sloLatencyMs: number): void {
    this.options = { ...this.options, batching, sloLatencyMs };
    this.scheduler.reconfigure(batching);
  }

  get queuedRequests(): number {
    return this.scheduler.queuedRequests;
  }

  /**
   * Predicted time from now until a request of `rows` rows at `priority` would be answered, from
   * the work ahead of it — the batches already waiting behind a running one on a worker, and the
   * queued rows of its priority level and more urgent ones — and its own rows, formed into full
   * batches and spread over the workers, its last batch taking its own size's latency. Each batch
   * costs its profiled latency under the plan in force, scaled by how much slower (or faster)
   * batches actually ran here (`latencyScale`). `behindOthers`: some other request's work is ahead.
   */
  predictedWait(rows: number, priority: number): { answerMs: number; behindOthers: boolean } {
    const batch = this.options.batching.maxBatchSize;
    const parallelism = this.options.parallelism ?? 1;
    const latency = (size: number): number => planLatencyMs(this.manifest, this.plan, size) * this.latencyScale;
    const waitingBatches = Math.max(0, this.inFlight - parallelism);
    const rowsAhead = this.scheduler.rowsAhead(priority);
    const total = rowsAhead + rows;
    const batches = Math.ceil(total / batch);
    const lastSize = total - (batches - 1) * batch;
    const answerMs = ((waitingBatches + batches - 1) * latency(batch)) / parallelism + latency(lastSize);
    return { answerMs, behindOthers: waitingBatches > 0 || rowsAhead > 0 };
  }

  /**
   * The admission rule, asked before a request is accepted (the transports ask it before reading
   * the body, with what they know then; `submit` asks again with the request itself):
   *
   *  1. a queue holding `max_queue_size` requests takes no more: OFFRAMP_QUEUE_FULL;
   *  2. when work is queued or waiting ahead of it and the predicted time to answer
   *     (`predictedWait`) is already past the request's deadline, it is refused at once with
   *     OFFRAMP_OVERLOADED — it would only wait to be timed out (OFFRAMP_TIMED_OUT_IN_QUEUE), or be
   *     answered late, and meanwhile delay every request behind it. A fast 429 beats a slow 504.
   *     With nothing ahead a request is always admitted, however long it runs.
   *
   * Before the body is read the transports know neither the rows, the priority nor a `timeout`
   * parameter: they ask for one row at the default (most urgent) level with the SLO's deadline, the
   * most favourable request that can arrive, so this never refuses a request `submit` would take
   * — except one whose `timeout` is longer than the SLO: under a load that already misses the
   * SLO, a longer timeout does not buy a place in the queue. A refusal counts as outcome
   * `rejected`.
   */
  admission(rows = 1, priority = 0, timeoutMs = this.options.sloLatencyMs): OfframpError | null {
    const refusal = this.refusal(rows, priority, timeoutMs);
    if (refusal) this.options.observer?.outcome?.('rejected', refusal.code);
    return refusal;
  }

  private refusal(rows: number, priority: number, timeoutMs: number): OfframpError | null {
    const model = this.options.modelName;
    if (this.closing) return new OfframpError('OFFRAMP_SHUTTING_DOWN');
    const unavailable = this.unavailable();
    if (unavailable) return unavailable;
    const limit = this.options.batching.maxQueueSize;
    if (this.scheduler.queuedRequests >= limit) return new OfframpError('OFFRAMP_QUEUE_FULL', { model, limit });
    const { answerMs, behindOthers } = this.predictedWait(rows, priority);
    if (behindOthers && answerMs > timeoutMs) {
      return new OfframpError('OFFRAMP_OVERLOADED', {
        model,
        predictedMs: Math.round(answerMs),
        deadlineMs: Math.round(timeoutMs),
      });
    }
    return null;
  }

  /** Batches handed to the executor and not yet finished. */
  get runningBatches(): number {
    return this.inFlight;
  }

  submit(input: RequestRows, options: SubmitOptions): Promise<RowAnswer[]> {
    const rows = input.rows;
    if (this.closing) return Promise.reject(new OfframpError('OFFRAMP_SHUTTING_DOWN'));
    const timeoutMs = options.timeoutMs ?? this.options.sloLatencyMs;
    const refusal = this.admission(rows, options.priority, timeoutMs);
    if (refusal) return Promise.reject(refusal);
    const arrival = this.now();
    return new Promise<RowAnswer[]>((resolve, reject) => {
      const request: EngineRequest = {
        id: options.id ?? randomUUID(),
        rows,
        input,
        priority: options.priority,
        arrivalMs: arrival,
        deadlineMs: arrival + timeoutMs,
        state: 'queued',
        dispatchedRows: 0,
        answers: new Array<RowAnswer | undefined>(rows),
        answeredRows: 0,
        resolve,
        reject,
      };
      if (options.signal?.aborted) {
        this.fail(request, 'cancelled', new OfframpError('OFFRAMP_CANCELLED'));
        return;
      }
      options.signal?.addEventListener('abort', () => this.cancel(request), { once: true });
      // admission() checked the bound just above, on the same tick: there is room.
      this.scheduler.add(request);
      this.pump();
    });
  }

  private cancel(request: EngineRequest): void {
    if (isFinished(request.state)) return;
    this.scheduler.remove(request);
    // Rows already running finish in their batch; their answers are simply not delivered.
    this.fail(request, 'cancelled', new OfframpError('OFFRAMP_CANCELLED'));
    this.pump();
  }

  private fail(
    request: EngineRequest,
    state: 'rejected' | 'timed_out' | 'cancelled' | 'failed',
    err: OfframpError,
  ): void {
    if (isFinished(request.state)) return;
    request.state = state;
    this.options.observer?.outcome?.(state, err.code);
    request.reject(err);
  }

  /**
   * One scheduling step per free executor slot; arms a timer when the batcher wants to wait. The
   * batcher is told how many workers are idle, since a free slot may be a busy worker's waiting
   * place (which under work-conserving batching takes only a batch that cannot grow).
   */
  private pump(): void {
    const unavailable = this.unavailable();
    if (unavailable) {
      for (const r of this.scheduler.removeAll()) this.fail(r, 'failed', unavailable);
      return;
    }
    // While workers restart `slots` is lower (0 with none ready): queued requests wait for them,
    // and the backend calls this again when one is back.
    while (this.inFlight < this.backend.slots) {
      const now = this.now();
      const step = this.scheduler.step(now, { idleWorkers: this.backend.idleWorkers });
      for (const r of step.expired) {
        this.fail(
          r,
          'timed_out',
          new OfframpError('OFFRAMP_TIMED_OUT_IN_QUEUE', {
            model: this.options.modelName,
            waitedMs: Math.round(now - r.arrivalMs),
          }),
        );
      }
      if (step.kind === 'batch') {
        this.dispatch(step.slices, step.rows);
        continue;
      }
      if (step.kind === 'wait') this.armTimer(step.untilMs);
      return;
    }
  }

  /** The error for every request once the backend has given up on its workers; undefined before. */
  private unavailable(): OfframpError | undefined {
    const reason = this.backend.failure;
    if (reason === null) return undefined;
    return new OfframpError('OFFRAMP_MODEL_NOT_READY', { model: this.options.modelName, reason });
  }

  private armTimer(atMs: number): void {
    if (this.timer && this.timerAt <= atMs) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = atMs;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.timerAt = Number.POSITIVE_INFINITY;
        this.pump();
      },
      Math.max(0, atMs - this.now()),
    );
  }

  private dispatch(slices: RowSlice[], rows: number): void {
    const input = batchFeeds(this.manifest, slices, rows);
    /** Batch row → (request, row within the request). */
    const owners: { request: EngineRequest; row: number }[] = [];
    const now = this.now();
    for (const slice of slices) {
      const r = slice.request;
      for (let i = 0; i < slice.rows; i++) owners.push({ request: r, row: slice.firstRow + i });
      if (r.state === 'queued') {
        r.state = 'running';
        r.startedMs = now;
        this.options.observer?.queueWait?.(now - r.arrivalMs);
      }
    }
    const plan = this.plan;
    this.inFlight++;
    this.options.observer?.batch?.(rows);
    this.backend
      .run(input, plan, (exits) => this.onExits(exits, owners))
      .then((result) => {
        this.observeBatchTime(result.timings.totalMs, planLatencyMs(this.manifest, plan, rows));
        this.onBatchDone(result, owners);
      })
      .catch((err: unknown) => {
        // A coded error from the backend (a worker failed: OFFRAMP_EXECUTOR_FAILED, retryable)
        // reaches the client as it is; anything else is onnxruntime failing on the batch.
        const failure = isOfframpError(err)
          ? err
          : new OfframpError(
              'OFFRAMP_INFERENCE_FAILED',
              { model: this.options.modelName, reason: (err as Error).message ?? String(err) },
              { cause: err },
            );
        for (const o of owners) this.fail(o.request, 'failed', failure);
      })
      .finally(() => {
        this.inFlight--;
        this.pump();
      });
  }

  private observeBatchTime(observedMs: number, profiledMs: number): void {
    if (!(observedMs > 0 && profiledMs > 0)) return; // a backend that does not time its batches
    const ratio = Math.min(LATENCY_SCALE_BOUNDS.max, Math.max(LATENCY_SCALE_BOUNDS.min, observedMs / profiledMs));
    this.latencyScale += LATENCY_SCALE_WEIGHT * (ratio - this.latencyScale);
  }

  private answer(request: EngineRequest, row: number, answer: RowAnswer): void {
    if (isFinished(request.state) || request.answers[row]) return;
    request.answers[row] = answer;
    request.answeredRows++;
    if (request.answeredRows < request.rows) return;
    const allEarly = request.answers.every((a) => a && a.ramp >= 0);
    request.state = allEarly ? 'exited' : 'finished';
    // A request is as late as its deepest row: that row's ramp (or -1) labels its latency.
    this.options.observer?.answered?.(
      deepestAnswer(request.answers as RowAnswer[]).ramp,
      this.now() - request.arrivalMs,
    );
    this.options.observer?.outcome?.('ok');
    request.resolve(request.answers as RowAnswer[]);
  }

  private onExits(exits: RowExit[], owners: { request: EngineRequest; row: number }[]): void {
    for (const e of exits) {
      const owner = owners[e.row];
      if (!owner) continue;
      this.answer(owner.request, owner.row, {
        ramp: e.ramp,
        argmax: e.argmax,
        confidence: e.confidence,
        probs: e.probs,
        depth: this.depthOf.get(e.ramp) ?? 1,
        ...(e.votes ? { votes: e.votes } : {}),
        ...(e.agreement !== undefined ? { agreement: e.agreement } : {}),
      });
    }
  }

  private onBatchDone(result: BatchResult, owners: { request: EngineRequest; row: number }[]): void {
    if (result.faults) this.onExecutorFaults?.(result.faults);
    this.countTierRows(result);
    const c = result.classes;
    const records = batchFeedback(result, Date.now());
    // Rows no ramp answered get the final layer's answer (the feedback record already holds its argmax).
    result.finalRows.forEach((row, i) => {
      const owner = owners[row];
      const final = records[row]?.final;
      if (!owner || !final || result.exitRamp[row] !== -1) return;
      const probs = result.finalProbs.slice(i * c, (i + 1) * c);
      this.answer(owner.request, owner.row, {
        ramp: -1,
        argmax: final.argmax,
        confidence: final.confidence,
        probs,
        depth: 1,
      });
    });
    // Feedback: every row, with what each active ramp said about it and what the model said.
    const now = this.now();
    records.forEach((record, row) => {
      const request = owners[row]?.request;
      if (!request) return;
      record.queueMs = (request.startedMs ?? now) - request.arrivalMs;
      record.latencyMs = now - request.arrivalMs;
      this.feedback.add(record);
    });
    this.onFeedback?.(records);
  }

  /**
   * A cascade's answers and deferrals per tier (exits 0..T−1). A row a tier read but an earlier
   * tier had answered (a probe) is neither: it was not the tier's to answer.
   */
  private countTierRows(result: BatchResult): void {
    const tiers = tierCount(this.manifest.profile);
    if (tiers === 0 || !this.options.observer?.tierRows) return;
    for (const reading of result.readings) {
      if (reading.ramp >= tiers) continue;
      let answered = 0;
      let deferred = 0;
      for (const row of reading.rows) {
        const exit = result.exitRamp[row] as number;
        if (exit === reading.ramp) answered++;
        else if (exit === -1 || exit > reading.ramp) deferred++;
      }
      this.options.observer.tierRows(reading.ramp, answered, deferred);
    }
  }

  /** Stops taking requests, lets queued and running ones finish, then closes the executor. */
  async drain(): Promise<void> {
    this.closing = true;
    while (this.inFlight > 0 || this.scheduler.queuedRequests > 0) {
      this.pump();
      await new Promise((r) => setTimeout(r, 5));
    }
    if (this.timer) clearTimeout(this.timer);
    await this.backend.close();
  }
}
