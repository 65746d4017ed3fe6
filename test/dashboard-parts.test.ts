/**
 * The dashboard's server-side parts on their own: the interval arithmetic (bucket-difference
 * quantiles as Prometheus' histogram_quantile, counter differences), the ring buffer, one SSE
 * stream's backpressure, and the frontier (predicted from the bundled model's profile, measured
 * from bench results). The whole of it on a real server is test/dashboard.test.ts.
 */
import { EventEmitter } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bucketIncrease,
  counterIncrease,
  histogramQuantile,
  intervalFigures,
  perBucket,
  type ModelTotals,
} from '../src/dashboard/interval-stats.js';
import { SnapshotRing } from '../src/dashboard/snapshot-ring.js';
import { SseStream, type SseSink } from '../src/dashboard/sse-stream.js';
import {
  BenchResults,
  benchSummary,
  measuredCurves,
  measuredPercentile,
  predictedFrontier,
  type FrontierInputs,
} from '../src/dashboard/frontier.js';
import { readManifest, type PreparedManifest } from '../src/model/manifest.js';
import { LATENCY_BUCKETS } from '../src/metrics.js';
import { BUNDLED_DIR } from './helpers/bundled.js';

describe('histogramQuantile (Prometheus histogram_quantile on bucket counts)', () => {
  const bounds = [0.1, 0.2, 0.5, 1];
  // 10 observations in each finite bucket, none above 1.
  const cumulative = [10, 20, 30, 40, 40];

  it('interpolates linearly within the bucket holding rank q × total, the first bucket from 0', () => {
    expect(histogramQuantile(0.25, bounds, cumulative)).toBeCloseTo(0.1, 12);
    expect(histogramQuantile(0.5, bounds, cumulative)).toBeCloseTo(0.2, 12);
    expect(histogramQuantile(0.6, bounds, cumulative)).toBeCloseTo(0.2 + 0.3 * 0.4, 12);
    expect(histogramQuantile(0.95, bounds, cumulative)).toBeCloseTo(0.5 + 0.5 * 0.8, 12);
    expect(histogramQuantile(0.05, bounds, cumulative)).toBeCloseTo(0.02, 12);
  });

  it('gives the highest finite bound for a rank in the +Inf bucket, and null without observations', () => {
    expect(histogramQuantile(0.5, bounds, [0, 0, 0, 0, 5])).toBe(1);
    expect(histogramQuantile(0.99, bounds, [0, 0, 0, 9, 10])).toBe(1);
    expect(histogramQuantile(0.5, bounds, [0, 0, 0, 0, 0])).toBeNull();
  });

  it('skips empty buckets: the rank lands in the first bucket that reaches it', () => {
    // 4 observations in (0.2, 0.5]: the median is halfway through that bucket.
    expect(histogramQuantile(0.5, bounds, [0, 0, 4, 4, 4])).toBeCloseTo(0.35, 12);
  });

  it('refuses a q outside (0, 1] and counts that do not fit the bounds', () => {
    expect(() => histogramQuantile(0, bounds, cumulative)).toThrow(RangeError);
    expect(() => histogramQuantile(1.5, bounds, cumulative)).toThrow(RangeError);
    expect(() => histogramQuantile(0.5, bounds, [1, 2])).toThrow(RangeError);
  });
});

