/**
 * The shape of a results file (bench/results/<stamp>.json): one `runs` row per policy, round and
 * load, plus everything needed to interpret them. Reports read only this, so a stored file can be
 * re-rendered later. Latencies that can be a miss (+∞) are `number | null` (null = miss).
 */
import type { Pattern } from '../load/arrivals.js';
import type { BodyFormat } from '../load/request-body.js';
import type { BenchPlan } from './bench-plan.js';
import type { CascadeTraceSummary } from './cascade-trace.js';
import type { ChosenMember } from './cascades.js';
import type { SloCapacity } from './capacity.js';
import type { Provenance } from './machine.js';
import type { ExitMode } from '../../tuner/exit-policy.js';
import type { PolicyName } from './policies.js';
import type { Sample } from './prometheus.js';
import type { OverheadResult } from './serving-overhead.js';
import type { PhaseFigures } from './stats.js';

export const RESULTS_FORMAT = 'offramp.bench/2';

export interface LagMs {
  p50_ms: number | null;
  p99_ms: number | null;
  max_ms: number | null;
}

export interface RunRow extends PhaseFigures {
  policy: PolicyName;
  mode: ExitMode;
  /** "vanilla", "vanilla (json)", "guarded-drop", …, "oracle" */
  label: string;
  /** Wire format of the requests (the oracle: its vanilla run's). */
  body: BodyFormat;
  /** 1, 2, …: rounds run one after another, every policy once per round on a fresh server. */
  round: number;
  /** True for the oracle: derived from vanilla's run and the recorded trace, not served. */
  computed: boolean;
  pattern: Pattern;
  load_fraction: number;
  /** Offered rate (mean rate for bursty), requests/s. */
  rate_rps: number;
  /**
   * Server process CPU seconds (user + system, all threads) during the run's load: from
   * /proc/<pid>/stat read just before and after it (`cpu_source` "proc"), or where there is no
   * /proc, process_cpu_seconds_total's delta over the /metrics scrapes around it ("metrics").
   */
  cpu_s: number | null;
  cpu_source?: 'proc' | 'metrics' | null;
  /** cpu_s per answered request, in ms. */
  cpu_ms_per_answer: number | null;
  /**
   * Computed rows (oracles): the compute each answered request pays, as a share of the full
   * model's, averaged (from the manifest profile and, for the cascade oracle, the tier's cost as
   * the server reported it); null for served rows, which have CPU time instead.
   */
  compute_share?: number | null;
  /** offramp_ramp_overhead_ratio at the end of the run: active heads' cost / full-model latency. */
  head_overhead: number | null;
  /** offramp_estimated_latency_savings_ratio at the end of the run. */
  estimated_savings: number | null;
  /** offramp_window_disagreement_ratio: the server's own view over its last feedback window. */
  window_disagreement: number | null;
  /**
   * Exits allowed to answer at the end of the run, with their thresholds: ramps by their backbone
   * id; a cascade's tiers marked `kind: "tier"` (id = tier index, threshold = θ).
   */
  active_ramps: { id: number; threshold: number | null; kind?: 'tier' }[];
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

/** One served policy in one round: its server, warm-up and SLO capacity. */
export interface ServedRun {
  label: string;
  round: number;
  body: BodyFormat;
  warmup: { ok: number; errors: number };
  capacity: SloCapacity;
}

/** What a `--cascade` run served in front of the model, and what the members do offline. */
export interface CascadeResults {
  /** The members' training report the single-small member was chosen from. */
  report: string;
  /** Member name → ONNX file (repository-relative), the ABC tier in order. */
  members: Record<string, string>;
  /** single-small's member: the one agreeing most with the backbone per the report. */
  single: ChosenMember;
  /**
   * The ABC tier's cost per call at batch 1 as the cascade servers measured it at load
   * (/exits `cascade.tiers[0].costMs`, one per served cascade run), and the full model's batch-1
   * latency from the manifest profile: what the cascade oracle's cost shares come from.
   */
  tier_cost_ms: { label: string; round: number; cost_ms: number }[];
  full_model_ms_batch1: number;
  /** The members run offline over every test item (bench/lib/cascade-trace.ts). */
  trace: CascadeTraceSummary;
}

export interface BenchResults {
  format: typeof RESULTS_FORMAT;
  quick: boolean;
  started_at: string;
  finished_at: string;
  duration_s: number;
  /** Forecast printed at the start, seconds. */
  planned_duration_s: number;
  provenance: Provenance;
  model: { name: string; dir: string; manifest_created_at: string; classes: number; ramps: number };
  /**
   * What the requests carried (bench/lib/workload.ts) and how `plan.sloMs` was chosen. Absent in
   * files from before issue 13, which are all Fashion-MNIST images at 50 ms.
   */
  workload?: {
    kind: 'image' | 'text';
    description: string;
    item: string;
    data: string;
    items: number;
    slo_rule: string;
  };
  plan: BenchPlan;
  /** Per served variant: its description, body format and the SLO file it ran with. */
  policies: { label: string; about: string; body: BodyFormat | null; config: object | null }[];
  /**
   * Vanilla's SLO capacity on a fresh server at the start (it sets every load) and again at the
   * end; drift = end / start − 1 (null when the start figure is 0). `load_basis` is the rate the
   * loads are fractions of: the start figure, or its lowest probe's rate when no probe met the SLO.
   */
  vanilla_capacity: {
    start: SloCapacity;
    end: SloCapacity;
    drift: number | null;
    load_basis: { rps: number; from: 'slo_capacity' | 'lowest_probe' };
  };
  /** Every served policy, every round, in the order they ran. */
  served: ServedRun[];
  warmup: { requests: number; load_fraction: number; rate_rps: number };
  /** `images`: records in the trace, one per test item (the name predates text workloads). */
  trace: { path: string; recorded: boolean; images: number; full_model_accuracy: number };
  serving_overhead: OverheadResult | null;
  /** `--cascade` runs only (bench/lib/cascades.ts, cascade-trace.ts). */
  cascade?: CascadeResults;
  runs: RunRow[];
  /** Wall-clock seconds per section. */
  durations_s: Record<string, number>;
  sanity: { passed: boolean; problems: string[] };
}
