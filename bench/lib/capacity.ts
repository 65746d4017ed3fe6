/**
 * Capacity as MLPerf's server scenario defines it: the highest Poisson arrival rate at which the
 * p95 latency over every offered request (a miss counts as +∞, see stats.ts) meets the SLO.
 *
 * The search brackets the answer from above with the closed-loop saturation throughput (what the
 * server answers with `concurrency` requests always in flight: a Poisson stream at that mean rate
 * keeps the server busy all the time, so its queue grows without bound), then bisects [0, upper]
 * with short Poisson runs: `steps` probes give a resolution of upper / 2^steps. The capacity is
 * the highest probed rate that passed (0 when none did). Short probes are noisy near the knee;
 * the bench runs every policy twice and shows the spread.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BodyFormat } from '../load/request-body.js';
import type { ClosedLoopResult, OpenLoopResult } from '../load/load-types.js';
import type { BenchPlan } from './bench-plan.js';
import { runClosedLoop, runOpenLoop } from './load-runner.js';
import { servingConfig, type ServedPolicy } from './policies.js';
import type { Schedule } from './schedules.js';
import { startServerProcess, type ServerProcess } from './server-process.js';
import { latencyOrMiss, percentile } from './stats.js';

export interface CapacityProbe {
  rate_rps: number;
  requests: number;
  ok: number;
  /** p95 over every offered request; null = a miss (+∞). */
  p95_ms: number | null;
  slo_attainment: number;
  passed: boolean;
  /** Non-200 answers by HTTP status ("0": no answer). */
  errors_by_status: Record<string, number>;
}

export interface SloCapacity {
  /** Highest probed Poisson rate whose p95 met the SLO, requests/s; 0 when none did. */
  rps: number;
  slo_ms: number;
  /** The bracket's top: closed-loop saturation throughput. */
  upper_rps: number;
  /** The closed-loop saturation itself (kept as an extra column). */
  saturation: ClosedLoopResult & { concurrency: number };
  /** In the order they ran. */
  probes: CapacityProbe[];
}

/** The bisection, apart from how a probe is run (tested with a fake probe). */
export async function searchCapacity(
  upperRps: number,
  steps: number,
  probe: (rateRps: number, step: number) => Promise<{ p95_ms: number | null }>,
  sloMs: number,
): Promise<{ rps: number; tried: { rate_rps: number; passed: boolean }[] }> {
  let lo = 0;
  let hi = upperRps;
  let best = 0;
  const tried: { rate_rps: number; passed: boolean }[] = [];
  for (let step = 0; step < steps && hi > 0; step++) {
    const rate = (lo + hi) / 2;
    const { p95_ms } = await probe(rate, step);
    const passed = p95_ms !== null && p95_ms <= sloMs;
    tried.push({ rate_rps: rate, passed });
    if (passed) {
      lo = rate;
      best = Math.max(best, rate);
    } else hi = rate;
  }
  return { rps: best, tried };
}

/** A probe's verdict from what the open-loop client measured. */
export function probeFigures(result: OpenLoopResult, rateRps: number, sloMs: number): CapacityProbe {
  const offered = result.status.map((s, i) => (s === 200 ? (result.latencyMs[i] as number) : Number.POSITIVE_INFINITY));
  offered.sort((a, b) => a - b);
  const errors: Record<string, number> = {};
  let ok = 0;
  let within = 0;
  result.status.forEach((s, i) => {
    if (s !== 200) errors[String(s)] = (errors[String(s)] ?? 0) + 1;
    else {
      ok++;
      if ((result.latencyMs[i] as number) <= sloMs) within++;
    }
  });
  const p95 = latencyOrMiss(percentile(offered, 95));
  return {
    rate_rps: rateRps,
    requests: offered.length,
    ok,
    p95_ms: p95,
    slo_attainment: offered.length > 0 ? within / offered.length : 0,
    passed: p95 !== null && p95 <= sloMs,
    errors_by_status: errors,
  };
}

export interface CapacityContext {
  /** The name the model is served under (its manifest's). */
  modelName: string;
  bodiesPath: string;
  body: BodyFormat;
  workDir: string;
  /** Prefix of the job files. */
  name: string;
  plan: BenchPlan['capacity'];
  sloMs: number;
  requestTimeoutMs: number;
  /** The probe's schedule at a rate (same items and seed for every policy at the same rate). */
  schedule: (rateRps: number, seconds: number) => Schedule;
  say: (line: string) => void;
}