describe('counter and bucket differences', () => {
  it('is the growth between two readings; a series that restarted counts from 0', () => {
    expect(counterIncrease(undefined, 7)).toBe(7);
    expect(counterIncrease(3, 7)).toBe(4);
    expect(counterIncrease(9, 2)).toBe(2);
    expect(bucketIncrease([1, 2, 3], [1, 4, 9])).toEqual([0, 2, 6]);
    expect(bucketIncrease(undefined, [1, 4, 9])).toEqual([1, 4, 9]);
    expect(perBucket([1, 4, 9, 9])).toEqual([1, 3, 5, 0]);
  });

  it("gives a model's interval figures: the quantiles of the interval only, rates, shares", () => {
    const zeros = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0);
    // Before: 100 slow answers (≤ 2 s). After: 20 more, all ≤ 1 ms.
    const before: ModelTotals = {
      latency: LATENCY_BUCKETS.map((b) => (b >= 2 ? 100 : 0)).concat(100),
      batchSizes: [0, 0, 10, 10, 10, 10, 10, 10, 10],
      outcomes: { ok: 100, rejected: 1 },
      exits: { final: 100 },
    };
    const after: ModelTotals = {
      latency: LATENCY_BUCKETS.map((b) => (b >= 0.001 ? 20 : 0) + (b >= 2 ? 100 : 0)).concat(120),
      batchSizes: [4, 4, 10, 12, 12, 12, 12, 12, 12],
      outcomes: { ok: 120, rejected: 3, timed_out: 1 },
      exits: { final: 105, '2': 15 },
    };
    const figures = intervalFigures(before, after, 2, LATENCY_BUCKETS);
    // Every one of the interval's 20 answers lies in (0.5 ms, 1 ms]: the old slow ones do not count.
    expect(figures.latencyMs?.p50).toBeCloseTo(0.75, 9);
    expect(figures.latencyMs?.p99).toBeCloseTo(0.5 + 0.5 * 0.99, 9);
    expect(figures.answersPerS).toBe(10);
    expect(figures.errorsPerS).toBe(1.5);
    expect(figures.answers).toBe(20);
    expect(figures.batchSizes).toEqual([4, 0, 0, 2, 0, 0, 0, 0, 0]);
    expect(figures.exitShares).toEqual({ final: 0.25, '2': 0.75 });

    const idle = intervalFigures(after, after, 1, LATENCY_BUCKETS);
    expect(idle).toMatchObject({ latencyMs: null, answersPerS: 0, errorsPerS: 0, exitShares: {} });
    expect(intervalFigures(undefined, { ...after, latency: zeros }, 1, LATENCY_BUCKETS).latencyMs).toBeNull();
  });
});

const frame = (seq: number) => ({ seq, text: `id: ${seq}\nevent: snapshot\ndata: {"seq":${seq}}\n\n` });

describe('SnapshotRing', () => {
  it('keeps the last `capacity` frames and gives those after a seq, all when the seq is older', () => {
    const ring = new SnapshotRing(3);
    expect(ring.since(0)).toEqual([]);
    expect([ring.oldestSeq, ring.newestSeq]).toEqual([0, 0]);
    for (let s = 1; s <= 5; s++) ring.push(frame(s));
    expect([ring.size, ring.oldestSeq, ring.newestSeq]).toEqual([3, 3, 5]);
    expect(ring.since(0).map((f) => f.seq)).toEqual([3, 4, 5]);
    expect(ring.since(1).map((f) => f.seq)).toEqual([3, 4, 5]);
    expect(ring.since(3).map((f) => f.seq)).toEqual([4, 5]);
    expect(ring.since(5)).toEqual([]);
    expect(() => ring.push(frame(9))).toThrow(RangeError);
  });
});

/** A socket-like sink whose buffer takes `room` frames, then refuses until `drain()`. */
class FakeSink extends EventEmitter implements SseSink {
  readonly written: string[] = [];
  ended = false;
  destroyed = false;
  private pending = 0;
  constructor(private readonly room: number) {
    super();
  }
  write(chunk: string): boolean {
    this.written.push(chunk);
    if (chunk.startsWith('retry:')) return true;
    this.pending++;
    return this.pending < this.room;
  }
  /** The client read everything. */
  drain(): void {
    this.pending = 0;
    this.emit('drain');
  }
  end(): void {
    this.ended = true;
    this.emit('close');
  }
  destroy(): void {
    this.destroyed = true;
    this.emit('close');
  }
  cork(): void {}
  uncork(): void {}
  seqs(): number[] {
    return this.written.filter((w) => w.startsWith('id:')).map((w) => Number(/^id: (\d+)/.exec(w)?.[1]));
  }
}

