/**
 * One served policy, start to finish: a fresh server with the policy's SLO file, the warm-up
 * stream (not counted), then every measured phase on the same schedules as the other policies,
 * scraping /metrics and /exits around each phase.
 */
import { writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { ClosedLoopResult, OpenLoopResult } from '../load/load-types.js';
import type { PhasePlan } from './bench-plan.js';
import { runClosedLoop, runOpenLoop } from './load-runner.js';
import type { ExitMode } from '../../tuner/exit-policy.js';
import { MODEL_NAME, policyLabel, servingConfig, type PolicyName, type ServedPolicy } from './policies.js';
import { meanBatchSize, parseMetrics, sampleValue, type Sample } from './prometheus.js';
import type { LagMs, RunRow } from './results.js';
import type { Schedule } from './schedules.js';
import { startServerProcess } from './server-process.js';
import type { PhaseFigures } from './stats.js';

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
  config: object;
  warmup: { ok: number; errors: number };
  phases: (PhaseOutcome & { row: RunRow })[];
  /** After the phases: the policy's own capacity, closed loop (what it can answer, not what was offered). */
  saturation: ClosedLoopResult & { concurrency: number; seconds: number };
}

const INFER_PATH = `/v2/models/${MODEL_NAME}/infer`;

/** The server's event-loop lag since its previous /metrics scrape. */
export function loopLag(samples: Sample[]): LagMs {
  const at = (quantile: string): number | null => {
    const v = sampleValue(samples, 'offramp_event_loop_lag_seconds', { quantile });
    return v === null ? null : v * 1000;
  };
  return { p50_ms: at('0.5'), p99_ms: at('0.99'), max_ms: at('max') };
}

function activeRamps(exitsReport: unknown): { id: number; threshold: number | null }[] {
  const ramps = (exitsReport as { ramps?: { id: number; active: boolean; threshold: number | null }[] }).ramps ?? [];
  return ramps.filter((r) => r.active).map((r) => ({ id: r.id, threshold: r.threshold }));
}

export interface RowContext {
  policy: PolicyName;
  mode: ExitMode;
  computed: boolean;
  phase: PhasePlan;
  rateRps: number;
}

export interface ServerView {
  before: Sample[];
  after: Sample[];
  exitsReport: unknown;
  loadAverage: [number, number];
}

/** A `runs` row from a phase's figures and, for served policies, what the server said after it. */
export function runRow(ctx: RowContext, figures: PhaseFigures, server?: ServerView): RunRow {
  const after = server?.after ?? [];
  const gauge = (name: string): number | null => (server ? sampleValue(after, name, { model: MODEL_NAME }) : null);
  return {
    policy: ctx.policy,
    mode: ctx.mode,
    label: policyLabel(ctx),
    computed: ctx.computed,
    pattern: ctx.phase.pattern,
    load_fraction: ctx.phase.loadFraction,
    rate_rps: ctx.rateRps,
    ...figures,
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
  policy: ServedPolicy,
  opts: {
    modelDir: string;
    workDir: string;
    bodiesPath: string;
    warmup: Schedule;
    phases: ScheduledPhase[];
    requestTimeoutMs: number;
    saturation: { concurrency: number; seconds: number };
  },
  figuresOf: (result: OpenLoopResult, schedule: Schedule) => PhaseFigures,
  say: (line: string) => void,
): Promise<PolicyRun> {
  const label = policyLabel(policy);
  const config = servingConfig(opts.modelDir, policy);
  const configPath = join(opts.workDir, `${label}.yaml`);
  await writeFile(configPath, JSON.stringify(config, null, 2) + '\n');
  const server = await startServerProcess(configPath, join(opts.workDir, `${label}.server.log`));
  try {
    const url = server.baseUrl + INFER_PATH;
    const scrape = async (): Promise<Sample[]> => parseMetrics(await server.getText('/metrics'));
    const warm = await runOpenLoop(
      url,
      opts.bodiesPath,
      opts.warmup,
      opts.workDir,
      `${label}-warmup`,
      opts.requestTimeoutMs,
    );
    const warmOk = warm.status.filter((s) => s === 200).length;
    say(`  ${label}: warm-up ${warmOk}/${warm.status.length} answered`);
    const phases: PolicyRun['phases'] = [];
    for (const p of opts.phases) {
      const name = `${label}-${p.phase.pattern}-${Math.round(p.phase.loadFraction * 100)}`;
      const loadBefore = loadavg()[0] ?? 0;
      const before = await scrape();
      const result = await runOpenLoop(url, opts.bodiesPath, p.schedule, opts.workDir, name, opts.requestTimeoutMs);
      const after = await scrape();
      const exitsReport = await server.getJson(`/v2/models/${MODEL_NAME}/exits`);
      const view: ServerView = { before, after, exitsReport, loadAverage: [loadBefore, loadavg()[0] ?? 0] };
      const row = runRow(
        { ...policy, computed: false, phase: p.phase, rateRps: p.rateRps },
        figuresOf(result, p.schedule),
        view,
      );
      phases.push({ ...p, result, meanBatch: row.mean_batch_size, row });
      say(
        `  ${label} ${p.phase.pattern} ${Math.round(p.phase.loadFraction * 100)} %: ` +
          `p50 ${row.p50_ms.toFixed(1)} ms, p99 ${row.p99_ms.toFixed(1)} ms, ` +
          `${row.throughput_rps.toFixed(0)}/s, early ${(row.early_fraction * 100).toFixed(1)} %, ` +
          `errors ${row.errors.total}; load average ${view.loadAverage[1].toFixed(1)}`,
      );
    }
    // The open-loop phases never offer more than a share of vanilla's capacity, so their
    // throughput cannot show a policy answering more than vanilla can: saturate it too.
    const saturated = await runClosedLoop(url, opts.bodiesPath, opts.saturation.concurrency, opts.saturation.seconds);
    say(
      `  ${label} saturated (closed loop, ${opts.saturation.concurrency} in flight): ` +
        `${saturated.rps.toFixed(0)} answers/s, p50 ${saturated.p50.toFixed(1)} ms, ${saturated.errors} errors`,
    );
    return {
      config,
      warmup: { ok: warmOk, errors: warm.status.length - warmOk },
      phases,
      saturation: { ...saturated, ...opts.saturation },
    };
  } finally {
    await server.stop();
  }
}
