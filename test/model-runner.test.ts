import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ModelRunner, planLatencyMs, type EngineObserver } from '../src/engine/model-runner.js';
import type { BatchInput, BatchResult, ExecutionBackend, ExitPlan, RowExit } from '../src/engine/backend.js';
import type { PreparedManifest } from '../src/model/manifest.js';
import { OfframpError } from '../src/errors.js';
import type { BatchDelay } from '../src/config/index.js';
import type { HostTensor } from '../src/model/tensor.js';
import type { RequestRows } from '../src/engine/request.js';

/** A manifest with just what the runner reads: two ramps, a 3-class output, a latency profile. */
const manifest = {
  name: 'fake',
  model: { classes: 3, inputs: [{ name: 'x', type: 'float32', dims: ['batch', 1] }] },
  ramps: [
    { id: 0, computeBefore: 0.3 },
    { id: 1, computeBefore: 0.6 },
  ],
  profile: {
    batchSizes: [1, 2, 4],
    segmentMs: [
      [1, 1, 1],
      [1, 1, 1],
      [1, 1, 1],
    ],
    headMs: [
      [0, 0, 0],
      [0, 0, 0],
    ],
    fullModelMs: [3, 3, 3],
  },
} as unknown as PreparedManifest;

/** Rows of one number each: ≥ 0.5 exits at ramp 0 in the fake backend. */
const dense = (data: Float32Array, rows: number): RequestRows => ({ kind: 'dense', rows, data, rowShape: [1] });

const plan: ExitPlan = {
  policy: 'confidence',
  patience: 2,
  mode: 'release',
  feedbackFraction: 0,
  ramps: [{ id: 0, threshold: 0.9 }],
};

/**
 * Rows whose first input value is ≥ 0.5 exit at ramp 0 (class 1); the batch then waits for
 * `release()` before it "reaches the final layer", where every row gets class 2.
 */
class GatedBackend implements ExecutionBackend {
  batches: number[] = [];
  private gates: (() => void)[] = [];
  /** Batches held, as in one worker: it is idle when it holds none. */
  private held = 0;
  failNext = false;
  /** The compute time each batch reports (`timings.totalMs`); 0 = not timed. */
  reportedMs = 0;

  /** One worker; `slots` 2 gives it a waiting place beside the running batch, as the worker pool does. */
  constructor(readonly slots = 1) {}

  get idleWorkers(): number {
    return this.held === 0 ? 1 : 0;
  }

  readonly readyWorkers = 1;
  readonly failure = null;
  onCapacityChange(): void {}

  async run(input: BatchInput, plan: ExitPlan, onExit: (exits: RowExit[]) => void): Promise<BatchResult> {
    // Counted from the call, released before the promise settles: the contract the runner relies on.
    this.held++;
    try {
      return await this.gatedRun(input, plan, onExit);
    } finally {
      this.held--;
    }
  }

  private async gatedRun(input: BatchInput, _plan: ExitPlan, onExit: (exits: RowExit[]) => void): Promise<BatchResult> {
    const x = input['x'] as HostTensor;
    const rows = x.dims[0] as number;
    this.batches.push(rows);
    if (this.failNext) {
      this.failNext = false;
      throw new Error('segment 1 exploded');
    }
    const data = x.data as Float32Array;
    const exitRamp = new Int32Array(rows).fill(-1);
    const exits: RowExit[] = [];
    for (let r = 0; r < rows; r++) {
      if ((data[r] as number) >= 0.5) {
        exitRamp[r] = 0;
        exits.push({ row: r, ramp: 0, argmax: 1, confidence: 0.95, probs: Float32Array.from([0.025, 0.95, 0.025]) });
      }
    }
    if (exits.length > 0) onExit(exits);
    await new Promise<void>((resolve) => this.gates.push(resolve));
    const finalProbs = new Float32Array(rows * 3);
    for (let r = 0; r < rows; r++) finalProbs.set([0.1, 0.2, 0.7], r * 3);
    return {
      finalRows: Int32Array.from({ length: rows }, (_, i) => i),
      finalProbs,
      classes: 3,
      readings: [
        {
          ramp: 0,
          rows: Int32Array.from({ length: rows }, (_, i) => i),
          argmax: new Int32Array(rows).fill(1),
          confidence: new Float32Array(rows).fill(0.95),
          score: new Float32Array(rows).fill(0.95),
        },
      ],
      exitRamp,
      probe: new Uint8Array(rows).fill(1),
      timings: { segmentMs: [], headMs: [], totalMs: this.reportedMs },
    };
  }

