/**
 * Every Prometheus metric offramp exports, declared in this one module with fixed label sets
 * (STYLE.md §8, DESIGN.md §8).
 *
 * `createMetrics()` makes a fresh `Registry` (never prom-client's global one) so that tests and
 * several servers in one process do not collide. The fields of `Metrics` are typed with their
 * label sets spelled out: a call that forgets a label, or passes an outcome or error code that does
 * not exist, does not compile. The engine observes latency, exits and failures; the exit-state
 * gauges and tuner counters are copied from each model's exits report (`recordExitsReport`) by a
 * refresher the server registers (`onRefresh`), which `GET /metrics` runs before every scrape.
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
 * | `offramp_ramp_head_active` | gauge | model, ramp |
 * | `offramp_ramp_pinned` | gauge | model, ramp |
 * | `offramp_tuner_paused` | gauge | model |
 * | `offramp_tuner_estimated_disagreement_ratio` | gauge | model |
 * | `offramp_tuner_disagreement_upper_bound_ratio` | gauge | model |
 * | `offramp_tuner_expected_latency_savings_ratio` | gauge | model |
 * | `offramp_hindsight_latency_savings_ratio` | gauge | model |
 * | `offramp_tuner_retunes_total` | counter | model |
 * | `offramp_tuner_tightenings_total` | counter | model |
 * | `offramp_tuner_ramp_changes_total` | counter | model |
 * | `offramp_event_loop_lag_seconds` | gauge | quantile |
 *
 * plus prom-client's default process metrics (`process_*`, `nodejs_*`) on the same registry.
 */

