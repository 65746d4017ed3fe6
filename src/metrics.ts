/**
 * Every Prometheus metric offramp exports, declared once in METRIC_TABLE: name, type, help text,
 * label names and buckets. `createMetrics()` builds the prom-client objects from the table (so
 * `GET /metrics` serves exactly what it says), src/metrics-doc.ts renders docs/metrics.md from it,
 * and test/metrics.test.ts fails when that page is stale. Names, types, labels, help texts and
 * buckets are a contract: dashboards and the bench (bench/lib/prometheus.ts) scrape them, so a
 * change here is a change to that contract.
 *
 * `createMetrics()` makes a fresh `Registry` (never prom-client's global one) so that tests and
 * several servers in one process do not collide. The fields of `Metrics` are typed with the label
 * set their table entry declares: a call that forgets a label, or passes an outcome or error code
 * that does not exist, does not compile. The engine observes latency, exits and failures; the
 * exit-state gauges and tuner counters are copied from each model's exits report
 * (`recordExitsReport`) by a refresher the server registers (`onRefresh`), which `GET /metrics`
 * runs before every scrape. prom-client's default process metrics (`process_*`, `nodejs_*`) are
 * registered on the same registry.
 */

import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ExitsReport, TunerEstimatesReport } from './data-plane/types.js';
import { OUTCOMES, type Outcome } from './engine/model-runner.js';
import { WORKER_FAILURE_CAUSES, type WorkerFailureCause } from './engine/backend.js';
import type { ErrorCode } from './errors.js';

/** prom-client default metrics that are gauges named like counters (removed, see createMetrics). */
const NON_COUNTERS_NAMED_TOTAL = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/** The `exit` label of a request answered by the full model (not by a ramp). */
export const FINAL_EXIT = 'final';

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

/**
 * Event-loop lag statistics exported by `offramp_event_loop_lag_seconds{stat}`. The label is not
 * called `quantile`: Prometheus reserves that one for summaries, and this is a gauge set at
 * each scrape (promtool's lint rejects a gauge with a `quantile` label).
 */
export const EVENT_LOOP_STATS = ['p50', 'p99', 'max'] as const;
export type EventLoopStat = (typeof EVENT_LOOP_STATS)[number];

/**
 * Why an admin request was refused, the `reason` of `offramp_admin_auth_failures_total`: no bearer
 * token, a wrong one, or admin endpoints disabled (no `server.admin_token`).
 */
export const ADMIN_AUTH_FAILURES = ['missing', 'wrong', 'disabled'] as const;
export type AdminAuthFailure = (typeof ADMIN_AUTH_FAILURES)[number];

/**
 * Every label a metric may carry, with the values it takes. Every label of a metric is required
 * at each update: prom-client would accept a missing one and export a series with an empty value,
 * which silently splits dashboards.
 */
/** What a cascade tier did with a row it read, the `decision` of `offramp_cascade_tier_rows_total`. */
export const TIER_DECISIONS = ['answered', 'deferred'] as const;
export type TierDecision = (typeof TIER_DECISIONS)[number];

export interface LabelValues {
  model: string;
  /** Exit id as a string (a ramp, or a cascade tier), or FINAL_EXIT. */
  exit: string;
  outcome: Outcome;
  code: ErrorCode;
  /** Ramp id as a string. */
  ramp: string;
  stat: EventLoopStat;
  reason: AdminAuthFailure;
  cause: WorkerFailureCause;
  /** A cascade tier's index (its exit id) as a string. */
  tier: string;
  decision: TierDecision;
}
export type LabelName = keyof LabelValues;