  release(): void {
    for (const g of this.gates.splice(0)) g();
  }

  close(): Promise<void> {
    this.release();
    return Promise.resolve();
  }
}

function runner(
  backend: ExecutionBackend,
  overrides: {
    maxQueueSize?: number;
    maxBatchSize?: number;
    maxQueueDelayMs?: number;
    delay?: BatchDelay;
    sloLatencyMs?: number;
    observer?: EngineObserver;
  } = {},
): ModelRunner {
  return new ModelRunner(manifest, backend, {
    modelName: 'fake',
    batching: {
      maxBatchSize: overrides.maxBatchSize ?? 4,
      delay: overrides.delay ?? 'work-conserving',
      maxQueueDelayMs: overrides.maxQueueDelayMs ?? 1,
      maxQueueSize: overrides.maxQueueSize ?? 16,
      preferredBatchSizes: [],
    },
    sloLatencyMs: overrides.sloLatencyMs ?? 10_000,
    feedbackWindow: 100,
    plan,
    ...(overrides.observer ? { observer: overrides.observer } : {}),
  });
}

/**
 * The runner's clock (performance.now) and its batching timer are vitest's fake ones: time moves
 * only when a test advances it, so "the batcher waited" and "the deadline passed" do not depend on
 * how fast the machine is.
 */
beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

/** Lets 5 ms pass: due timers fire, and the promises they settle run. */
const tick = () => vi.advanceTimersByTimeAsync(5);

/** The batcher's fixed wait for a fuller batch in the tests that put two requests in one. */
const DELAY_MS = 10;

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await tick();
}

