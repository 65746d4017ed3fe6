/**
 * Every Prometheus metric offramp exports, declared in this one module with fixed label sets
 * (STYLE.md §8, DESIGN.md §8).
 *
 * `createMetrics()` makes a fresh `Registry` (never prom-client's global one) so that tests and
 * several servers in one process do not collide. The fields of `Metrics` are typed with their
 * label sets spelled out: a call that forgets a label, or passes an outcome or error code that does
 * not exist, does not compile. The engine observes latency, exits and failures; the transports
 * only expose the registry (`GET /metrics`).
 *
 * Names and labels (prefix `offramp_`):
 *
 * | metric | type | labels |
 * | --- | --- | --- |
 * | `offramp_request_latency_seconds` | histogram | model, exit |
 * | `offramp_queue_wait_seconds` | histogram | model |
 * | `offramp_batch_size` | histogram | model |
 * | `offramp_requests_by_exit_total` | counter | model, exit |
 * | `offramp_requests_total` | counter | model, outcome |
 * | `offramp_inference_failures_total` | counter | model, code |
 * | `offramp_ramp_threshold` | gauge | model, ramp |
 * | `offramp_ramp_active` | gauge | model, ramp |
 * | `offramp_window_disagreement_ratio` | gauge | model |
 * | `offramp_window_early_exit_ratio` | gauge | model |
 * | `offramp_estimated_latency_savings_ratio` | gauge | model |
 * | `offramp_ramp_overhead_ratio` | gauge | model |
 * | `offramp_event_loop_lag_seconds` | gauge | quantile |
 *
 * plus prom-client's default process metrics (`process_*`, `nodejs_*`) on the same registry.
 */

import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ExitsReport } from './data-plane/types.js';
import type { ErrorCode } from './errors.js';

/** The `exit` label of a request answered by the full model (not by a ramp). */
export const FINAL_EXIT = 'final';

/** How a request ended, as counted by `offramp_requests_total{outcome}`. */
export const OUTCOMES = ['ok', 'rejected', 'timed_out', 'failed', 'cancelled'] as const;
export type Outcome = (typeof OUTCOMES)[number];

/**
 * The value `offramp_ramp_threshold` holds while a ramp answers nothing (inactive, or its
 * threshold is "never"). The true value is +∞, which some scrapers reject; every score offramp
 * uses (confidence, margin, −entropy) is ≤ 1, so 1 is as strict as a threshold can usefully be.
 * Read `offramp_ramp_active` to tell a real threshold of 1 from this sentinel.
 */
export const INACTIVE_THRESHOLD = 1;

/** Seconds; from a fast ramp exit on a tiny model (0.5 ms) to a slow full pass under load (2 s). */
export const LATENCY_BUCKETS: readonly number[] = Object.freeze([
  0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2,
]);

/** Rows per executed batch (powers of two, as batch sizes usually are). */
export const BATCH_SIZE_BUCKETS: readonly number[] = Object.freeze([1, 2, 4, 8, 16, 32, 64, 128]);

/** Event-loop lag quantiles exported by `offramp_event_loop_lag_seconds{quantile}`. */
export const EVENT_LOOP_QUANTILES = ['0.5', '0.99', 'max'] as const;
export type EventLoopQuantile = (typeof EVENT_LOOP_QUANTILES)[number];

// Label sets. Every label is required: prom-client would accept a missing one and export a series
// with an empty value, which silently splits dashboards.
export interface ModelLabels { model: string }
export interface ExitLabels { model: string; /** Ramp id as a string, or FINAL_EXIT. */ exit: string }
export interface OutcomeLabels { model: string; outcome: Outcome }
export interface FailureLabels { model: string; code: ErrorCode }
export interface RampLabels { model: string; /** Ramp id as a string. */ ramp: string }

/** The part of a prom-client histogram callers use, with its label set fixed. */
export interface LabeledHistogram<L> {
  observe(labels: L, value: number): void;
}

/** The part of a prom-client counter callers use, with its label set fixed. */
export interface LabeledCounter<L> {
  inc(labels: L, value?: number): void;
}

/** The part of a prom-client gauge callers use, with its label set fixed. */
export interface LabeledGauge<L> {
  set(labels: L, value: number): void;
  /** Drops the series (e.g. a model that was unloaded, or a statistic with no data yet). */
  remove(labels: L): void;
}

