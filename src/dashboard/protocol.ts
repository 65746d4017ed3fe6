/**
 * What the dashboard's server side (src/dashboard/, src/http/dashboard-plugin.ts) sends its page
 * (src/dashboard/client/): the one definition both sides compile against. Types only — the page's
 * bundle imports nothing else from the server.
 *
 * Routes, all under `/dashboard` (the plugin; `server.dashboard.enabled: false` in the SLO file removes it):
 * - `GET /dashboard` — the page; `/dashboard/assets/*` its bundled script and styles.
 * - `GET /dashboard/api/info` — `DashboardInfo`: the models and their settings.
 * - `GET /dashboard/events` — Server-Sent Events, one stream per tab for every model: `snapshot`
 *   events (`Snapshot` as JSON, SSE `id` = its `seq`), one per `sampleIntervalMs`. A new stream gets
 *   the ring buffer first (the last `bufferSeconds`); a reconnecting one (`Last-Event-ID`) gets only
 *   what it missed.
 * - `GET /dashboard/api/what-if?model=<m>&budget=<ratio>` — `WhatIfReport`.
 * - `GET /dashboard/api/frontier?model=<m>` — `FrontierReport`.
 * Errors are the server's coded errors (`{"error", "code"}`, docs/errors.md).
 */

/** Ramp ids and cascade tiers as exits, keyed as the metrics' `exit` label: an id, or "final". */
export type ExitKey = string;

export interface DashboardInfo {
  /** offramp's version. */
  version: string;
  /** Admin endpoints are configured (`server.admin_token`): the page's controls can work with the token. */
  adminEnabled: boolean;
  sampleIntervalMs: number;
  /** How far back the ring buffer reaches. */
  bufferSeconds: number;
  models: DashboardModelInfo[];
}

export interface DashboardModelInfo {
  name: string;
  version: string;
  /** Exit policy (confidence, margin, entropy, agreement…) and mode (release, drop). */
  policy: string;
  mode: string;
  /** guarded, apparate, static or off. */
  tunerKind: string;
  /** An online tuner drives the thresholds: pause/resume and what-if apply. */
  online: boolean;
  slo: { latencyMs: number; percentile: number };
  accuracy: { budget: number; confidence: number; window: number };
  /** Every exit the model has, in order (cascade tiers first), with a label for legends. */
  exits: { key: ExitKey; kind: 'tier' | 'ramp'; label: string }[];
  /** Upper bounds of the batch-size buckets (`offramp_batch_size`); the last bucket of `batchSizes` is "more". */
  batchSizeBuckets: number[];
}

/** One SSE `snapshot` event: every model at one instant. */
export interface Snapshot {
  /** Increases by one per snapshot for the server's lifetime (the SSE id). */
  seq: number;
  /** Epoch milliseconds when it was taken. */
  t: number;
  /** Seconds this snapshot's rates and distributions cover (since the previous one). */
  intervalS: number;
  /** The first snapshot after nobody watched: what lies between it and the previous one was not sampled. */
  afterGap: boolean;
  /** Process CPU (every thread: HTTP, batching, inference workers, tuners) over the interval, in cores. */
  cpuCores: number;
  /** Process CPU milliseconds per answered request over the interval, all models together; null with no answers. */
  cpuMsPerAnswer: number | null;
  models: Record<string, ModelSnapshot>;
}

export interface ModelSnapshot {
  /**
   * Latency percentiles of the requests answered in the interval, in ms, estimated from the
   * `offramp_request_latency_seconds` buckets as Prometheus' histogram_quantile does; null with no answers.
   */
  latencyMs: { p50: number; p95: number; p99: number } | null;
  answersPerS: number;
  /** Requests that ended in anything but an answer (rejected, timed out, failed), per second. */
  errorsPerS: number;
  /** Requests waiting for a batch now, and batches running now. */
  queueDepth: number;
  runningBatches: number;
  /** Batches executed in the interval per batch-size bucket (DashboardModelInfo.batchSizeBuckets, plus "more"). */
  batchSizes: number[];
  /** Answers in the interval per exit (ExitKey → share of the interval's answers); {} with no answers. */
  exitShares: Record<ExitKey, number>;
  /** Every exit in the plan in force → its threshold (null = "never"). */
  thresholds: Record<ExitKey, number | null>;
  /** Exits whose threshold an operator pinned. */
  pinned: ExitKey[];
  paused: boolean;
  /** The feedback window: its disagreement with the full model and its fill. */
  window: { disagreement: number | null; rows: number; capacity: number; earlyFraction: number | null };
  /** The guard's upper confidence bound on the disagreement of the thresholds in force; null without one. */
  guardBound: number | null;
  savings: {
    /** Share of full-model latency the window's exits saved (estimated from the profile). */
    estimated: number;
    /** What the best thresholds in hindsight would have saved on the tuner's last window; null when unknown. */
    hindsight: number | null;
  };
  /** Share of rows drawn as probes (run to the end, fed to the tuner). */
  probeShare: number;
  /** Tuner and operator events since the previous snapshot, oldest first. */
  events: TuningEvent[];
}

export const TUNING_EVENT_KINDS = [
  'retune',
  'tighten',
  'ramps',
  'pause',
  'resume',
  'pin',
  'unpin',
  'ramp-disabled',
  'restore',
] as const;
export type TuningEventKind = (typeof TUNING_EVENT_KINDS)[number];

export interface TuningEvent {
  /** Epoch milliseconds. */
  at: number;
  kind: TuningEventKind;
  /** One line for a tooltip: "tighten (at-risk): 14 of 900 rows disagreed". */
  summary: string;
}

/** What the tuner would choose at another accuracy budget, on its current feedback window. */
export interface WhatIfReport {
  model: string;
  budget: number;
  /** Feedback rows the answer is computed on. */
  rows: number;
  /** Exit → threshold it would set (null = never). */
  thresholds: Record<ExitKey, number | null>;
  /** Share of those rows answered before the final layer under those thresholds. */
  earlyShare: number;
  /** Share of full-model latency saved (estimated from the profile). */
  predictedSavings: number;
  /** Disagreement with the full model on those rows, and the guard's upper bound on it (null for a tuner without one). */
  disagreement: number;
  upperBound: number | null;
  /** The same figures for the thresholds in force, for comparison. */
  current: {
    thresholds: Record<ExitKey, number | null>;
    earlyShare: number;
    predictedSavings: number;
    disagreement: number;
  };
}

export interface FrontierPoint {
  throughputRps: number;
  latencyMs: number;
}

export interface FrontierCurve {
  /** "vanilla", "plan in force", or a bench policy's label. */
  label: string;
  points: FrontierPoint[];
}

export interface FrontierReport {
  model: string;
  slo: { latencyMs: number; percentile: number };
  /** From the model's latency profile: one point per profiled batch size (capacity at that size, and its latency). */
  predicted: FrontierCurve[];
  /** From the newest bench results for this model, or null if there are none. */
  measured: {
    /** Results file, relative to the package root. */
    source: string;
    commit: string | null;
    startedAt: string;
    /** Which latency percentile the points show. */
    percentile: number;
    curves: FrontierCurve[];
  } | null;
}
