/**
 * How long each part of the comparison runs, full and quick. Rates are fractions of vanilla's SLO
 * capacity measured at the start of the same run, so a slower or busier machine gets
 * proportionally lighter load instead of a meaningless overload.
 */
import type { Pattern } from '../load/arrivals.js';
import type { BodyFormat } from '../load/request-body.js';

export interface PhasePlan {
  pattern: Pattern;
  /** Offered load as a fraction of vanilla's SLO capacity (the mean, for bursty). */
  loadFraction: number;
  seconds: number;
}

export interface BenchPlan {
  quick: boolean;
  /** How requests go on the wire (`--body`): KServe v2 binary tensors, or JSON. */
  body: BodyFormat;
  /** Latency objective, ms: percentiles and attainment are judged against it, and servers get it. */
  sloMs: number;
  /**
   * Rounds: every policy runs once per round, rounds one after another (vanilla, static, …,
   * vanilla, static, …), each time on a fresh server, so drift on the machine spreads over all
   * policies instead of landing on one.
   */
  rounds: number;
  /**
   * SLO capacity (capacity.ts): closed-loop saturation (`concurrency` in flight, `seconds`) as the
   * upper bracket, then `steps` Poisson probes of `probeSeconds` each, bisecting. `warmSeconds`
   * of closed loop first on the calibration servers, which get no other warm-up. 32 in flight
   * keeps two batches of 16 queued behind the running one: enough to saturate.
   */
  capacity: { concurrency: number; warmSeconds: number; seconds: number; steps: number; probeSeconds: number };
  /**
   * Sent to every policy's fresh server before anything is measured, not counted: the online
   * tuners need a few windows (1000 rows each) of feedback before their exits settle; the same
   * stream warms vanilla's JIT and sockets so the comparison is fair. At most `maxSeconds` of it:
   * on a busy machine the rate is low and `requests` would take minutes.
   */
  warmup: { requests: number; loadFraction: number; maxSeconds: number };
  phases: PhasePlan[];
  /** The load at which the latency CDFs are plotted. */
  cdfLoadFraction: number;
  /** Seconds per serving-overhead measurement (raw loop, in-process engine, HTTP). */
  overheadSeconds: number;
  /** Seed of the image order and of every arrival schedule. */
  seed: number;
  /** A request unanswered after this long counts as a client timeout (a miss). */
  requestTimeoutMs: number;
}

const COMMON = { seed: 5, requestTimeoutMs: 30_000, cdfLoadFraction: 0.6, sloMs: 50, body: 'binary' } as const;

/**
 * ≈ 25 minutes on 2 cores: 2 rounds × 6 served variants × (start + warm-up + 4 loads of 15 s +
 * saturation 5 s + 5 probes of 4 s), plus vanilla's calibration at the start and the end.
 */
export const FULL_PLAN: BenchPlan = {
  ...COMMON,
  quick: false,
  rounds: 2,
  capacity: { concurrency: 32, warmSeconds: 3, seconds: 5, steps: 5, probeSeconds: 4 },
  warmup: { requests: 4000, loadFraction: 0.9, maxSeconds: 10 },
  phases: [
    { pattern: 'poisson', loadFraction: 0.3, seconds: 15 },
    { pattern: 'poisson', loadFraction: 0.6, seconds: 15 },
    { pattern: 'poisson', loadFraction: 0.9, seconds: 15 },
    { pattern: 'bursty', loadFraction: 0.6, seconds: 15 },
  ],
  overheadSeconds: 5,
};

/**
 * ≈ 2–3 minutes: a smoke test that every part runs end to end (CI), one round. The warm-up is too
 * short for the online tuners to settle and the probes too short to be precise, so quick figures
 * say nothing about the policies.
 */
export const QUICK_PLAN: BenchPlan = {
  ...COMMON,
  quick: true,
  rounds: 1,
  capacity: { concurrency: 32, warmSeconds: 1, seconds: 2, steps: 2, probeSeconds: 1.5 },
  warmup: { requests: 1000, loadFraction: 0.6, maxSeconds: 3 },
  phases: [{ pattern: 'poisson', loadFraction: 0.6, seconds: 5 }],
  overheadSeconds: 2,
};

/**
 * A rough forecast of the run's wall time, printed at the start: per-step overheads measured on 2
 * cores; `servedRps` is roughly how fast the model is served (the warm-up is capped by count or time).
 */
export function plannedSeconds(plan: BenchPlan, variants: number, servedRps = 600): number {
  const SERVER_START = 5;
  const CHILD = 1; // spawning a load-generator process
  const c = plan.capacity;
  const search = c.seconds + CHILD + c.steps * (c.probeSeconds + CHILD + 0.5);
  const warmup = Math.min(plan.warmup.maxSeconds, plan.warmup.requests / servedRps) + CHILD;
  const phases = plan.phases.reduce((sum, p) => sum + p.seconds + CHILD + 0.5, 0);
  const perRun = SERVER_START + warmup + phases + search;
  const calibration = SERVER_START + c.warmSeconds + CHILD + search;
  return 3 * (plan.overheadSeconds + 3) + 2 * calibration + plan.rounds * variants * perRun;
}