export interface Metrics {
  /** The registry every metric below is registered on; `GET /metrics` serves it. */
  readonly registry: Registry;
  /** `offramp_request_latency_seconds`: arrival to answer, per exit (ramp id or "final"). */
  readonly requestLatency: LabeledHistogram<ExitLabels>;
  /** `offramp_queue_wait_seconds`: arrival to the start of the batch that took the request. */
  readonly queueWait: LabeledHistogram<ModelLabels>;
  /** `offramp_batch_size`: rows in each executed batch. */
  readonly batchSize: LabeledHistogram<ModelLabels>;
  /** `offramp_requests_by_exit_total`: answered requests by the ramp that answered them. */
  readonly requestsByExit: LabeledCounter<ExitLabels>;
  /** `offramp_requests_total`: every request once, by how it ended. */
  readonly requestsTotal: LabeledCounter<OutcomeLabels>;
  /** `offramp_inference_failures_total`: failed requests by error code. */
  readonly inferenceFailures: LabeledCounter<FailureLabels>;
  /** `offramp_ramp_threshold`: current exit threshold; INACTIVE_THRESHOLD when the ramp answers nothing. */
  readonly rampThreshold: LabeledGauge<RampLabels>;
  /** `offramp_ramp_active`: 1 when the ramp may answer requests, else 0. */
  readonly rampActive: LabeledGauge<RampLabels>;
  /** `offramp_window_disagreement_ratio`: share of the feedback window where the answer differed from the final layer. */
  readonly windowDisagreement: LabeledGauge<ModelLabels>;
  /** `offramp_window_early_exit_ratio`: share of the feedback window answered by a ramp. */
  readonly windowEarlyExitFraction: LabeledGauge<ModelLabels>;
  /** `offramp_estimated_latency_savings_ratio`: 1 − Σ exit_rate_k·L_k / L_full (DESIGN.md §4). */
  readonly estimatedLatencySavings: LabeledGauge<ModelLabels>;
  /** `offramp_ramp_overhead_ratio`: active ramps' cost as a share of the full model's latency. */
  readonly rampOverheadShare: LabeledGauge<ModelLabels>;
  /** Stops this registry's event-loop monitor. Idempotent. */
  close(): void;
}

