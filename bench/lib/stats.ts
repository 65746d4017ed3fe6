/**
 * From per-request measurements to the figures the report shows: latency percentiles,
 * throughput, agreement with the full model, accuracy, where requests exited, and errors. Pure.
 */
import { sumSimple } from 'simple-statistics';
import type { OpenLoopResult } from '../load/load-types.js';
import type { ImageTrace } from './trace.js';

/**
 * Nearest-rank percentile of an ascending list (p in [0, 100]); NaN when empty. Not
 * simple-statistics' `quantileSorted`: that one interpolates between neighbours (R/numpy type 7),
 * so its p99 is often no latency any request had, and every figure of the runs in bench/results/
 * would move for the same measurements.
 */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

/** Points of the empirical CDF (latency ms, cumulative share) at fixed shares, for plotting. */
export function cdfPoints(sorted: readonly number[]): [number, number][] {
  if (sorted.length === 0) return [];
  const shares = [
    0.001,
    0.01,
    ...Array.from({ length: 19 }, (_, i) => (i + 1) * 0.05),
    0.96,
    0.97,
    0.98,
    0.99,
    0.995,
    0.999,
    1,
  ];
  return shares.map((q) => [percentile(sorted, q * 100), q]);
}

/** Where answered requests exited: share per ramp id and "final" (the full model). */
export type ExitDistribution = Record<string, number>;

export interface PhaseFigures {
  requests: number;
  ok: number;
  p50_ms: number;
  p95_ms: number;
  p99_ms: number;
  mean_ms: number;
  throughput_rps: number;
  /** Among answered requests: share whose class differs from the full model's for that image. */
  disagreement: number;
  /** Among answered requests: share whose class equals the true label. */
  accuracy: number;
  exits: ExitDistribution;
  early_fraction: number;
  /** Requests not answered 200, by HTTP status ("0": connection failed or timed out). */
  errors: { total: number; by_status: Record<string, number>; by_code: Record<string, number> };
  client_send_lag_p99_ms: number;
  cdf: [number, number][];
}

/**
 * What one policy did with one schedule. `images[i]` is the image request i sent; disagreement
 * is measured against the recorded full-model class, the same model vanilla serves.
 */
export function phaseFigures(
  result: OpenLoopResult,
  images: readonly number[],
  traces: readonly ImageTrace[],
  labels: Int32Array,
  ramps: number,
): PhaseFigures {
  const latencies: number[] = [];
  // Every ramp and the final layer appear, with 0 where nothing exited, so runs line up.
  const exits = new Map<string, number>([
    ...Array.from({ length: ramps }, (_, i) => [String(i), 0] as const),
    ['final', 0],
  ]);
  const byStatus: Record<string, number> = {};
  const byCode: Record<string, number> = {};
  let disagree = 0;
  let correct = 0;
  result.status.forEach((status, i) => {
    if (status !== 200) {
      byStatus[String(status)] = (byStatus[String(status)] ?? 0) + 1;
      const code = result.errorCode[i];
      if (code) byCode[code] = (byCode[code] ?? 0) + 1;
      return;
    }
    const image = images[i] as number;
    const predicted = result.predicted[i] as number;
    latencies.push(result.latencyMs[i] as number);
    if (predicted !== traces[image]?.final) disagree++;
    if (predicted === labels[image]) correct++;
    const exit = result.exitRamp[i] ?? -1;
    const key = exit < 0 ? 'final' : String(exit);
    exits.set(key, (exits.get(key) ?? 0) + 1);
  });
  const ok = latencies.length;
  latencies.sort((a, b) => a - b);
  const lag = result.sendLagMs.filter(Number.isFinite).sort((a, b) => a - b);
  return {
    requests: result.status.length,
    ok,
    p50_ms: percentile(latencies, 50),
    p95_ms: percentile(latencies, 95),
    p99_ms: percentile(latencies, 99),
    // A plain left-to-right sum, as before: simple-statistics' `mean` compensates its sum and
    // would change the last digits of the reported means.
    mean_ms: ok > 0 ? sumSimple(latencies) / ok : Number.NaN,
    throughput_rps: result.elapsedS > 0 ? ok / result.elapsedS : 0,
    disagreement: ok > 0 ? disagree / ok : Number.NaN,
    accuracy: ok > 0 ? correct / ok : Number.NaN,
    exits: exitShares(exits, ok),
    early_fraction: ok > 0 ? (ok - (exits.get('final') ?? 0)) / ok : 0,
    errors: { total: result.status.length - ok, by_status: byStatus, by_code: byCode },
    client_send_lag_p99_ms: percentile(lag, 99),
    cdf: cdfPoints(latencies),
  };
}

/** Counts to shares, ramps in id order then "final". */
export function exitShares(counts: ReadonlyMap<string, number>, total: number): ExitDistribution {
  const keys = [...counts.keys()].sort((a, b) => (a === 'final' ? 1 : b === 'final' ? -1 : Number(a) - Number(b)));
  return Object.fromEntries(keys.map((k) => [k, total > 0 ? (counts.get(k) ?? 0) / total : 0]));
}
