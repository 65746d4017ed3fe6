/**
 * The shape of a results file (bench/results/<stamp>.json): one `runs` row per policy and load,
 * plus everything needed to interpret them. Reports read only this, so a stored file can be
 * re-rendered later.
 */
import type { Pattern } from '../load/arrivals.js';
import type { ClosedLoopResult } from '../load/load-types.js';
import type { BenchPlan } from './bench-plan.js';
import type { MachineInfo } from './machine.js';
import type { ExitMode } from '../../tuner/exit-policy.js';
import type { PolicyName } from './policies.js';
import type { Sample } from './prometheus.js';
import type { OverheadResult } from './serving-overhead.js';
import type { PhaseFigures } from './stats.js';

export const RESULTS_FORMAT = 'offramp.bench/1';

export interface LagMs {
  p50_ms: number | null;
  p99_ms: number | null;
  max_ms: number | null;
}

export interface RunRow extends PhaseFigures {
  policy: PolicyName;
  mode: ExitMode;
  /** policyLabel(): "vanilla", "guarded-drop", … */
  label: string;
  /** True for the oracle: derived from vanilla's run and the recorded trace, not served. */
  computed: boolean;
  pattern: Pattern;
  load_fraction: number;
  /** Offered rate (mean rate for bursty), requests/s. */
  rate_rps: number;
  /** offramp_ramp_overhead_ratio at the end of the run: active heads' cost / full-model latency. */
  head_overhead: number | null;
  /** offramp_estimated_latency_savings_ratio at the end of the run. */
  estimated_savings: number | null;
  /** offramp_window_disagreement_ratio: the server's own view over its last feedback window. */
  window_disagreement: number | null;
  /** Ramps allowed to answer at the end of the run, with their thresholds. */
  active_ramps: { id: number; threshold: number | null }[];
  /** Rows per executed batch during the run (offramp_batch_size histogram). */
  mean_batch_size: number | null;
  /** Server event-loop lag during the run (offramp_event_loop_lag_seconds since the previous scrape). */
  server_event_loop_lag: LagMs;
  /** offramp_* gauges scraped at the end of the run (no histogram buckets). */
  metrics: Sample[];
  /** GET /v2/models/{m}/exits at the end of the run. */
  exits_report: unknown;
  /**
   * The machine's 1-minute load average before and after the run: on a shared 2-core machine,
   * other work shows here first, and a run taken under a load of 8 is not comparable to one at 1.
   */
  load_average_1m: [number, number] | null;
}

export interface BenchResults {
  format: typeof RESULTS_FORMAT;
  quick: boolean;
  started_at: string;
  finished_at: string;
  duration_s: number;
  machine: MachineInfo;
  source: { commit: string | null; dirty: boolean | null };
  model: { name: string; dir: string; manifest_created_at: string; classes: number; ramps: number };
  plan: BenchPlan;
  /** Per served policy: its description and the SLO file it ran with. */
  policies: { label: string; about: string; config: object | null }[];
  capacity: ClosedLoopResult & { concurrency: number; server_event_loop_lag: LagMs };
  /** Per served policy, after its measured phases: closed-loop capacity (same client as `capacity`). */
  saturation: Record<string, ClosedLoopResult & { concurrency: number; seconds: number }>;
  warmup: {
    requests: number;
    load_fraction: number;
    rate_rps: number;
    by_policy: Record<string, { ok: number; errors: number }>;
  };
  trace: { path: string; recorded: boolean; images: number; full_model_accuracy: number };
  serving_overhead: OverheadResult | null;
  runs: RunRow[];
  /** Wall-clock seconds per section. */
  durations_s: Record<string, number>;
  sanity: { passed: boolean; problems: string[] };
}
