/**
 * How long each part of the comparison runs, full and quick. Rates are fractions of the
 * capacity measured for vanilla in the same run, so a slower or busier machine gets
 * proportionally lighter load instead of a meaningless overload.
 */
import type { Pattern } from '../load/arrivals.js';

export interface PhasePlan {
  pattern: Pattern;
  /** Offered load as a fraction of vanilla's measured capacity (the mean, for bursty). */
  loadFraction: number;
  seconds: number;
}

export interface BenchPlan {
  quick: boolean;
  /**
   * Closed-loop saturation of a vanilla server: discarded warm run, then the measured one. 32 in
   * flight keeps two batches of 16 queued behind the running one — enough to saturate, few enough
   * that queue waits stay under the 50 ms SLO deadline instead of turning into 504s.
   */
  capacity: { concurrency: number; warmSeconds: number; seconds: number };
  /**
   * Sent to every policy's fresh server before anything is measured, not counted: the online
   * tuners start at "never" and need a few windows (1000 rows each) of feedback before their
   * exits open; the same stream warms vanilla's JIT and sockets so the comparison is fair.
   */
  warmup: { requests: number; loadFraction: number };
  phases: PhasePlan[];
  /** The load at which the latency CDFs are plotted. */
  cdfLoadFraction: number;
  /** Seconds per serving-overhead measurement (raw loop, in-process engine, HTTP). */
  overheadSeconds: number;
  /** Seed of the image order and of every arrival schedule. */
  seed: number;
  /** A request unanswered after this long counts as a client timeout. */
  requestTimeoutMs: number;
}

const COMMON = { seed: 5, requestTimeoutMs: 30_000, cdfLoadFraction: 0.6 } as const;

/** ≈ 12–15 minutes on 2 cores: 5 served policies × (warm-up + 4 phases of 30 s). */
export const FULL_PLAN: BenchPlan = {
  ...COMMON,
  quick: false,
  capacity: { concurrency: 32, warmSeconds: 3, seconds: 10 },
  warmup: { requests: 4000, loadFraction: 0.9 },
  phases: [
    { pattern: 'poisson', loadFraction: 0.3, seconds: 30 },
    { pattern: 'poisson', loadFraction: 0.6, seconds: 30 },
    { pattern: 'poisson', loadFraction: 0.9, seconds: 30 },
    { pattern: 'bursty', loadFraction: 0.6, seconds: 30 },
  ],
  overheadSeconds: 8,
};

/**
 * ≈ 2 minutes: a smoke test that every part runs end to end (CI). The warm-up is too short for
 * the online tuners to open many exits, so quick figures say nothing about their benefit.
 */
export const QUICK_PLAN: BenchPlan = {
  ...COMMON,
  quick: true,
  capacity: { concurrency: 32, warmSeconds: 1, seconds: 4 },
  warmup: { requests: 1000, loadFraction: 0.6 },
  phases: [{ pattern: 'poisson', loadFraction: 0.6, seconds: 8 }],
  overheadSeconds: 2,
};