describe('SseStream', () => {
  const ringOf = (from: number, to: number, capacity = 100) => {
    const ring = new SnapshotRing(capacity);
    for (let s = from; s <= to; s++) ring.push(frame(s));
    return ring;
  };
  const options = (now = () => 0) => {
    const state = { closed: 0 };
    return { state, options: { retryMs: 1000, stallMs: 5000, now, onClose: () => state.closed++ } };
  };

  it('starts with the retry hint, then the whole buffer for a new stream', () => {
    const sink = new FakeSink(1000);
    new SseStream(sink, ringOf(1, 5), undefined, options().options);
    expect(sink.written[0]).toBe('retry: 1000\n\n');
    expect(sink.seqs()).toEqual([1, 2, 3, 4, 5]);
  });

  it('resumes after Last-Event-ID; from the oldest when the id is older than the ring or newer than anything in it', () => {
    const ring = ringOf(1, 10, 5); // holds 6..10
    const at = (last: number | undefined) => {
      const sink = new FakeSink(1000);
      new SseStream(sink, ring, last, options().options);
      return sink.seqs();
    };
    expect(at(8)).toEqual([9, 10]);
    expect(at(10)).toEqual([]);
    expect(at(2)).toEqual([6, 7, 8, 9, 10]);
    expect(at(999)).toEqual([6, 7, 8, 9, 10]);
  });

  it('stops writing when the socket is full and catches up from the ring after drain: no loss, no duplicate', () => {
    const ring = ringOf(1, 3);
    const sink = new FakeSink(2);
    const stream = new SseStream(sink, ring, undefined, options().options);
    expect(sink.seqs()).toEqual([1, 2]);
    for (let s = 4; s <= 8; s++) {
      ring.push(frame(s));
      stream.pump();
    }
    // Nothing more was queued while the client did not read.
    expect(sink.seqs()).toEqual([1, 2]);
    sink.drain();
    expect(sink.seqs()).toEqual([1, 2, 3, 4]);
    sink.drain();
    sink.drain();
    expect(sink.seqs()).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(stream.closed).toBe(false);
  });

  it('drops a stream whose socket stays full for stallMs', () => {
    let now = 0;
    const ring = ringOf(1, 3);
    const sink = new FakeSink(1);
    const { state, options: opts } = options(() => now);
    const stream = new SseStream(sink, ring, undefined, opts);
    now = 4999;
    ring.push(frame(4));
    stream.pump();
    expect(sink.destroyed).toBe(false);
    now = 5000;
    ring.push(frame(5));
    stream.pump();
    expect(sink.destroyed).toBe(true);
    expect(stream.closed).toBe(true);
    expect(state.closed).toBe(1);
  });

  it('is over at once on a sink whose client already left', () => {
    const gone = new FakeSink(1000);
    gone.destroyed = true;
    const { state, options: opts } = options();
    const stream = new SseStream(gone, ringOf(1, 2), undefined, opts);
    expect([stream.closed, state.closed, gone.written.length]).toEqual([true, 1, 0]);
  });

  it('ends gracefully, or destroys a full socket that could not flush the end', () => {
    const free = new FakeSink(1000);
    const a = options();
    new SseStream(free, ringOf(1, 2), undefined, a.options).end();
    expect([free.ended, free.destroyed, a.state.closed]).toEqual([true, false, 1]);
    const full = new FakeSink(1);
    const b = options();
    const stream = new SseStream(full, ringOf(1, 2), undefined, b.options);
    stream.end();
    stream.end();
    expect([full.ended, full.destroyed, b.state.closed]).toEqual([false, true, 1]);
  });
});

describe('predicted frontier', () => {
  let manifest: PreparedManifest;
  beforeAll(async () => {
    manifest = await readManifest(BUNDLED_DIR);
  });

  const inputs = (overrides: Partial<FrontierInputs> = {}): FrontierInputs => ({
    manifest,
    plan: {
      policy: 'confidence',
      patience: 2,
      mode: 'drop',
      feedbackFraction: 0.1,
      ramps: [{ id: 1, threshold: 0.9 }],
    },
    workers: 2,
    batching: {
      maxBatchSize: 8,
      delay: 'work-conserving',
      maxQueueDelayMs: 4,
      maxQueueSize: 256,
      preferredBatchSizes: [],
    },
    slo: { latencyMs: 50, percentile: 95 },
    exitRates: new Map([[1, 0.6]]),
    ...overrides,
  });

  it('gives vanilla and the plan in force, a point per profiled batch size up to max_batch_size', () => {
    const [vanilla, plan] = predictedFrontier(inputs());
    expect(vanilla?.label).toBe('vanilla');
    expect(plan?.label).toBe('plan in force');
    const sizes = manifest.profile.batchSizes.filter((b) => b <= 8);
    for (const curve of [vanilla!, plan!]) {
      expect(curve.points).toHaveLength(sizes.length);
      for (const p of curve.points) {
        expect(p.throughputRps).toBeGreaterThan(0);
        expect(p.latencyMs).toBeGreaterThan(0);
      }
      const rates = curve.points.map((p) => p.throughputRps);
      expect(rates).toEqual([...rates].sort((a, b) => a - b));
    }
    // Batch 1 on 2 workers: capacity 2 / L(1); latency L(1) / 2 waiting plus L(1) running.
    const full1 = manifest.profile.fullModelMs[0]!;
    expect(vanilla!.points[0]!.throughputRps).toBeCloseTo(2000 / full1, 6);
    expect(vanilla!.points[0]!.latencyMs).toBeCloseTo(full1 * 1.5, 6);
  });

  it("answers sooner under a plan whose window exits early, and a plan's heads cost capacity", () => {
    const [vanilla, plan] = predictedFrontier(inputs());
    // Batch 1: the ramp answers 60 % of the rows from a third of the model.
    expect(plan!.points[0]!.latencyMs).toBeLessThan(vanilla!.points[0]!.latencyMs);
    expect(plan!.points[0]!.throughputRps).toBeLessThan(vanilla!.points[0]!.throughputRps);
    const [, never] = predictedFrontier(inputs({ exitRates: new Map() }));
    expect(never!.points[0]!.latencyMs).toBeGreaterThan(plan!.points[0]!.latencyMs);
  });

  it('waits at most max_queue_delay_ms for a batch with delay: fixed', () => {
    const batching = {
      maxBatchSize: 16,
      delay: 'fixed' as const,
      maxQueueDelayMs: 0.01,
      maxQueueSize: 256,
      preferredBatchSizes: [],
    };
    const [vanilla] = predictedFrontier(inputs({ batching }));
    const latencies = vanilla!.points.map((p) => p.latencyMs).sort((a, b) => a - b);
    const expected = manifest.profile.fullModelMs.map((ms) => ms + 0.01).sort((a, b) => a - b);
    expect(latencies).toHaveLength(expected.length);
    latencies.forEach((ms, i) => expect(ms).toBeCloseTo(expected[i]!, 9));
  });
});