/**
 * Saturation, then the bisection, on a running server (or a balancer in front of servers).
 * `saturated`: the closed-loop run the caller already made at `ctx.plan.concurrency` (to measure
 * something else during it), used as the upper bracket instead of running one here.
 */
export async function measureSloCapacity(
  server: Pick<ServerProcess, 'baseUrl'>,
  ctx: CapacityContext,
  saturated?: ClosedLoopResult,
): Promise<SloCapacity> {
  const url = `${server.baseUrl}/v2/models/${ctx.modelName}/infer`;
  const saturation =
    saturated ?? (await runClosedLoop(url, ctx.bodiesPath, ctx.plan.concurrency, ctx.plan.seconds, ctx.body));
  const probes: CapacityProbe[] = [];
  const { rps } = await searchCapacity(
    saturation.rps,
    ctx.plan.steps,
    async (rate, step) => {
      const schedule = ctx.schedule(rate, ctx.plan.probeSeconds);
      const result = await runOpenLoop(
        url,
        ctx.bodiesPath,
        ctx.body,
        schedule,
        ctx.workDir,
        `${ctx.name}-probe${step}`,
        {
          timeoutMs: ctx.requestTimeoutMs,
        },
      );
      const probe = probeFigures(result, rate, ctx.sloMs);
      probes.push(probe);
      return probe;
    },
    ctx.sloMs,
  );
  const shown = probes.map((p) => `${p.rate_rps.toFixed(0)}${p.passed ? '✓' : '✗'}`).join(' ');
  ctx.say(
    `  ${ctx.name}: SLO capacity ${rps.toFixed(0)}/s (p95 ≤ ${ctx.sloMs} ms; probes ${shown}); ` +
      `closed-loop saturation ${saturation.rps.toFixed(0)}/s (${saturation.errors} errors)`,
  );
  return {
    rps,
    slo_ms: ctx.sloMs,
    upper_rps: saturation.rps,
    saturation: { ...saturation, concurrency: ctx.plan.concurrency },
    probes,
  };
}

/**
 * Vanilla's SLO capacity on a fresh server (closed-loop warm-up first): at the start it sets
 * every load of the run; at the end it is measured again and the drift between the two says how
 * much the machine changed meanwhile. A server that answers nothing is broken (it throws); one
 * that meets the SLO at no probed rate is only slow — a busy machine — and the run goes on
 * (see loadBasis).
 */
export async function calibrateVanilla(
  vanilla: ServedPolicy,
  opts: { modelDir: string; name: string } & CapacityContext,
): Promise<SloCapacity> {
  const configPath = join(opts.workDir, `${opts.name}.yaml`);
  await writeFile(
    configPath,
    JSON.stringify(servingConfig(opts.modelDir, opts.modelName, vanilla, opts.sloMs), null, 2) + '\n',
  );
  const server = await startServerProcess(configPath, join(opts.workDir, `${opts.name}.server.log`));
  try {
    const url = `${server.baseUrl}/v2/models/${opts.modelName}/infer`;
    await runClosedLoop(url, opts.bodiesPath, opts.plan.concurrency, opts.plan.warmSeconds, opts.body);
    const capacity = await measureSloCapacity(server, opts);
    if (!(capacity.upper_rps > 0))
      throw new Error(
        `vanilla answered nothing under closed-loop load (${capacity.saturation.errors} errors, body ${opts.body}): ` +
          `see ${server.logPath}` +
          (opts.body === 'binary'
            ? ' (a server without the binary tensor extension answers 400: try --body json)'
            : ''),
      );
    return capacity;
  } finally {
    await server.stop();
  }
}

/**
 * The rate the run's loads are fractions of: vanilla's SLO capacity or, when it met the SLO at no
 * probed rate (a machine too busy for the SLO; the bench must not fail on timing), its lowest
 * probe's rate, so the loads stay below what it was seen to answer.
 */
export function loadBasis(vanilla: SloCapacity): { rps: number; from: 'slo_capacity' | 'lowest_probe' } {
  if (vanilla.rps > 0) return { rps: vanilla.rps, from: 'slo_capacity' };
  return { rps: Math.min(...vanilla.probes.map((p) => p.rate_rps)), from: 'lowest_probe' };
}
