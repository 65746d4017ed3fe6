/**
 * The latency–throughput frontier of the dashboard (`GET /dashboard/api/frontier`): curves
 * predicted from a model's latency profile, and curves measured by the bench (the newest
 * bench/results/*.json for the model).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { BatchingConfig, SloConfig } from '../config/index.js';
import type { ExitPlan } from '../engine/backend.js';
import { planLatencyMs } from '../engine/model-runner.js';
import type { PreparedManifest } from '../model/manifest.js';
import { atBatch, estimatedSavings } from '../../tuner/latency-model.js';
import type { FrontierCurve, FrontierPoint, FrontierReport } from './protocol.js';

/** What the predicted curves are computed from: a model as it is served now. */
export interface FrontierInputs {
  /** Its latency profile (`profile`), and the exits the plan's ids name. */
  manifest: PreparedManifest;
  /** The exit plan in force. */
  plan: ExitPlan;
  /** Executor workers: batches run side by side. */
  workers: number;
  batching: BatchingConfig;
  slo: SloConfig;
  /** Exit id → share of the feedback window answered there (the plan in force's exits). */
  exitRates: ReadonlyMap<number, number>;
}

/**
 * The predicted curves, "vanilla" (no exits) and "plan in force", one point per profiled batch
 * size b up to batching.max_batch_size. The model, for a plan whose batch of b takes L(b) ms
 * (planLatencyMs: what the scheduler predicts with) on each of w workers:
 *
 * - throughput: the rate that keeps every worker busy with batches of b back to back,
 *   w × b / L(b) (× 1000 for requests per second): the capacity at that batch size;
 * - latency: the wait for the batch, plus the time from the batch's start to the answer. At
 *   that rate b requests arrive in L(b) / w, which is also the mean time between two workers
 *   freeing: the first request of a batch waits about that long (with `delay: fixed`, at most
 *   max_queue_delay_ms). The answer takes the full model's L(b) for vanilla; under the plan, the
 *   window's exit rates answer part of the rows earlier: the expected time to answer
 *   (tuner/latency-model.ts estimatedSavings at batch size b).
 *
 * What it leaves out: queueing beyond one batch (the tail as the rate nears capacity, which the
 * measured curves show) and, in drop mode, the batch time exited rows give back (L(b) counts
 * every row to the end, so the plan's throughput is a lower bound there).
 */
export function predictedFrontier(inputs: FrontierInputs): FrontierCurve[] {
  const { manifest, plan, workers, batching, exitRates } = inputs;
  const profile = manifest.profile;
  const sizes = profile.batchSizes.filter((b) => b <= batching.maxBatchSize);
  const active = plan.ramps.map((r) => r.id);
  const vanillaPlan: ExitPlan = { ...plan, ramps: [] };
  const wait = (batchMs: number) => {
    const fill = batchMs / workers;
    return batching.delay === 'fixed' ? Math.min(fill, batching.maxQueueDelayMs) : fill;
  };
  const curve = (label: string, batchPlan: ExitPlan, answerMs: (b: number) => number): FrontierCurve => ({
    label,
    points: sizes
      .map((b): FrontierPoint => {
        const batchMs = planLatencyMs(manifest, batchPlan, b);
        return { throughputRps: (workers * b * 1000) / batchMs, latencyMs: wait(batchMs) + answerMs(b) };
      })
      .filter((p) => Number.isFinite(p.throughputRps) && Number.isFinite(p.latencyMs))
      .sort((a, b) => a.throughputRps - b.throughputRps),
  });
  const full = (b: number) => atBatch(profile, profile.fullModelMs, b);
  return [
    curve('vanilla', vanillaPlan, full),
    curve('plan in force', plan, (b) => full(b) * (1 - estimatedSavings(profile, active, exitRates, b))),
  ];
}

/** The latency percentile the measured curves show: the SLO's when the bench records it (95, 99), else 95. */
export function measuredPercentile(sloPercentile: number): 95 | 99 {
  return sloPercentile === 99 ? 99 : 95;
}

/**
 * The bench's results format this reads (bench/lib/results.ts RESULTS_FORMAT defines it; src/
 * may not import bench/): only the fields the frontier needs.
 */
const BENCH_RESULTS_FORMAT = 'offramp.bench/2';

interface BenchRun {
  label: string;
  /** Computed rows (the oracles) are derived from a served run, not measured. */
  computed: boolean;
  pattern: string;
  rate_rps: number;
  p50_ms: number | null;
  p95_ms: number | null;
  p99_ms: number | null;
}

/** What one results file gives the frontier: small, so a cache of every file costs little. */
interface BenchSummary {
  model: string;
  startedAt: string;
  commit: string | null;
  runs: BenchRun[];
}

