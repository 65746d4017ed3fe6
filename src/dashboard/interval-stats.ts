/**
 * The arithmetic of a dashboard snapshot: what happened between two readings of the cumulative
 * Prometheus instruments (src/metrics.ts), each model's figures over the interval. Pure: the
 * readings come in as numbers (src/dashboard/sampler.ts takes them).
 *
 * Cumulative histograms are arrays with one count per finite bucket bound, in ascending order,
 * then the +Inf bucket (the total): what prom-client's `_bucket{le}` series hold.
 */
import type { ModelSnapshot } from './protocol.js';

/** One model's cumulative totals at one instant. */
export interface ModelTotals {
  /** offramp_request_latency_seconds, every exit together (cumulative, LATENCY_BUCKETS then +Inf), seconds. */
  latency: readonly number[];
  /** offramp_batch_size (cumulative, BATCH_SIZE_BUCKETS then +Inf). */
  batchSizes: readonly number[];
  /** offramp_requests_total by outcome. */
  outcomes: Readonly<Record<string, number>>;
  /** offramp_requests_by_exit_total by exit label (a ramp or tier id, or "final"). */
  exits: Readonly<Record<string, number>>;
}

/** The `outcome` of offramp_requests_total that is an answer; every other one counts as an error. */
const ANSWERED = 'ok';

/**
 * How much a counter grew between two readings. Counters only grow (prom-client's are never
 * reset while the registry lives), so a smaller second reading can only be a series that was
 * removed and recreated: it counts from 0 then.
 */
export function counterIncrease(before: number | undefined, after: number): number {
  const base = before ?? 0;
  return after >= base ? after - base : after;
}

/** A cumulative histogram's growth between two readings, bucket by bucket (still cumulative). */
export function bucketIncrease(before: readonly number[] | undefined, after: readonly number[]): number[] {
  return after.map((count, i) => counterIncrease(before?.[i], count));
}

/** A cumulative histogram as counts per bucket: [≤ b0, (b0, b1], …, (b_last, +Inf)]. */
export function perBucket(cumulative: readonly number[]): number[] {
  return cumulative.map((count, i) => Math.max(0, count - (i === 0 ? 0 : (cumulative[i - 1] as number))));
}

/**
 * The q-quantile (0 < q ≤ 1) of a cumulative histogram, estimated as Prometheus'
 * histogram_quantile does: find the bucket holding the observation of rank q × total, and
 * interpolate linearly between its bounds (the first bucket starts at 0). A rank in the +Inf
 * bucket gives the highest finite bound: nothing better is known. Null without observations.
 *
 * `bounds` are the finite upper bounds, ascending; `cumulative` has one more entry, the +Inf bucket.
 */
export function histogramQuantile(q: number, bounds: readonly number[], cumulative: readonly number[]): number | null {
  if (!(q > 0 && q <= 1)) throw new RangeError(`histogramQuantile: q must be in (0, 1], got ${q}`);
  if (cumulative.length !== bounds.length + 1)
    throw new RangeError(`histogramQuantile: ${cumulative.length} counts for ${bounds.length} bounds and +Inf`);
  const total = cumulative[bounds.length] as number;
  if (!(total > 0)) return null;
  const rank = q * total;
  let b = 0;
  while ((cumulative[b] as number) < rank) b++;
  if (b === bounds.length) return bounds.length > 0 ? (bounds[bounds.length - 1] as number) : null;
  const upper = bounds[b] as number;
  if (b === 0 && upper <= 0) return upper;
  const lower = b === 0 ? 0 : (bounds[b - 1] as number);
  const below = b === 0 ? 0 : (cumulative[b - 1] as number);
  const inBucket = (cumulative[b] as number) - below;
  return lower + (upper - lower) * ((rank - below) / inBucket);
}

/** The parts of a model snapshot that are rates and distributions: what its counters did over the interval. */
export type IntervalPart = Pick<
  ModelSnapshot,
  'latencyMs' | 'answersPerS' | 'errorsPerS' | 'batchSizes' | 'exitShares'
>;

export type IntervalFigures = IntervalPart & {
  /** Answers in the interval (for CPU per answer over every model). */
  answers: number;
};

/**
 * One model's figures between two readings `intervalS` seconds apart; `before` undefined: the
 * model had no series yet (every total counts from 0).
 */
export function intervalFigures(
  before: ModelTotals | undefined,
  after: ModelTotals,
  intervalS: number,
  latencyBounds: readonly number[],
): IntervalFigures {
  const latency = bucketIncrease(before?.latency, after.latency);
  const seconds = (q: number) => histogramQuantile(q, latencyBounds, latency);
  const p50 = seconds(0.5);
  const p95 = seconds(0.95);
  const p99 = seconds(0.99);

  let answers = 0;
  let errors = 0;
  for (const [outcome, total] of Object.entries(after.outcomes)) {
    const grown = counterIncrease(before?.outcomes[outcome], total);
    if (outcome === ANSWERED) answers += grown;
    else errors += grown;
  }

  const byExit = Object.entries(after.exits).map(
    ([exit, total]) => [exit, counterIncrease(before?.exits[exit], total)] as const,
  );
  const exited = byExit.reduce((sum, [, n]) => sum + n, 0);
  const perSecond = (n: number) => (intervalS > 0 ? n / intervalS : 0);
  return {
    latencyMs:
      p50 === null || p95 === null || p99 === null ? null : { p50: p50 * 1000, p95: p95 * 1000, p99: p99 * 1000 },
    answersPerS: perSecond(answers),
    errorsPerS: perSecond(errors),
    batchSizes: perBucket(bucketIncrease(before?.batchSizes, after.batchSizes)),
    exitShares: exited > 0 ? Object.fromEntries(byExit.filter(([, n]) => n > 0).map(([e, n]) => [e, n / exited])) : {},
    answers,
  };
}