describe('measured frontier (bench results)', () => {
  const run = (label: string, rate: number, p95: number | null, extra: Record<string, unknown> = {}) => ({
    label,
    computed: false,
    pattern: 'poisson',
    rate_rps: rate,
    p50_ms: 1,
    p95_ms: p95,
    p99_ms: p95 === null ? null : p95 * 2,
    ...extra,
  });
  const results = (model: string, startedAt: string, runs: unknown[]) => ({
    format: 'offramp.bench/2',
    started_at: startedAt,
    provenance: { commit: 'abc123' },
    model: { name: model },
    runs,
  });

  it('draws a curve per served label from steady-load runs: the median over rounds, misses and bursty runs left out', () => {
    const summary = benchSummary(
      results('m', '2026-01-01T00:00:00Z', [
        run('vanilla', 100, 10),
        run('vanilla', 100, 14),
        run('vanilla', 100, 30),
        run('vanilla', 200, 20),
        run('vanilla', 300, null),
        run('vanilla', 200, 99, { pattern: 'bursty' }),
        run('oracle', 100, 5, { computed: true }),
        run('guarded-drop', 200, 15),
        run('guarded-drop', 100, 12),
      ]),
    );
    expect(summary?.commit).toBe('abc123');
    expect(measuredCurves(summary!.runs, 95)).toEqual([
      {
        label: 'vanilla',
        points: [
          { throughputRps: 100, latencyMs: 14 },
          { throughputRps: 200, latencyMs: 20 },
        ],
      },
      {
        label: 'guarded-drop',
        points: [
          { throughputRps: 100, latencyMs: 12 },
          { throughputRps: 200, latencyMs: 15 },
        ],
      },
    ]);
    expect(measuredCurves(summary!.runs, 99)[0]!.points[0]!.latencyMs).toBe(28);
    expect(measuredPercentile(99)).toBe(99);
    expect(measuredPercentile(95)).toBe(95);
    expect(measuredPercentile(90)).toBe(95);
    expect(benchSummary({ format: 'offramp.bench/1', model: { name: 'm' } })).toBeNull();
    expect(benchSummary([1, 2])).toBeNull();
  });

  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'offramp-bench-results-'));
    await writeFile(join(dir, 'a.json'), JSON.stringify(results('m', '2026-01-01T00:00:00Z', [run('vanilla', 1, 1)])));
    await writeFile(join(dir, 'b.json'), JSON.stringify(results('m', '2026-02-01T00:00:00Z', [run('vanilla', 2, 2)])));
    await writeFile(join(dir, 'c.json'), JSON.stringify(results('other', '2026-03-01T00:00:00Z', [run('x', 3, 3)])));
    await writeFile(join(dir, 'broken.json'), '{');
    await writeFile(join(dir, 'notes.md'), '# not results');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("picks the model's newest results file and names it relative to the package root", async () => {
    const bench = new BenchResults(dir, join(dir, '..'));
    const measured = await bench.newest('m', 95);
    expect(measured).toMatchObject({
      source: join(dir.split('/').at(-1)!, 'b.json'),
      commit: 'abc123',
      startedAt: '2026-02-01T00:00:00Z',
      percentile: 95,
      curves: [{ label: 'vanilla', points: [{ throughputRps: 2, latencyMs: 2 }] }],
    });
    expect(await bench.newest('none', 95)).toBeNull();
    expect(await new BenchResults(join(dir, 'missing'), dir).newest('m', 95)).toBeNull();
  });
});