export interface MetricsOptions {
  /**
   * Also register prom-client's default process metrics (CPU, memory, handles, GC, and the
   * `nodejs_eventloop_lag_*` gauges). Default true. prom-client starts monitors for these that it
   * never stops, so tests that build many registries may turn them off.
   */
  processMetrics?: boolean;
}

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  const registers = [registry];

  const requestLatency = new Histogram<keyof ExitLabels>({
    name: 'offramp_request_latency_seconds',
    help: 'Request latency from arrival to answer, in seconds, by the exit that answered (ramp id or "final").',
    labelNames: ['model', 'exit'],
    buckets: [...LATENCY_BUCKETS],
    registers,
  });
  const queueWait = new Histogram<keyof ModelLabels>({
    name: 'offramp_queue_wait_seconds',
    help: 'Time a request waited in the queue before a batch took it, in seconds.',
    labelNames: ['model'],
    buckets: [...LATENCY_BUCKETS],
    registers,
  });
  const batchSize = new Histogram<keyof ModelLabels>({
    name: 'offramp_batch_size',
    help: 'Rows in each executed batch.',
    labelNames: ['model'],
    buckets: [...BATCH_SIZE_BUCKETS],
    registers,
  });
  const requestsByExit = new Counter<keyof ExitLabels>({
    name: 'offramp_requests_by_exit_total',
    help: 'Answered requests by the exit that answered them (ramp id or "final").',
    labelNames: ['model', 'exit'],
    registers,
  });
  const requestsTotal = new Counter<keyof OutcomeLabels>({
    name: 'offramp_requests_total',
    help: 'Requests by outcome: ok, rejected, timed_out, failed, cancelled.',
    labelNames: ['model', 'outcome'],
    registers,
  });
  const inferenceFailures = new Counter<keyof FailureLabels>({
    name: 'offramp_inference_failures_total',
    help: 'Failed inference requests by offramp error code (docs/errors.md).',
    labelNames: ['model', 'code'],
    registers,
  });
  const rampThreshold = new Gauge<keyof RampLabels>({
    name: 'offramp_ramp_threshold',
    help: `Current exit threshold of each ramp; ${INACTIVE_THRESHOLD} while the ramp answers nothing (see offramp_ramp_active).`,
    labelNames: ['model', 'ramp'],
    registers,
  });
  const rampActive = new Gauge<keyof RampLabels>({
    name: 'offramp_ramp_active',
    help: '1 when the ramp may answer requests (active, with a finite threshold), else 0.',
    labelNames: ['model', 'ramp'],
    registers,
  });
  const windowDisagreement = new Gauge<keyof ModelLabels>({
    name: 'offramp_window_disagreement_ratio',
    help: 'Share of the feedback window whose answer disagreed with the final layer.',
    labelNames: ['model'],
    registers,
  });
  const windowEarlyExitFraction = new Gauge<keyof ModelLabels>({
    name: 'offramp_window_early_exit_ratio',
    help: 'Share of the feedback window answered by a ramp.',
    labelNames: ['model'],
    registers,
  });
  const estimatedLatencySavings = new Gauge<keyof ModelLabels>({
    name: 'offramp_estimated_latency_savings_ratio',
    help: 'Estimated share of full-model latency saved by early exits (1 - sum of exit_rate_k * L_k / L_full).',
    labelNames: ['model'],
    registers,
  });
  const rampOverheadShare = new Gauge<keyof ModelLabels>({
    name: 'offramp_ramp_overhead_ratio',
    help: "Active ramps' cost as a share of the full model's latency.",
    labelNames: ['model'],
    registers,
  });

  // Event-loop lag over the time since the previous scrape: every request's networking, batching
  // and replies run on this loop (inference runs in workers), so lag here is added latency.
  const loopDelay: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  new Gauge<'quantile'>({
    name: 'offramp_event_loop_lag_seconds',
    help: 'Main-thread event-loop delay since the previous scrape, in seconds (quantile 0.5, 0.99, max).',
    labelNames: ['quantile'],
    registers,
    collect() {
      if (loopDelay.count === 0) return; // no sample yet: keep the last values rather than export garbage
      this.set({ quantile: '0.5' }, loopDelay.percentile(50) / 1e9);
      this.set({ quantile: '0.99' }, loopDelay.percentile(99) / 1e9);
      this.set({ quantile: 'max' }, loopDelay.max / 1e9);
      loopDelay.reset();
    },
  });

  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });

  let closed = false;
  return {
    registry,
    requestLatency,
    queueWait,
    batchSize,
    requestsByExit,
    requestsTotal,
    inferenceFailures,
    rampThreshold,
    rampActive,
    windowDisagreement,
    windowEarlyExitFraction,
    estimatedLatencySavings,
    rampOverheadShare,
    close() {
      if (closed) return;
      closed = true;
      loopDelay.disable();
    },
  };
}

/** The `exit` label for a ramp id; a negative id (the response's `exit_ramp` −1) is the full model. */
export function exitLabel(rampId: number): string {
  return rampId < 0 ? FINAL_EXIT : String(rampId);
}

/**
 * Sets both ramp gauges: `threshold` null means "never" (DESIGN.md §3), exported as
 * INACTIVE_THRESHOLD with `offramp_ramp_active` 0, as is an inactive ramp.
 */
export function setRampThreshold(metrics: Metrics, model: string, rampId: number, threshold: number | null, active: boolean): void {
  const labels = { model, ramp: String(rampId) };
  const answers = active && threshold !== null && Number.isFinite(threshold);
  metrics.rampActive.set(labels, answers ? 1 : 0);
  metrics.rampThreshold.set(labels, answers ? threshold : INACTIVE_THRESHOLD);
}

/**
 * Copies what an ExitsReport knows into the gauges: each ramp's threshold and state, the window's
 * disagreement and early-exit share. A window statistic with no data yet (null) drops its series
 * instead of exporting NaN.
 */
export function recordExitsReport(metrics: Metrics, report: ExitsReport): void {
  for (const ramp of report.ramps) setRampThreshold(metrics, report.model, ramp.id, ramp.threshold, ramp.active);
  const labels = { model: report.model };
  setOrRemove(metrics.windowDisagreement, labels, report.window.disagreement);
  setOrRemove(metrics.windowEarlyExitFraction, labels, report.window.earlyFraction);
}

function setOrRemove(gauge: LabeledGauge<ModelLabels>, labels: ModelLabels, value: number | null): void {
  if (value === null || !Number.isFinite(value)) gauge.remove(labels);
  else gauge.set(labels, value);
}