describe('model runner', () => {
  it('answers an exited row before its batch reaches the final layer', async () => {
    const backend = new GatedBackend();
    const r = runner(backend, { delay: 'fixed', maxQueueDelayMs: DELAY_MS });
    const events: string[] = [];
    const early = r
      .submit(dense(Float32Array.from([0.9]), 1), { priority: 0 })
      .then((a) => events.push(`early ramp=${a[0]?.ramp}`));
    const late = r
      .submit(dense(Float32Array.from([0.1]), 1), { priority: 0 })
      .then((a) => events.push(`late ramp=${a[0]?.ramp}`));
    // Two rows of a possible four: the batcher waits for more until the delay has passed.
    await vi.advanceTimersByTimeAsync(DELAY_MS - 1);
    expect(backend.batches).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    await early;
    events.push('batch released');
    backend.release();
    await late;
    expect(events).toEqual(['early ramp=0', 'batch released', 'late ramp=-1']);
    expect(backend.batches).toEqual([2]);
  });

  it('records feedback for every row, exited or not, with the final answer', async () => {
    const backend = new GatedBackend();
    const r = runner(backend, { delay: 'fixed', maxQueueDelayMs: DELAY_MS });
    const done = Promise.all([
      r.submit(dense(Float32Array.from([0.9]), 1), { priority: 0 }),
      r.submit(dense(Float32Array.from([0.1]), 1), { priority: 0 }),
    ]);
    await until(() => backend.batches.length === 1);
    expect(backend.batches).toEqual([2]);
    backend.release();
    await done;
    const records = r.feedback.snapshot();
    expect(records.map((x) => x.exit)).toEqual([0, -1]);
    expect(records.every((x) => x.final?.argmax === 2 && x.ramps[0]?.argmax === 1)).toBe(true);
    // The exited row answered class 1 while the full model says 2: one of two rows disagrees.
    expect(r.feedback.stats().disagreement).toBe(0.5);
  });

  it('work-conserving: a lone request goes to an idle backend without the clock moving', async () => {
    const backend = new GatedBackend(2);
    const r = runner(backend, { maxQueueDelayMs: DELAY_MS });
    const answer = r.submit(dense(Float32Array.from([0.1]), 1), { priority: 0 });
    expect(backend.batches).toEqual([1]);
    backend.release();
    await expect(answer).resolves.toHaveLength(1);
  });

  it('work-conserving: requests arriving while the backend is busy accumulate into one batch', async () => {
    const backend = new GatedBackend(2);
    const r = runner(backend, { maxQueueDelayMs: DELAY_MS });
    const first = r.submit(dense(Float32Array.from([0.1]), 1), { priority: 0 });
    const later = [0.1, 0.2, 0.3].map((x) => r.submit(dense(Float32Array.from([x]), 1), { priority: 0 }));
    // Far past the fixed delay, and the worker's waiting place is free, yet the three wait to grow.
    await vi.advanceTimersByTimeAsync(5 * DELAY_MS);
    expect(backend.batches).toEqual([1]);
    backend.release();
    await first;
    await until(() => backend.batches.length === 2);
    expect(backend.batches).toEqual([1, 3]);
    backend.release();
    await expect(Promise.all(later)).resolves.toHaveLength(3);
  });

  it('answers a multi-row request when its last row is decided', async () => {
    const backend = new GatedBackend();
    const r = runner(backend);
    let settled = false;
    const p = r.submit(dense(Float32Array.from([0.9, 0.1]), 2), { priority: 0 }).then((a) => {
      settled = true;
      return a;
    });
    await tick();
    expect(settled).toBe(false);
    backend.release();
    const answers = await p;
    expect(answers.map((a) => a.ramp)).toEqual([0, -1]);
  });

  it('a failing batch fails only its own requests; the next batch is served', async () => {
    const backend = new GatedBackend();
    const r = runner(backend, { maxBatchSize: 1 });
    backend.failNext = true;
    const failed = r.submit(dense(Float32Array.from([0.1]), 1), { priority: 0 });
    const ok = r.submit(dense(Float32Array.from([0.1]), 1), { priority: 0 });
    await expect(failed).rejects.toMatchObject({ code: 'OFFRAMP_INFERENCE_FAILED' });
    await tick();
    backend.release();
    await expect(ok).resolves.toHaveLength(1);
  });

  it('rejects with QUEUE_FULL beyond max_queue_size without disturbing queued requests', async () => {
    const backend = new GatedBackend();
    const r = runner(backend, { maxQueueSize: 1, maxBatchSize: 1 });
    const running = r.submit(dense(Float32Array.from([0.1]), 1), { priority: 0 }); // dispatched at once
    await tick();
    const queued = r.submit(dense(Float32Array.from([0.1]), 1), { priority: 0 });
    await expect(r.submit(dense(Float32Array.from([0.1]), 1), { priority: 0 })).rejects.toSatisfy((e) =>
      OfframpError.is(e, 'OFFRAMP_QUEUE_FULL'),
    );
    backend.release();
    await running;
    await tick();
    backend.release();
    await expect(queued).resolves.toHaveLength(1);
  });

  it('refuses at once (OFFRAMP_OVERLOADED) a request the queued work would answer past its deadline', async () => {
    const backend = new GatedBackend();
    const r = runner(backend, { maxBatchSize: 1 });
    const batchMs = planLatencyMs(manifest, plan, 1);
    const running = r.submit(dense(Float32Array.from([0.1]), 1), { priority: 0 }); // dispatched at once
    await tick();
    // Nothing queued ahead: admitted however short its deadline (the batcher times it out if need be).
    const next = r.submit(dense(Float32Array.from([0.1]), 1), { priority: 0, timeoutMs: batchMs / 2 });
    // One batch queued ahead: answered in about two batch times.
    expect(r.predictedWait(1, 0)).toEqual({ answerMs: 2 * batchMs, behindOthers: true });
    const refused = r.submit(dense(Float32Array.from([0.1]), 1), { priority: 0, timeoutMs: 1.5 * batchMs });
    await expect(refused).rejects.toSatisfy((e) => OfframpError.is(e, 'OFFRAMP_OVERLOADED'));
    // A deadline the prediction meets is admitted; a lower priority (a larger value) queues behind more work.
    const admitted = r.submit(dense(Float32Array.from([0.1]), 1), { priority: 0, timeoutMs: 2.5 * batchMs });
    expect(r.predictedWait(1, 5).answerMs).toBe(3 * batchMs);
    expect(r.queuedRequests).toBe(2);
    for (const p of [running, next, admitted]) {
      backend.release();
      await tick();
      await p.catch(() => undefined);
    }
    await expect(running).resolves.toHaveLength(1);
    await expect(admitted).resolves.toHaveLength(1);
  });

  it('admits a request with nothing ahead of it whatever its own rows take', async () => {
    const backend = new GatedBackend();
    const r = runner(backend, { maxBatchSize: 1, sloLatencyMs: 1 });
    expect(r.predictedWait(50, 0)).toMatchObject({ behindOthers: false });
    expect(r.predictedWait(50, 0).answerMs).toBeGreaterThan(1);
    const big = r.submit(dense(new Float32Array(50).fill(0.1), 50), { priority: 0 });
    while (backend.batches.length < 50) {
      backend.release();
      await tick();
    }
    backend.release();
    await expect(big).resolves.toHaveLength(50);
  });

  it('scales the predicted wait by how long batches really took against their profile', async () => {
    const backend = new GatedBackend();
    const r = runner(backend, { maxBatchSize: 1 });
    const batchMs = planLatencyMs(manifest, plan, 1);
    expect(r.predictedWait(2, 0).answerMs).toBe(2 * batchMs);
    backend.reportedMs = 10 * batchMs; // this machine runs batches ten times slower than profiled
    const p = r.submit(dense(Float32Array.from([0.1]), 1), { priority: 0 });
    await tick();
    backend.release();
    await p;
    // The running mean moved a tenth of the way from 1 to 10.
    expect(r.predictedWait(2, 0).answerMs).toBeCloseTo(2 * batchMs * 1.9, 6);
  });

  it('admission() before a body is read refuses a full queue and counts it as rejected', async () => {
    const outcomes: string[] = [];
    const backend = new GatedBackend();
    const r = runner(backend, {
      maxQueueSize: 1,
      maxBatchSize: 1,
      observer: { outcome: (o, code) => outcomes.push(`${o} ${code ?? ''}`.trim()) },
    });
    expect(r.admission()).toBeNull();
    const running = r.submit(dense(Float32Array.from([0.1]), 1), { priority: 0 });
    await tick();
    const queued = r.submit(dense(Float32Array.from([0.1]), 1), { priority: 0 });
    expect(r.admission()?.code).toBe('OFFRAMP_QUEUE_FULL');
    expect(outcomes).toEqual(['rejected OFFRAMP_QUEUE_FULL']);
    backend.release();
    await running;
    await tick();
    backend.release();
    await queued;
    expect(r.admission()).toBeNull();
  });

  it('a request whose timeout passes in the queue is rejected and never run', async () => {
    const backend = new GatedBackend();
    const r = runner(backend, { maxBatchSize: 1 });
    const first = r.submit(dense(Float32Array.from([0.1]), 1), { priority: 0 });
    await tick();
    const doomed = r.submit(dense(Float32Array.from([0.1]), 1), { priority: 0, timeoutMs: 1 });
    await tick();
    backend.release();
    await first;
    await expect(doomed).rejects.toMatchObject({ code: 'OFFRAMP_TIMED_OUT_IN_QUEUE' });
    expect(backend.batches).toEqual([1]);
  });

  it('a cancelled queued request is dropped and the others still run', async () => {
    const backend = new GatedBackend();
    const r = runner(backend, { maxBatchSize: 1 });
    const first = r.submit(dense(Float32Array.from([0.1]), 1), { priority: 0 });
    await tick();
    const controller = new AbortController();
    const cancelled = r.submit(dense(Float32Array.from([0.1]), 1), { priority: 0, signal: controller.signal });
    const kept = r.submit(dense(Float32Array.from([0.1]), 1), { priority: 0 });
    controller.abort();
    await expect(cancelled).rejects.toMatchObject({ code: 'OFFRAMP_CANCELLED' });
    backend.release();
    await first;
    await tick();
    backend.release();
    await kept;
    expect(backend.batches).toEqual([1, 1]);
  });
});
