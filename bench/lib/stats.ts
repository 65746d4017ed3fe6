/**
 * From per-request measurements to the figures the report shows: latency percentiles,
 * throughput, SLO attainment, agreement with the full model, accuracy, where requests exited,
 * and errors. Pure.
 *
 * Percentiles are over every *offered* request: one that was not answered 200 (rejected with 429
 * or 503, timed out in the queue with 504, timed out at the client, failed) is a miss with latency
 * +∞. Counting only answered requests would let a policy that sheds more load look faster in the
 * tail. A percentile that lands on a miss is stored as null (JSON has no ∞) and shown as "miss".
 */
import { sumSimple } from 'simple-statistics';
import type { OpenLoopResult } from '../load/load-types.js';
import type { ItemTrace } from './trace.js';

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

/** A latency for the results file: a finite number, or null for a miss (+∞) or no data. */
export function latencyOrMiss(ms: number): number | null {
  return Number.isFinite(ms) ? ms : null;
}

/**
 * Points of the empirical CDF (latency ms, cumulative share) at fixed shares, for plotting. Over
 * every offered request: misses (+∞) sort last and are left out, so the curve stops at the share
 * that was answered.
 */
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
  return shares.map((q): [number, number] => [percentile(sorted, q * 100), q]).filter(([ms]) => Number.isFinite(ms));
}

/** Where answered requests exited: share per ramp id and "final" (the full model). */
export type ExitDistribution = Record<string, number>;

export interface PhaseFigures {
  /** Offered requests. */
  requests: number;
  /** Answered 200. */
  ok: number;
  /** Nearest-rank percentiles over every offered request; null = the percentile is a miss (+∞). */
  p50_ms: number | null;
  p95_ms: number | null;
  p99_ms: number | null;
  /** The same over answered requests only (the old, flattering definition), for diagnosis. */
  answered_p50_ms: number | null;
  answered_p95_ms: number | null;
  answered_p99_ms: number | null;
  /** Mean latency of answered requests. */
  mean_ms: number | null;
  /** The SLO latency attainment is measured against, ms. */
  slo_ms: number;
  /** Share of offered requests answered 200 within slo_ms. */
  slo_attainment: number;
  /** Answered requests per second. */
  throughput_rps: number;
  /** Requests answered 200 within slo_ms, per second. */
  goodput_rps: number;
  /** Among answered requests: share whose class differs from the full model's for that item. */
  disagreement: number;
  /** Among answered requests: share whose class equals the true label. */
  accuracy: number;
  /**
   * Where answered requests exited: share per backbone ramp id (with a cascade too: ramp r, not
   * exit T + r) and "final" (the backbone's last layer); rows a cascade tier answered are in
   * `tier_shares`, not here.
   */
  exits: ExitDistribution;
  /**
   * With a cascade: share of answered requests per tier that answered them (the response's `tier`
   * parameter), "0".."T−1", then "model" (the served model, its ramps included); null without one.
   */
  tier_shares: Record<string, number> | null;
  /** With a cascade: answered requests whose response had no `tier` parameter (0 when served as one); null without. */
  answers_without_tier: number | null;
  /** Share of answered requests not answered by the backbone's last layer (ramps and tiers). */
  early_fraction: number;
  /** Requests not answered 200, by HTTP status ("0": connection failed or timed out). */
  errors: { total: number; by_status: Record<string, number>; by_code: Record<string, number> };
  client_send_lag_p99_ms: number | null;
  /** (latency ms, share of offered requests): stops below 1 when some were missed. */
  cdf: [number, number][];
}

/**
 * What one policy did with one schedule. `items[i]` is the test item request i sent; disagreement
 * is measured against the recorded full-model class, the same model vanilla serves. `tiers`: the
 * cascade's tier count T in front of the model (0: none), whose exit ids come first.
 */
