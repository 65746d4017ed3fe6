/**
 * The dashboard's sampler: every `intervalMs` (1 s), one Snapshot of every model, built from the
 * objects /metrics and /exits read — the prom-client instruments of `Metrics` (their values, not
 * the exposition text) and the DashboardSource — plus the process's CPU time.
 *
 * It costs nothing while nobody watches: the timer runs only between the first `watch()` and the
 * release of the last one. Rates and distributions are differences between two readings, so a
 * start takes a first reading that is only a baseline (not emitted); the first snapshot after a
 * time unwatched says so (`afterGap`).
 */
import { performance } from 'node:perf_hooks';
import { BATCH_SIZE_BUCKETS, LATENCY_BUCKETS, METRIC_TABLE, type MetricKey, type Metrics } from '../metrics.js';
import { intervalFigures, type IntervalPart, type ModelTotals } from './interval-stats.js';
import type { ModelSnapshot, Snapshot } from './protocol.js';
import type { DashboardSource } from './source.js';

/** The protocol's update rate (DashboardInfo.sampleIntervalMs). */
export const SAMPLE_INTERVAL_MS = 1000;

/** Cumulative totals of every model, and the clocks, at one instant. */
interface Reading {
  /** Epoch milliseconds. */
  at: number;
  /** Monotonic milliseconds: what the interval is measured with. */
  clock: number;
  /** Process CPU, user + system over every thread, in microseconds. */
  cpuMicros: number;
  models: Map<string, ModelTotals>;
}

export interface SamplerOptions {
  source: DashboardSource;
  metrics: Metrics;
  /** Called with each snapshot, in seq order. */
  onSnapshot: (snapshot: Snapshot) => void;
  intervalMs?: number;
  /** Where a failed sample is reported (it is skipped; the next one covers its interval). */
  log?: (line: string) => void;
}

export class DashboardSampler {
  readonly intervalMs: number;
  private watchers = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Bumped at every start and stop: a reading begun before it is stale when it completes. */
  private generation = 0;
  private previous: Reading | undefined;
  private busy = false;
  private seq = 0;
  /** A snapshot was emitted, then sampling stopped: the next one follows a gap. */
  private gapPending = false;
  private stopped = false;
  /** Each model's tuning-event cursor: the number of the last event a snapshot carried. */
  private readonly eventCursor = new Map<string, number>();
  private readings = 0;

  constructor(private readonly options: SamplerOptions) {
    this.intervalMs = options.intervalMs ?? SAMPLE_INTERVAL_MS;
  }

  /** Readings taken so far, baselines included: it stays put while nobody watches. */
  get samplesTaken(): number {
    return this.readings;
  }

  /** Whether the timer runs. */
  get running(): boolean {
    return this.timer !== undefined;
  }

