/**
 * One served policy in one round, start to finish: a fresh server with the policy's SLO file, the
 * warm-up stream (not counted), every measured phase on the same schedules as the other policies
 * (scraping /metrics and /exits around each, and the server's CPU time), then its SLO capacity.
 */
import { writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { OpenLoopResult } from '../load/load-types.js';
import type { BodyFormat } from '../load/request-body.js';
import type { BenchPlan, PhasePlan } from './bench-plan.js';
import { measureSloCapacity, type CapacityContext, type SloCapacity } from './capacity.js';
import { runOpenLoop } from './load-runner.js';
import type { ExitMode } from '../../tuner/exit-policy.js';
import { fileLabel, servingConfig, type PolicyName, type ServedVariant } from './policies.js';
import { cpuSeconds, meanBatchSize, parseMetrics, sampleValue, type Sample } from './prometheus.js';
import type { LagMs, RunRow } from './results.js';
import type { Schedule } from './schedules.js';
import { startServerProcess } from './server-process.js';
import { latencyOrMiss, tierSharesText, type PhaseFigures } from './stats.js';

export interface ScheduledPhase {
  phase: PhasePlan;
  rateRps: number;
  schedule: Schedule;
}

/** What a phase measured, kept in memory for the oracle (vanilla) and the plots. */
export interface PhaseOutcome extends ScheduledPhase {
  result: OpenLoopResult;
  meanBatch: number | null;
}

export interface PolicyRun {
  label: string;
  round: number;
  body: BodyFormat;
  config: object;
  warmup: { ok: number; errors: number };
  phases: (PhaseOutcome & { row: RunRow })[];
  /** After the phases: the policy's own SLO capacity (and closed-loop saturation). */
  capacity: SloCapacity;
}

/** The server's event-loop lag since its previous /metrics scrape. */
export function loopLag(samples: Sample[]): LagMs {
  const at = (stat: string): number | null => {
    const v = sampleValue(samples, 'offramp_event_loop_lag_seconds', { stat });
    return v === null ? null : v * 1000;
  };
  return { p50_ms: at('p50'), p99_ms: at('p99'), max_ms: at('max') };
}

/**
 * Exits allowed to answer, from /exits: ramps by their backbone id and, with a cascade, its tiers
 * (whose exit ids come first, so ramp r is exit T + r there).
 */
function activeRamps(exitsReport: unknown): RunRow['active_ramps'] {
  const ramps =
    (exitsReport as { ramps?: { id: number; kind?: 'tier' | 'ramp'; active: boolean; threshold: number | null }[] })
      .ramps ?? [];
  const tiers = ramps.filter((r) => r.kind === 'tier').length;
  return ramps
    .filter((r) => r.active)
    .map((r) =>
      r.kind === 'tier'
        ? { id: r.id, kind: 'tier' as const, threshold: r.threshold }
        : { id: r.id - tiers, threshold: r.threshold },
    );
}

export interface RowContext {
  policy: PolicyName;
  mode: ExitMode;
  label: string;
  body: BodyFormat;
  round: number;
  computed: boolean;
  phase: PhasePlan;
  rateRps: number;
}

export interface ServerView {
  /** The name the model is served under: its metrics carry it as their `model` label. */
  modelName: string;
  before: Sample[];
  after: Sample[];
  exitsReport: unknown;
  loadAverage: [number, number];
  /** Server process CPU seconds (all threads) spent during the run; null when not exposed. */
  cpuS: number | null;
  /** Where cpuS comes from: /proc/<pid>/stat around the load, or the /metrics scrapes around it. */
  cpuSource: 'proc' | 'metrics' | null;
}

/** A `runs` row from a phase's figures and, for served policies, what the server said after it. */
export function runRow(ctx: RowContext, figures: PhaseFigures, server?: ServerView): RunRow {
  const after = server?.after ?? [];
  const gauge = (name: string): number | null =>
    server ? sampleValue(after, name, { model: server.modelName }) : null;
  const cpuS = server?.cpuS ?? null;
  return {
    policy: ctx.policy,
    mode: ctx.mode,
    label: ctx.label,
    body: ctx.body,
    round: ctx.round,
    computed: ctx.computed,
    pattern: ctx.phase.pattern,
    load_fraction: ctx.phase.loadFraction,
    rate_rps: ctx.rateRps,
    ...figures,
    cpu_s: cpuS,
    cpu_source: server?.cpuSource ?? null,
    cpu_ms_per_answer: cpuS !== null && figures.ok > 0 ? latencyOrMiss((cpuS * 1000) / figures.ok) : null,
    compute_share: null,
    head_overhead: ctx.computed ? 0 : gauge('offramp_ramp_overhead_ratio'),
    estimated_savings: gauge('offramp_estimated_latency_savings_ratio'),
    window_disagreement: gauge('offramp_window_disagreement_ratio'),
    active_ramps: server ? activeRamps(server.exitsReport) : [],
    mean_batch_size: server ? meanBatchSize(server.before, server.after) : null,
    server_event_loop_lag: server ? loopLag(after) : { p50_ms: null, p99_ms: null, max_ms: null },
    metrics: after.filter((s) => !s.name.endsWith('_bucket')),
    exits_report: server?.exitsReport ?? null,
    load_average_1m: server?.loadAverage ?? null,
  };
}

export async function runPolicy(
  variant: ServedVariant,
  round: number,
  opts: {
    modelDir: string;
    modelName: string;
    workDir: string;
    bodiesPath: string;
    warmup: Schedule;
    phases: ScheduledPhase[];
    plan: BenchPlan;
    probeSchedule: CapacityContext['schedule'];
  },
  figuresOf: (result: OpenLoopResult, schedule: Schedule, tiers: number) => PhaseFigures,
  say: (line: string) => void,
): Promise<PolicyRun> {
  const { policy, body, label } = variant;
  const name = `${fileLabel(label)}-r${round}`;
  const config = servingConfig(opts.modelDir, opts.modelName, policy, opts.plan.sloMs);
  const configPath = join(opts.workDir, `${name}.yaml`);
  await writeFile(configPath, JSON.stringify(config, null, 2) + '\n');
  const server = await startServerProcess(configPath, join(opts.workDir, `${name}.server.log`));
  try {
    const url = `${server.baseUrl}/v2/models/${opts.modelName}/infer`;
    const timeout = { timeoutMs: opts.plan.requestTimeoutMs };
    const warm = await runOpenLoop(url, opts.bodiesPath, body, opts.warmup, opts.workDir, `${name}-warmup`, timeout);
    const warmOk = warm.status.filter((s) => s === 200).length;
    say(`  ${label} (round ${round}): warm-up ${warmOk}/${warm.status.length} answered`);
    const phases: PolicyRun['phases'] = [];
    for (const p of opts.phases) {
      const phaseName = `${name}-${p.phase.pattern}-${Math.round(p.phase.loadFraction * 100)}`;
      const loadBefore = loadavg()[0] ?? 0;
      const beforeText = await server.getText('/metrics');
      const procBefore = await server.cpuSeconds();
      const result = await runOpenLoop(url, opts.bodiesPath, body, p.schedule, opts.workDir, phaseName, timeout);
      const procAfter = await server.cpuSeconds();
      const afterText = await server.getText('/metrics');
      const exitsReport = await server.getJson(`/v2/models/${opts.modelName}/exits`);
      const [cpuBefore, cpuAfter] = [cpuSeconds(beforeText), cpuSeconds(afterText)];
      const cpu =
        procBefore !== null && procAfter !== null
          ? { cpuS: procAfter - procBefore, cpuSource: 'proc' as const }
          : cpuBefore !== null && cpuAfter !== null
            ? { cpuS: cpuAfter - cpuBefore, cpuSource: 'metrics' as const }
            : { cpuS: null, cpuSource: null };
      const view: ServerView = {
        modelName: opts.modelName,
        before: parseMetrics(beforeText),
        after: parseMetrics(afterText),
        exitsReport,
        loadAverage: [loadBefore, loadavg()[0] ?? 0],
        ...cpu,
      };
      const row = runRow(
        { ...policy, label, body, round, computed: false, phase: p.phase, rateRps: p.rateRps },
        figuresOf(result, p.schedule, policy.cascade?.tiers.length ?? 0),
        view,
      );
      phases.push({ ...p, result, meanBatch: row.mean_batch_size, row });
      const ms = (x: number | null): string => (x === null ? 'miss' : `${x.toFixed(1)} ms`);
      say(
        `  ${label} ${p.phase.pattern} ${Math.round(p.phase.loadFraction * 100)} %: ` +
          `p50 ${ms(row.p50_ms)}, p99 ${ms(row.p99_ms)}, SLO attainment ${(row.slo_attainment * 100).toFixed(1)} %, ` +
          `${row.throughput_rps.toFixed(0)}/s, early ${(row.early_fraction * 100).toFixed(1)} %, ` +
          (row.tier_shares ? `by tier ${tierSharesText(row.tier_shares)}, ` : '') +
          `CPU ${row.cpu_ms_per_answer === null ? '–' : row.cpu_ms_per_answer.toFixed(2)} ms/answer, ` +
          `errors ${row.errors.total}; load average ${view.loadAverage[1].toFixed(1)}`,
      );
    }
    // The loads offer at most 90 % of vanilla's capacity, so only this shows what a policy can
    // answer beyond it; it runs last because overload probes disturb the tuners' feedback.
    const capacity = await measureSloCapacity(server, {
      modelName: opts.modelName,
      bodiesPath: opts.bodiesPath,
      body,
      workDir: opts.workDir,
      name,
      plan: opts.plan.capacity,
      sloMs: opts.plan.sloMs,
      requestTimeoutMs: opts.plan.requestTimeoutMs,
      schedule: opts.probeSchedule,
      say,
    });
    return {
      label,
      round,
      body,
      config,
      warmup: { ok: warmOk, errors: warm.status.length - warmOk },
      phases,
      capacity,
    };
  } finally {
    await server.stop();
  }
}