export function phaseFigures(
  result: OpenLoopResult,
  items: readonly number[],
  traces: readonly ItemTrace[],
  labels: Int32Array,
  ramps: number,
  sloMs: number,
  tiers = 0,
): PhaseFigures {
  const latencies: number[] = [];
  let withinSlo = 0;
  // Every ramp and the final layer appear, with 0 where nothing exited, so runs line up.
  const exits = new Map<string, number>([
    ...Array.from({ length: ramps }, (_, i) => [String(i), 0] as const),
    ['final', 0],
  ]);
  const tierCounts = new Map<string, number>([
    ...Array.from({ length: tiers }, (_, t) => [String(t), 0] as const),
    ['model', 0],
  ]);
  const byStatus: Record<string, number> = {};
  const byCode: Record<string, number> = {};
  let disagree = 0;
  let correct = 0;
  let withoutTier = 0;
  result.status.forEach((status, i) => {
    if (status !== 200) {
      byStatus[String(status)] = (byStatus[String(status)] ?? 0) + 1;
      const code = result.errorCode[i];
      if (code) byCode[code] = (byCode[code] ?? 0) + 1;
      return;
    }
    const item = items[i] as number;
    const predicted = result.predicted[i] as number;
    const latency = result.latencyMs[i] as number;
    latencies.push(latency);
    if (latency <= sloMs) withinSlo++;
    if (predicted !== traces[item]?.final) disagree++;
    if (predicted === labels[item]) correct++;
    const exit = result.exitRamp[i] ?? -1;
    if (tiers > 0) {
      if (result.tier[i] === null || result.tier[i] === undefined) withoutTier++;
      const tier = result.tier[i] ?? tiers;
      const tierKey = tier < tiers ? String(tier) : 'model';
      tierCounts.set(tierKey, (tierCounts.get(tierKey) ?? 0) + 1);
      if (exit >= 0 && exit < tiers) return;
    }
    const key = exit < 0 ? 'final' : String(exit - tiers);
    exits.set(key, (exits.get(key) ?? 0) + 1);
  });
  const ok = latencies.length;
  const requests = result.status.length;
  latencies.sort((a, b) => a - b);
  // Every offered request: the answered latencies, then a +∞ per miss.
  const offered = [...latencies, ...new Array<number>(requests - ok).fill(Number.POSITIVE_INFINITY)];
  const lag = result.sendLagMs.filter(Number.isFinite).sort((a, b) => a - b);
  const at = (sorted: readonly number[], p: number): number | null => latencyOrMiss(percentile(sorted, p));
  return {
    requests,
    ok,
    p50_ms: at(offered, 50),
    p95_ms: at(offered, 95),
    p99_ms: at(offered, 99),
    answered_p50_ms: at(latencies, 50),
    answered_p95_ms: at(latencies, 95),
    answered_p99_ms: at(latencies, 99),
    // A plain left-to-right sum, as before: simple-statistics' `mean` compensates its sum and
    // would change the last digits of the reported means.
    mean_ms: ok > 0 ? sumSimple(latencies) / ok : null,
    slo_ms: sloMs,
    slo_attainment: requests > 0 ? withinSlo / requests : 0,
    throughput_rps: result.elapsedS > 0 ? ok / result.elapsedS : 0,
    goodput_rps: result.elapsedS > 0 ? withinSlo / result.elapsedS : 0,
    disagreement: ok > 0 ? disagree / ok : Number.NaN,
    accuracy: ok > 0 ? correct / ok : Number.NaN,
    exits: exitShares(exits, ok),
    tier_shares: tiers > 0 ? Object.fromEntries([...tierCounts].map(([k, n]) => [k, ok > 0 ? n / ok : 0])) : null,
    answers_without_tier: tiers > 0 ? withoutTier : null,
    early_fraction: ok > 0 ? (ok - (exits.get('final') ?? 0)) / ok : 0,
    errors: { total: result.status.length - ok, by_status: byStatus, by_code: byCode },
    client_send_lag_p99_ms: latencyOrMiss(percentile(lag, 99)),
    cdf: cdfPoints(offered),
  };
}

/** Counts to shares, ramps in id order then "final". */
export function exitShares(counts: ReadonlyMap<string, number>, total: number): ExitDistribution {
  const keys = [...counts.keys()].sort((a, b) => (a === 'final' ? 1 : b === 'final' ? -1 : Number(a) - Number(b)));
  return Object.fromEntries(keys.map((k) => [k, total > 0 ? (counts.get(k) ?? 0) / total : 0]));
}

/** Tier shares as one line: "T0 82.1 % · model 17.9 %". */
export function tierSharesText(shares: Readonly<Record<string, number>>): string {
  return Object.entries(shares)
    .map(([k, v]) => `${k === 'model' ? 'model' : `T${k}`} ${(v * 100).toFixed(1)} %`)
    .join(' · ');
}