import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ExitsReport, TunerEstimatesReport } from './data-plane/types.js';
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
  /** `offramp_ramp_head_active`: 1 when the ramp's head runs (it is in the exit plan, even at "never"), else 0. */
  readonly rampHeadActive: LabeledGauge<RampLabels>;
  /** `offramp_ramp_pinned`: 1 while an operator has pinned the ramp's threshold (admin endpoint), else 0. */
  readonly rampPinned: LabeledGauge<RampLabels>;
  /** `offramp_tuner_paused`: 1 while the online tuner is paused (admin endpoint), else 0; online tuners only. */
  readonly tunerPaused: LabeledGauge<ModelLabels>;
  /** `offramp_tuner_estimated_disagreement_ratio`: disagreement of the thresholds chosen at the last re-tune, on its rows. */
  readonly tunerEstimatedDisagreement: LabeledGauge<ModelLabels>;
  /** `offramp_tuner_disagreement_upper_bound_ratio`: the last re-tune's upper confidence bound on that disagreement. */
  readonly tunerUpperBound: LabeledGauge<ModelLabels>;
  /** `offramp_tuner_expected_latency_savings_ratio`: savings the last re-tune expected of its thresholds, on its rows. */
  readonly tunerExpectedSavings: LabeledGauge<ModelLabels>;
  /** `offramp_hindsight_latency_savings_ratio`: savings of the best thresholds in hindsight on the last re-tune's window. */
  readonly hindsightSavings: LabeledGauge<ModelLabels>;
  /** `offramp_tuner_retunes_total`: threshold re-tunes by the online tuner. */
  readonly tunerRetunes: LabeledCounter<ModelLabels>;
  /** `offramp_tuner_tightenings_total`: times the online tuner set every threshold to "never" after a violation or drift. */
  readonly tunerTightenings: LabeledCounter<ModelLabels>;
  /** `offramp_tuner_ramp_changes_total`: ramp-set changes (ramps dropped or tried) by the online tuner. */
  readonly tunerRampChanges: LabeledCounter<ModelLabels>;
  /** Registers a function that `refresh` runs, e.g. one copying exits reports into the gauges. */
  onRefresh(fn: () => void): void;
  /** Runs the refreshers; `GET /metrics` calls it before serialising the registry. */
  refresh(): void;
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

  const rampHeadActive = new Gauge<keyof RampLabels>({
    name: 'offramp_ramp_head_active',
    help: 'The ramp\'s head runs on every batch (it is in the exit plan, even with threshold "never"): 1, else 0.',
    labelNames: ['model', 'ramp'],
    registers,
  });
  const rampPinned = new Gauge<keyof RampLabels>({
    name: 'offramp_ramp_pinned',
    help: "1 while an operator has pinned the ramp's threshold through the admin endpoint, else 0.",
    labelNames: ['model', 'ramp'],
    registers,
  });
  const tunerPaused = new Gauge<keyof ModelLabels>({
    name: 'offramp_tuner_paused',
    help: '1 while the online tuner is paused through the admin endpoint (it observes, its changes are not applied), else 0.',
    labelNames: ['model'],
    registers,
  });
  const tunerEstimatedDisagreement = new Gauge<keyof ModelLabels>({
    name: 'offramp_tuner_estimated_disagreement_ratio',
    help: 'Disagreement with the full model of the thresholds the online tuner chose at its last re-tune, on the rows it tuned on.',
    labelNames: ['model'],
    registers,
  });
  const tunerUpperBound = new Gauge<keyof ModelLabels>({
    name: 'offramp_tuner_disagreement_upper_bound_ratio',
    help: 'Upper confidence bound on that disagreement (guarded tuner: at accuracy.confidence).',
    labelNames: ['model'],
    registers,
  });
  const tunerExpectedSavings = new Gauge<keyof ModelLabels>({
    name: 'offramp_tuner_expected_latency_savings_ratio',
    help: 'Share of full-model latency the online tuner expected its thresholds to save at its last re-tune, on the rows it tuned on.',
    labelNames: ['model'],
    registers,
  });
  const hindsightSavings = new Gauge<keyof ModelLabels>({
    name: 'offramp_hindsight_latency_savings_ratio',
    help: "Share of full-model latency the best thresholds in hindsight would have saved on the last re-tune's window, within the budget.",
    labelNames: ['model'],
    registers,
  });
  const tunerRetunes = new Counter<keyof ModelLabels>({
    name: 'offramp_tuner_retunes_total',
    help: 'Threshold re-tunes by the online tuner.',
    labelNames: ['model'],
    registers,
  });
  const tunerTightenings = new Counter<keyof ModelLabels>({
    name: 'offramp_tuner_tightenings_total',
    help: 'Times the online tuner set every threshold to "never" after a budget violation or drift.',
    labelNames: ['model'],
    registers,
  });
  const tunerRampChanges = new Counter<keyof ModelLabels>({
    name: 'offramp_tuner_ramp_changes_total',
    help: 'Ramp-set changes (ramps dropped or tried) by the online tuner.',
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
  const refreshers: (() => void)[] = [];
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
    rampHeadActive,
    rampPinned,
    tunerPaused,
    tunerEstimatedDisagreement,
    tunerUpperBound,
    tunerExpectedSavings,
    hindsightSavings,
    tunerRetunes,
    tunerTightenings,
    tunerRampChanges,
    onRefresh(fn) {
      refreshers.push(fn);
    },
    refresh() {
      for (const fn of refreshers) fn();
    },
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

/** Tuner totals already counted, per registry and model: the counters advance by the difference. */
type TunerTotals = Pick<TunerEstimatesReport, 'retunes' | 'tightenings' | 'rampChanges'>;
const countedTotals = new WeakMap<Metrics, Map<string, TunerTotals>>();

/**
 * Copies what an ExitsReport knows into the metrics: each ramp's threshold, state, head and pin, the
 * window's disagreement, early-exit share and estimated savings, the ramp overhead, and the
 * tuner's state, estimates and counts. A statistic with no data yet (null) drops its series
 * instead of exporting NaN; the tuner series exist only for models with an online tuner.
 */
export function recordExitsReport(metrics: Metrics, report: ExitsReport): void {
  const model = report.model;
  const labels = { model };
  for (const ramp of report.ramps) {
    setRampThreshold(metrics, model, ramp.id, ramp.threshold, ramp.active);
    metrics.rampHeadActive.set({ model, ramp: String(ramp.id) }, ramp.active ? 1 : 0);
    metrics.rampPinned.set({ model, ramp: String(ramp.id) }, String(ramp.id) in report.tuner.pinned ? 1 : 0);
  }
  setOrRemove(metrics.windowDisagreement, labels, report.window.disagreement);
  setOrRemove(metrics.windowEarlyExitFraction, labels, report.window.earlyFraction);
  setOrRemove(metrics.estimatedLatencySavings, labels, report.window.estimatedSavings);
  setOrRemove(metrics.rampOverheadShare, labels, report.rampOverhead);
  const e = report.tuner.estimates;
  if (report.tuner.online) metrics.tunerPaused.set(labels, report.tuner.paused ? 1 : 0);
  else metrics.tunerPaused.remove(labels);
  setOrRemove(metrics.tunerEstimatedDisagreement, labels, e?.estimatedDisagreement ?? null);
  setOrRemove(metrics.tunerUpperBound, labels, e?.upperBound ?? null);
  setOrRemove(metrics.tunerExpectedSavings, labels, e?.estimatedSavings ?? null);
  setOrRemove(metrics.hindsightSavings, labels, e?.hindsightSavings ?? null);
  if (!e) return;
  let counted = countedTotals.get(metrics);
  if (!counted) countedTotals.set(metrics, (counted = new Map()));
  const before = counted.get(model) ?? { retunes: 0, tightenings: 0, rampChanges: 0 };
  // inc by 0 still creates the series: a tuner that has not re-tuned yet exports 0, not nothing.
  metrics.tunerRetunes.inc(labels, Math.max(0, e.retunes - before.retunes));
  metrics.tunerTightenings.inc(labels, Math.max(0, e.tightenings - before.tightenings));
  metrics.tunerRampChanges.inc(labels, Math.max(0, e.rampChanges - before.rampChanges));
  counted.set(model, {
    retunes: Math.max(before.retunes, e.retunes),
    tightenings: Math.max(before.tightenings, e.tightenings),
    rampChanges: Math.max(before.rampChanges, e.rampChanges),
  });
}

function setOrRemove(gauge: LabeledGauge<ModelLabels>, labels: ModelLabels, value: number | null): void {
  if (value === null || !Number.isFinite(value)) gauge.remove(labels);
  else gauge.set(labels, value);
}