  /** One more watcher: sampling starts with the first. Returns the release (idempotent). */
  watch(): () => void {
    if (this.stopped) throw new Error('DashboardSampler.watch after stop');
    if (this.watchers++ === 0) this.start();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--this.watchers === 0) this.pause();
    };
  }

  /** Stops for good (server shutdown). */
  stop(): void {
    this.stopped = true;
    this.pause();
  }

  private start(): void {
    const generation = ++this.generation;
    this.timer = setInterval(() => void this.tick(generation), this.intervalMs);
    // Sampling never keeps the process alive: the server's listeners do.
    this.timer.unref();
    void this.tick(generation);
  }

  private pause(): void {
    this.generation++;
    clearInterval(this.timer);
    this.timer = undefined;
    this.previous = undefined;
    if (this.seq > 0) this.gapPending = true;
  }

  /** Takes a reading; with a baseline before it, emits the snapshot between the two. */
  private async tick(generation: number): Promise<void> {
    // A reading that outlasts the interval (a stalled event loop) makes the next tick wait its turn.
    if (this.busy) return;
    this.busy = true;
    try {
      const models = this.options.source.models().map((m) => m.name);
      const reading = await this.read(models);
      if (generation !== this.generation) return;
      const previous = this.previous;
      this.previous = reading;
      if (!previous) return;
      const snapshot = this.snapshot(previous, reading, models);
      this.gapPending = false;
      this.options.onSnapshot(snapshot);
    } catch (err) {
      this.options.log?.(`dashboard: a sample failed, skipped: ${(err as Error).message}`);
    } finally {
      this.busy = false;
    }
  }

  private async read(models: readonly string[]): Promise<Reading> {
    this.readings++;
    const at = Date.now();
    const clock = performance.now();
    const cpu = process.cpuUsage();
    const [latency, batchSizes, outcomes, exits] = await Promise.all([
      this.values('requestLatency'),
      this.values('batchSize'),
      this.values('requestsTotal'),
      this.values('requestsByExit'),
    ]);
    const totals = new Map<string, ModelTotals>();
    for (const model of models) {
      totals.set(model, {
        latency: cumulativeBuckets(latency, model, LATENCY_BUCKETS),
        batchSizes: cumulativeBuckets(batchSizes, model, BATCH_SIZE_BUCKETS),
        outcomes: byLabel(outcomes, model, 'outcome'),
        exits: byLabel(exits, model, 'exit'),
      });
    }
    return { at, clock, cpuMicros: cpu.user + cpu.system, models: totals };
  }

  /** The current values of one of METRIC_TABLE's instruments, from the registry /metrics serves. */
  private async values(key: MetricKey): Promise<MetricValues> {
    const metric = this.options.metrics.registry.getSingleMetric(METRIC_TABLE[key].name);
    return metric ? (await metric.get()).values : [];
  }

  private snapshot(before: Reading, after: Reading, models: readonly string[]): Snapshot {
    const intervalS = Math.max(0, (after.clock - before.clock) / 1000);
    const cpuMs = Math.max(0, after.cpuMicros - before.cpuMicros) / 1000;
    let answers = 0;
    const out: Record<string, ModelSnapshot> = {};
    for (const model of models) {
      const totals = after.models.get(model) as ModelTotals;
      const { answers: answered, ...figures } = intervalFigures(
        before.models.get(model),
        totals,
        intervalS,
        LATENCY_BUCKETS,
      );
      answers += answered;
      out[model] = { ...figures, ...this.state(model) };
    }
    return {
      seq: ++this.seq,
      t: after.at,
      intervalS,
      afterGap: this.gapPending,
      cpuCores: intervalS > 0 ? cpuMs / 1000 / intervalS : 0,
      cpuMsPerAnswer: answers > 0 ? cpuMs / answers : null,
      models: out,
    };
  }

  /** What a model is now (not over the interval): its queue, exit state, tuner and events. */
  private state(model: string): Omit<ModelSnapshot, keyof IntervalPart> {
    const { source } = this.options;
    const report = source.exits(model);
    const queue = source.queue(model);
    // Events since the last snapshot, those while nobody watched included: each carries its time.
    const { events, last } = source.eventsSince(model, this.eventCursor.get(model) ?? 0);
    this.eventCursor.set(model, last);
    const estimates = report.tuner.estimates;
    return {
      queueDepth: queue.queued,
      runningBatches: queue.running,
      thresholds: Object.fromEntries(report.ramps.filter((r) => r.active).map((r) => [String(r.id), r.threshold])),
      pinned: Object.keys(report.tuner.pinned),
      paused: report.tuner.paused,
      window: {
        disagreement: report.window.disagreement,
        rows: report.window.size,
        capacity: report.window.capacity,
        earlyFraction: report.window.earlyFraction,
      },
      guardBound: estimates?.upperBound ?? null,
      savings: { estimated: report.window.estimatedSavings, hindsight: estimates?.hindsightSavings ?? null },
      probeShare: report.tuner.probeShare,
      events,
    };
  }
}

type MetricValues = readonly { value: number; labels: Partial<Record<string, string | number>>; metricName?: string }[];

/**
 * A histogram's cumulative bucket counts for one model, summed over its other labels (the exits
 * of the latency histogram): one per bound, then +Inf. Zeros for a model with no series yet.
 */
function cumulativeBuckets(values: MetricValues, model: string, bounds: readonly number[]): number[] {
  const counts = new Array<number>(bounds.length + 1).fill(0);
  for (const v of values) {
    if (v.labels['model'] !== model || !v.metricName?.endsWith('_bucket')) continue;
    const le = v.labels['le'];
    const i = le === '+Inf' ? bounds.length : bounds.indexOf(Number(le));
    if (i >= 0) counts[i] = (counts[i] as number) + v.value;
  }
  return counts;
}

/** A counter's values for one model by one of its labels. */
function byLabel(values: MetricValues, model: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) {
    if (v.labels['model'] !== model) continue;
    const key = String(v.labels[label]);
    out[key] = (out[key] ?? 0) + v.value;
  }
  return out;
}