/** What each label means, for docs/metrics.md. */
export const LABEL_DOCS: Readonly<Record<LabelName, string>> = {
  model: 'The name the model is served under (the serving config).',
  exit:
    `The exit that answered the request (its deepest row): a ramp id, or \`${FINAL_EXIT}\` for the full model; ` +
    'with a cascade, its tiers are exits 0..T−1 and ramp r is exit T + r.',
  outcome: `How the request ended: ${OUTCOMES.map((o) => `\`${o}\``).join(', ')}.`,
  code: 'An offramp error code (docs/errors.md).',
  ramp: 'The ramp id.',
  stat: `${EVENT_LOOP_STATS.map((q) => `\`${q}\``).join(', ')}.`,
  reason: `Why an admin request was refused: ${ADMIN_AUTH_FAILURES.map((r) => `\`${r}\``).join(', ')}.`,
  cause:
    `Why an executor worker was replaced: ${WORKER_FAILURE_CAUSES.map((c) => `\`${c}\``).join(', ')} ` +
    '(an uncaught error; a batch past `server.worker_timeout_ms`; the thread ended unasked; the model failed to load).',
  tier: 'A cascade tier, 0-based (its exit id).',
  decision: `What a cascade tier did with a row: ${TIER_DECISIONS.map((d) => `\`${d}\``).join(', ')} (passed on).`,
};

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface MetricSpec {
  readonly name: `offramp_${string}`;
  readonly type: MetricType;
  /** The Prometheus HELP text, also the meaning column of docs/metrics.md. */
  readonly help: string;
  /** In the order prom-client prints them. */
  readonly labels: readonly LabelName[];
  /** Histograms only: bucket upper bounds, ascending. */
  readonly buckets?: readonly number[];
  /** Added to the help text in docs/metrics.md where a table row needs more context than HELP gives. */
  readonly doc?: string;
}

/**
 * The metrics, keyed by their field in `Metrics`, in registration order (which is the order
 * `GET /metrics` prints them in).
 */
export const METRIC_TABLE = {
  requestLatency: {
    name: 'offramp_request_latency_seconds',
    type: 'histogram',
    help: 'Request latency from arrival to answer, in seconds, by the exit that answered (ramp id or "final").',
    labels: ['model', 'exit'],
    buckets: LATENCY_BUCKETS,
  },
  queueWait: {
    name: 'offramp_queue_wait_seconds',
    type: 'histogram',
    help: 'Time a request waited in the queue before a batch took it, in seconds.',
    labels: ['model'],
    buckets: LATENCY_BUCKETS,
  },
  batchSize: {
    name: 'offramp_batch_size',
    type: 'histogram',
    help: 'Rows in each executed batch.',
    labels: ['model'],
    buckets: BATCH_SIZE_BUCKETS,
  },
  requestsByExit: {
    name: 'offramp_requests_by_exit_total',
    type: 'counter',
    help: 'Answered requests by the exit that answered them (ramp id or "final").',
    labels: ['model', 'exit'],
  },
  cascadeTierRows: {
    name: 'offramp_cascade_tier_rows_total',
    type: 'counter',
    help: 'Rows a cascade tier read, by what it did with them: answered (its members agreed enough) or deferred (passed on).',
    labels: ['model', 'tier', 'decision'],
    doc: 'Only for a model with cascade tiers; tier is 0-based (exit id). A probe an earlier tier answered is not counted again.',
  },
  requestsTotal: {
    name: 'offramp_requests_total',
    type: 'counter',
    help: 'Requests by outcome: ok, rejected, timed_out, failed, cancelled.',
    labels: ['model', 'outcome'],
    doc: 'Every request is counted once.',
  },
  inferenceFailures: {
    name: 'offramp_inference_failures_total',
    type: 'counter',
    help: 'Failed inference requests by offramp error code (docs/errors.md).',
    labels: ['model', 'code'],
  },
  rampThreshold: {
    name: 'offramp_ramp_threshold',
    type: 'gauge',
    help: `Current exit threshold of each ramp; ${INACTIVE_THRESHOLD} while the ramp answers nothing (see offramp_ramp_active).`,
    labels: ['model', 'ramp'],
    doc: 'The true value of an inactive ramp is +∞, which some scrapers reject.',
  },
  rampActive: {
    name: 'offramp_ramp_active',
    type: 'gauge',
    help: '1 when the ramp may answer requests (active, with a finite threshold), else 0.',
    labels: ['model', 'ramp'],
  },
  sloLatency: {
    name: 'offramp_slo_latency_seconds',
    type: 'gauge',
    help: "The model's latency objective from the SLO file (slo.latency_ms), in seconds.",
    labels: ['model'],
    doc: 'A setting, exported so that a dashboard can draw the SLO line beside the latency it holds (slo.percentile is the percentile it applies to).',
  },
  accuracyBudget: {
    name: 'offramp_accuracy_budget_ratio',
    type: 'gauge',
    help: "The model's accuracy budget from the SLO file: the share of answers allowed to disagree with the full model (accuracy.budget).",
    labels: ['model'],
    doc: 'A setting, exported so that a dashboard can draw the budget beside the window disagreement and the guard bound.',
  },
  windowDisagreement: {
    name: 'offramp_window_disagreement_ratio',
    type: 'gauge',
    help: 'Share of the feedback window whose answer disagreed with the final layer.',
    labels: ['model'],
    doc: 'Absent while the window has no data.',
  },
  windowEarlyExitFraction: {
    name: 'offramp_window_early_exit_ratio',
    type: 'gauge',
    help: 'Share of the feedback window answered by a ramp.',
    labels: ['model'],
    doc: 'Absent while the window has no data.',
  },
  estimatedLatencySavings: {
    name: 'offramp_estimated_latency_savings_ratio',
    type: 'gauge',
    help: 'Estimated share of full-model latency saved by early exits (1 - sum of exit_rate_k * L_k / L_full).',
    labels: ['model'],
    doc: "From the feedback window's exit rates, with L_k the profiled latency to answer at exit k, the final layer included (batch size 1).",
  },
  rampOverheadShare: {
    name: 'offramp_ramp_overhead_ratio',
    type: 'gauge',
    help: "Active ramps' cost as a share of the full model's latency.",
    labels: ['model'],
  },
  rampHeadActive: {
    name: 'offramp_ramp_head_active',
    type: 'gauge',
    help: 'The ramp\'s head runs on every batch (it is in the exit plan, even with threshold "never"): 1, else 0.',
    labels: ['model', 'ramp'],
  },
  rampPinned: {
    name: 'offramp_ramp_pinned',
    type: 'gauge',
    help: "1 while an operator has pinned the ramp's threshold through the admin endpoint, else 0.",
    labels: ['model', 'ramp'],
  },
  rampDisabled: {
    name: 'offramp_ramp_disabled',
    type: 'gauge',
    help: '1 once the ramp is disabled because its head failed (to load, to run, or with non-finite scores), else 0.',
    labels: ['model', 'ramp'],
    doc:
      'A disabled ramp is in no exit plan until the server restarts; `GET /v2/models/{m}/exits` gives the ' +
      'reason per ramp (`ramps[].disabled`) and the server log has a line for it.',
  },
  tunerPaused: {
    name: 'offramp_tuner_paused',
    type: 'gauge',
    help: '1 while the online tuner is paused through the admin endpoint (it observes, its changes are not applied), else 0.',
    labels: ['model'],
    doc: 'Only models with an online tuner have this series.',
  },
  probeShare: {
    name: 'offramp_probe_share_ratio',
    type: 'gauge',
    help: 'Share of rows drawn as probes (run to the end, fed to the tuner) in the exit plan in force: 1 in release mode.',
    labels: ['model'],
    doc:
      'In drop mode with an online tuner: `exits.learning_feedback_fraction` while the tuner learns (from the start, a ' +
      'tightening or a ramp-set change), `exits.drop_feedback_fraction` once it has settled.',
  },
  tunerEstimatedDisagreement: {
    name: 'offramp_tuner_estimated_disagreement_ratio',
    type: 'gauge',
    help: 'Disagreement with the full model of the thresholds the online tuner chose at its last re-tune, on the rows it tuned on.',
    labels: ['model'],
  },
  tunerUpperBound: {
    name: 'offramp_tuner_disagreement_upper_bound_ratio',
    type: 'gauge',
    help: 'Upper confidence bound on that disagreement (guarded tuner: at accuracy.confidence).',
    labels: ['model'],
    doc: 'That disagreement is `offramp_tuner_estimated_disagreement_ratio`.',
  },
  tunerExpectedSavings: {
    name: 'offramp_tuner_expected_latency_savings_ratio',
    type: 'gauge',
    help: 'Share of full-model latency the online tuner expected its thresholds to save at its last re-tune, on the rows it tuned on.',
    labels: ['model'],
  },
  hindsightSavings: {
    name: 'offramp_hindsight_latency_savings_ratio',
    type: 'gauge',
    help: "Share of full-model latency the best thresholds in hindsight would have saved on the last re-tune's window, within the budget.",
    labels: ['model'],
  },
  tunerRetunes: {
    name: 'offramp_tuner_retunes_total',
    type: 'counter',
    help: 'Threshold re-tunes by the online tuner.',
    labels: ['model'],
  },
  tunerTightenings: {
    name: 'offramp_tuner_tightenings_total',
    type: 'counter',
    help: 'Times the online tuner set every threshold to "never" after a budget violation or drift.',
    labels: ['model'],
  },
  tunerRampChanges: {
    name: 'offramp_tuner_ramp_changes_total',
    type: 'counter',
    help: 'Ramp-set changes (ramps dropped or tried) by the online tuner.',
    labels: ['model'],
  },
  workerRestarts: {
    name: 'offramp_worker_restarts_total',
    type: 'counter',
    help: 'Executor worker restarts, by the cause of the failure that led to each (crash, hang, exit, load).',
    labels: ['model', 'cause'],
    doc: 'A worker that fails 5 times within 60 s is not restarted again (nothing is counted then); see offramp_ready_workers.',
  },
  readyWorkers: {
    name: 'offramp_ready_workers',
    type: 'gauge',
    help: 'Executor workers loaded and taking batches; 0 means the model is not ready.',
    labels: ['model'],
  },
  eventLoopLag: {
    name: 'offramp_event_loop_lag_seconds',
    type: 'gauge',
    help: 'Main-thread event-loop delay since the previous scrape, in seconds (stat p50, p99, max).',
    labels: ['stat'],
    doc: 'Set at each scrape; networking, batching and replies run on this loop (inference runs in workers), so lag here is added latency.',
  },
  adminAuthFailures: {
    name: 'offramp_admin_auth_failures_total',
    type: 'counter',
    help: 'Admin requests refused before running, by reason: missing (no bearer token), wrong (a wrong token), disabled (no server.admin_token).',
    labels: ['reason'],
    doc: 'A burst of `wrong` is someone guessing the token; the token itself is never logged.',
  },
} as const satisfies Record<string, MetricSpec>;

export type MetricKey = keyof typeof METRIC_TABLE;

/** The label set of one metric, e.g. `{ model: string; outcome: Outcome }` for requestsTotal. */
export type MetricLabels<K extends MetricKey> = { [N in (typeof METRIC_TABLE)[K]['labels'][number]]: LabelValues[N] };

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

interface InstrumentOf<L> {
  histogram: LabeledHistogram<L>;
  counter: LabeledCounter<L>;
  gauge: LabeledGauge<L>;
}

/** One field per table entry, typed by the entry's type and labels. */
export type MetricInstruments = {
  readonly [K in MetricKey]: InstrumentOf<MetricLabels<K>>[(typeof METRIC_TABLE)[K]['type']];
};

export interface Metrics extends MetricInstruments {
  /** The registry every metric of METRIC_TABLE is registered on; `GET /metrics` serves it. */
  readonly registry: Registry;
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

/** A gauge's collect hook: prom-client calls it, with the gauge as `this`, before each scrape. */
type GaugeCollect = (this: Gauge) => void;

function instrument(
  spec: MetricSpec,
  registry: Registry,
  collect: GaugeCollect | undefined,
): Counter | Gauge | Histogram {
  const config = { name: spec.name, help: spec.help, labelNames: [...spec.labels], registers: [registry] };
  switch (spec.type) {
    case 'histogram':
      return new Histogram({ ...config, buckets: [...(spec.buckets ?? [])] });
    case 'counter':
      return new Counter(config);
    case 'gauge':
      return new Gauge(collect ? { ...config, collect } : config);
  }
}

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();

  // Event-loop lag over the time since the previous scrape: every request's networking, batching
  // and replies run on this loop (inference runs in workers), so lag here is added latency.
  const loopDelay: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  const collects: Partial<Record<MetricKey, GaugeCollect>> = {
    eventLoopLag() {
      if (loopDelay.count === 0) return; // no sample yet: keep the last values rather than export garbage
      this.set({ stat: 'p50' }, loopDelay.percentile(50) / 1e9);
      this.set({ stat: 'p99' }, loopDelay.percentile(99) / 1e9);
      this.set({ stat: 'max' }, loopDelay.max / 1e9);
      loopDelay.reset();
    },
  };

  // Registered in table order. Each instrument's class is chosen by its entry's `type`, which is
  // what MetricInstruments maps each field from, so the cast below states what the loop builds.
  const built: Partial<Record<MetricKey, Counter | Gauge | Histogram>> = {};
  for (const [key, spec] of Object.entries(METRIC_TABLE) as [MetricKey, MetricSpec][]) {
    built[key] = instrument(spec, registry, collects[key]);
  }
  const instruments = built as unknown as MetricInstruments;

  if (options.processMetrics ?? true) {
    collectDefaultMetrics({ register: registry });
    // prom-client names three gauges with a counter's `_total` suffix, which Prometheus' lint
    // (promtool check metrics) rejects; the per-type gauges beside them (nodejs_active_handles,
    // nodejs_active_requests, nodejs_active_resources) carry the same counts.
    for (const name of NON_COUNTERS_NAMED_TOTAL) registry.removeSingleMetric(name);
  }

  let closed = false;
  const refreshers: (() => void)[] = [];
  return {
    ...instruments,
    registry,
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
 * Sets both ramp gauges: `threshold` null means "never" (the ramp scores rows but answers none),
 * exported as INACTIVE_THRESHOLD with `offramp_ramp_active` 0, as is an inactive ramp.
 */
export function setRampThreshold(
  metrics: Metrics,
  model: string,
  rampId: number,
  threshold: number | null,
  active: boolean,
): void {
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
    metrics.rampDisabled.set({ model, ramp: String(ramp.id) }, ramp.disabled === null ? 0 : 1);
  }
  setOrRemove(metrics.windowDisagreement, labels, report.window.disagreement);
  setOrRemove(metrics.windowEarlyExitFraction, labels, report.window.earlyFraction);
  setOrRemove(metrics.estimatedLatencySavings, labels, report.window.estimatedSavings);
  setOrRemove(metrics.rampOverheadShare, labels, report.rampOverhead);
  metrics.probeShare.set(labels, report.tuner.probeShare);
  const e = report.tuner.estimates;
  if (report.tuner.online) metrics.tunerPaused.set(labels, report.tuner.paused ? 1 : 0);
  else metrics.tunerPaused.remove(labels);
  setOrRemove(metrics.tunerEstimatedDisagreement, labels, e?.estimatedDisagreement ?? null);
  setOrRemove(metrics.tunerUpperBound, labels, e?.upperBound ?? null);
  setOrRemove(metrics.tunerExpectedSavings, labels, e?.estimatedSavings ?? null);
  setOrRemove(metrics.hindsightSavings, labels, e?.hindsightSavings ?? null);
  if (!e) return;
  let counted = countedTotals.get(metrics);
  if (!counted) countedTotals.set(metrics, (counted = new Map<string, TunerTotals>()));
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

function setOrRemove(
  gauge: LabeledGauge<Pick<LabelValues, 'model'>>,
  labels: Pick<LabelValues, 'model'>,
  value: number | null,
): void {
  if (value === null || !Number.isFinite(value)) gauge.remove(labels);
  else gauge.set(labels, value);
}