/**
 * Reads bench results for the frontier's measured curves. Each file is parsed once per
 * modification (they are large: every run's latency CDF) and only its summary kept.
 */
export class BenchResults {
  private readonly cache = new Map<string, { mtimeMs: number; size: number; summary: BenchSummary | null }>();

  /**
   * @param dir the results folder (server.dashboard.results_dir)
   * @param root the package root the report's `source` is relative to
   */
  constructor(
    private readonly dir: string,
    private readonly root: string,
  ) {}

  /**
   * Curves from the newest results file (by its `started_at`) for `model`: one per served policy
   * label, from its steady-load (poisson) runs, a point per offered rate at the given latency
   * percentile (the median over the rounds run at that rate; a run whose percentile was a miss
   * is left out). Bursty runs share their mean rate with a poisson one and would blur the curve.
   * Null when no file is for this model (or the folder does not exist).
   */
  async newest(model: string, percentile: 95 | 99): Promise<FrontierReport['measured']> {
    let names: string[];
    try {
      names = (await readdir(this.dir)).filter((n) => n.endsWith('.json'));
    } catch {
      return null;
    }
    let best: { file: string; summary: BenchSummary } | null = null;
    for (const name of names) {
      const file = join(this.dir, name);
      const summary = await this.summary(file);
      if (summary?.model !== model) continue;
      if (!best || summary.startedAt > best.summary.startedAt) best = { file, summary };
    }
    if (!best) return null;
    return {
      source: relative(this.root, best.file),
      commit: best.summary.commit,
      startedAt: best.summary.startedAt,
      percentile,
      curves: measuredCurves(best.summary.runs, percentile),
    };
  }

  private async summary(file: string): Promise<BenchSummary | null> {
    let info;
    try {
      info = await stat(file);
    } catch {
      return null;
    }
    const cached = this.cache.get(file);
    if (cached && cached.mtimeMs === info.mtimeMs && cached.size === info.size) return cached.summary;
    let summary: BenchSummary | null = null;
    try {
      summary = benchSummary(JSON.parse(await readFile(file, 'utf8')));
    } catch {
      // Not JSON, or not ours: not a results file.
    }
    this.cache.set(file, { mtimeMs: info.mtimeMs, size: info.size, summary });
    return summary;
  }
}

/** The frontier's part of a parsed results file; null unless it is an offramp.bench/2 file. */
export function benchSummary(data: unknown): BenchSummary | null {
  if (!isRecord(data) || data['format'] !== BENCH_RESULTS_FORMAT) return null;
  const model = isRecord(data['model']) ? data['model']['name'] : undefined;
  const provenance = isRecord(data['provenance']) ? data['provenance'] : {};
  const startedAt = data['started_at'];
  if (typeof model !== 'string' || typeof startedAt !== 'string' || !Array.isArray(data['runs'])) return null;
  const latency = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const runs: BenchRun[] = data['runs'].filter(isRecord).flatMap((r) =>
    typeof r['label'] === 'string' && typeof r['rate_rps'] === 'number'
      ? [
          {
            label: r['label'],
            computed: r['computed'] === true,
            pattern: typeof r['pattern'] === 'string' ? r['pattern'] : '',
            rate_rps: r['rate_rps'],
            p50_ms: latency(r['p50_ms']),
            p95_ms: latency(r['p95_ms']),
            p99_ms: latency(r['p99_ms']),
          },
        ]
      : [],
  );
  return {
    model,
    startedAt,
    commit: typeof provenance['commit'] === 'string' ? provenance['commit'] : null,
    runs,
  };
}

/** A curve per label of the served steady-load runs, in the order the file first lists each label. */
export function measuredCurves(runs: readonly BenchRun[], percentile: 95 | 99): FrontierCurve[] {
  const byLabel = new Map<string, Map<number, number[]>>();
  for (const run of runs) {
    if (run.computed || run.pattern !== 'poisson') continue;
    const latency = percentile === 99 ? run.p99_ms : run.p95_ms;
    let rates = byLabel.get(run.label);
    if (!rates) byLabel.set(run.label, (rates = new Map<number, number[]>()));
    if (latency === null) continue; // a miss: beyond any latency axis
    const seen = rates.get(run.rate_rps);
    if (seen) seen.push(latency);
    else rates.set(run.rate_rps, [latency]);
  }
  return [...byLabel]
    .map(([label, rates]) => ({
      label,
      points: [...rates]
        .map(([throughputRps, latencies]) => ({ throughputRps, latencyMs: median(latencies) }))
        .sort((a, b) => a.throughputRps - b.throughputRps),
    }))
    .filter((curve) => curve.points.length > 0);
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
