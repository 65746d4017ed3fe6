/**
 * Comparison of serving policies on the real server under real HTTP load (issues 5 and 11).
 *
 *   npm run bench                    full: 2 interleaved rounds, 4 loads + SLO capacity per policy, ≈ 25 min on 2 cores
 *   npm run bench:quick              smoke test for CI: one round, one load, short probes, ≈ 3 min
 *   … -- --body json                 send JSON bodies instead of KServe v2 binary tensor bodies
 *   … -- --model models/spam-bert    the text model (default models/fmnist-resnet, the image model)
 *   … -- --slo-ms N                  another latency objective than the workload's (bench/lib/workload.ts)
 *   … -- --cascade                   issue 14's comparison instead: vanilla, guarded-drop and the
 *                                    agreement-based cascades of bench/lib/cascades.ts, plus the
 *                                    cascade oracle (bench/lib/oracle.ts)
 *
 * The model decides the workload (bench/lib/workload.ts): Fashion-MNIST test images for an image
 * model, the SpamAssassin test emails for a text model, each with its own SLO.
 *
 * Steps: record every ramp's prediction per test item (`offramp record`, cached in tmp/bench/);
 * measure the serving path against a raw onnxruntime loop (bench/lib/serving-overhead.ts);
 * measure vanilla's SLO capacity (highest Poisson rate whose p95 over every offered request meets
 * the SLO, bench/lib/capacity.ts); then, round after round, for each served policy start a fresh
 * `offramp serve`, send an uncounted warm-up stream, open-loop loads at fractions of vanilla's
 * capacity, and search the policy's own SLO capacity; re-measure vanilla's capacity at the end
 * (drift); compute the oracle from vanilla's runs and the trace. Results:
 * bench/results/<UTC time>.{json,md} and -cdf.svg / -load.svg; quick runs write the same to
 * bench/results/quick/ (git-ignored: CI smoke runs are not results), marked "quick": true.
 *
 * It exits non-zero only when something is broken (a policy answered nothing, an unexpected HTTP
 * status, a failed connection, vanilla disagreeing with the recorded model, a report not written),
 * never because of a timing: see bench/lib/sanity.ts.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { readManifest } from '../src/model/manifest.js';
import { isBodyFormat } from './load/request-body.js';
import { FULL_PLAN, QUICK_PLAN, plannedSeconds, type BenchPlan } from './lib/bench-plan.js';
import { calibrateVanilla, loadBasis, type CapacityContext } from './lib/capacity.js';
import { prepareDataset } from './lib/dataset.js';
import { finishProvenance, provenance } from './lib/machine.js';
import { cascadeItemTraces, cascadeTraceSummary } from './lib/cascade-trace.js';
import { bestMember, cascadePolicies, cascadeTaskFor } from './lib/cascades.js';
import { cascadeOracleResult, oracleResult } from './lib/oracle.js';
import { CASCADE_ORACLE_ABOUT, ORACLE_ABOUT, SERVED_POLICIES, servedVariants } from './lib/policies.js';
import { runPolicy, runRow, type PolicyRun, type ScheduledPhase } from './lib/policy-run.js';
import { RESULTS_FORMAT, type BenchResults, type CascadeResults, type RunRow } from './lib/results.js';
import { missingFiles, resultProblems } from './lib/sanity.js';
import { phaseSchedule, probeSchedule, warmupSchedule, type Schedule } from './lib/schedules.js';
import { measureServingOverhead } from './lib/serving-overhead.js';
import { phaseFigures, type PhaseFigures } from './lib/stats.js';
import { itemTraces } from './lib/trace.js';
import { atBatch } from '../tuner/latency-model.js';
import { workloadFor } from './lib/workload.js';
import type { OpenLoopResult } from './load/load-types.js';
import { capacityLines, capacityTable, markdownReport, overheadLines } from './report/markdown.js';
import { cdfSvg, loadSvg } from './report/svg.js';
import { comparisonTable, readmeTable, textTable } from './report/table.js';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    model: { type: 'string', default: 'models/fmnist-resnet' },
    body: { type: 'string', default: 'binary' },
    'slo-ms': { type: 'string' },
    cascade: { type: 'boolean', default: false },
  },
});
if (!isBodyFormat(args.body)) throw new Error(`--body must be binary or json, not ${args.body}`);
const sloOverride = args['slo-ms'] === undefined ? undefined : Number(args['slo-ms']);
if (sloOverride !== undefined && !(sloOverride > 0)) throw new Error(`--slo-ms must be a positive number of ms`);
// Ctrl-C: exit through process.exit so server-process.ts can kill the servers still running.
process.on('SIGINT', () => process.exit(130));

const modelDir = resolve(args.model);
const manifest = await readManifest(modelDir);
const workload = workloadFor(manifest, modelDir);
const basePlan = args.quick ? QUICK_PLAN : FULL_PLAN;
const plan: BenchPlan = {
  ...basePlan,
  body: args.body,
  sloMs: sloOverride ?? workload.slo.ms,
  // Quick runs keep their short warm-up: they are smoke tests, the tuners need not settle.
  warmup: args.quick ? basePlan.warmup : { ...basePlan.warmup, maxSeconds: workload.warmupMaxSeconds },
};
const sloRule = sloOverride === undefined ? workload.slo.rule : `--slo-ms ${sloOverride}`;
// --cascade: the task's members, and the one agreeing most with the backbone for single-small.
const cascadeTask = args.cascade ? cascadeTaskFor(manifest.name) : undefined;
const single = cascadeTask
  ? await bestMember(cascadeTask).catch((err: Error) => {
      throw new Error(`--cascade: cannot read ${cascadeTask.report} (have the members landed?): ${err.message}`, {
        cause: err,
      });
    })
  : undefined;
const cascadeServed = cascadeTask && single ? cascadePolicies(cascadeTask, single) : undefined;
const variants = servedVariants(plan.body, cascadeServed);
const started = new Date();
const origin = provenance();
const stem = started
  .toISOString()
  .replace(/:/g, '-')
  .replace(/\.\d+Z$/, 'Z');
const outDir = args.quick ? 'bench/results/quick' : 'bench/results';
const workDir = join('tmp', 'bench', stem);
await mkdir(outDir, { recursive: true });
await mkdir(workDir, { recursive: true });
const t0 = performance.now();
const say = (line: string): void => {
  process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
};
const durations: Record<string, number> = {};
async function timed<T>(name: string, work: () => Promise<T>): Promise<T> {
  const t = performance.now();
  try {
    return await work();
  } finally {
    durations[name] = Number(((performance.now() - t) / 1000).toFixed(1));
  }
}

const planned = Math.round(plannedSeconds(plan, variants.length, workload.roughRps));
const m = origin.machine;
say(
  `${plan.quick ? 'quick' : 'full'} bench of ${manifest.name} (${workload.description}, SLO ${plan.sloMs} ms: ${sloRule}) ` +
    `on ${m.cpu_model}, ${m.cores} cores, ${plan.body} bodies; ` +
    `${plan.rounds} round(s) × ${variants.length} served policies${cascadeTask ? ' (cascades)' : ''}; planned ≈ ${(planned / 60).toFixed(0)} min; ` +
    `work files in ${workDir}`,
);
if (origin.clean === false) say('the tree has local changes: these results cannot back a README figure');
const bodiesPath = join(workDir, 'bodies.jsonl');
const dataset = await prepareDataset(workload, bodiesPath, plan.seed);

const trace = await timed('record_trace', () => itemTraces(modelDir, workload, join('tmp', 'bench')));
if (trace.traces.length !== dataset.items)
  throw new Error(`${trace.path} holds ${trace.traces.length} records but ${workload.data} ${dataset.items} items`);
const fullModelAccuracy = trace.traces.filter((t, i) => t.final === dataset.labels[i]).length / trace.traces.length;
say(
  `${trace.recorded ? 'recorded' : 'reused'} trace ${trace.path}: full-model accuracy ${(fullModelAccuracy * 100).toFixed(2)} %`,
);

// The ABC tier over every test item (members run with onnxruntime), for the cascade oracle.
const cascadeTrace = cascadeTask
  ? await timed('record_cascade_trace', () =>
      cascadeItemTraces(Object.values(cascadeTask.members), modelDir, manifest, workload, join('tmp', 'bench')),
    )
  : undefined;
if (cascadeTrace && cascadeTask) {
  if (cascadeTrace.traces.length !== dataset.items)
    throw new Error(
      `${cascadeTrace.path} holds ${cascadeTrace.traces.length} items but ${workload.data} ${dataset.items}`,
    );
  const summary = cascadeTraceSummary(cascadeTrace, Object.keys(cascadeTask.members), trace.traces, dataset.labels);
  say(
    `${cascadeTrace.recorded ? 'recorded' : 'reused'} cascade trace ${cascadeTrace.path}: all ${Object.keys(cascadeTask.members).length} ` +
      `members agree on ${(summary.all_agree * 100).toFixed(1)} % of items; their plurality is the full model's answer on ` +
      `${(summary.plurality_agrees * 100).toFixed(1)} %; single-small serves ${single?.name}`,
  );
}

say('serving-path overhead (raw onnxruntime loop, engine in-process, HTTP; then one request at batch 1)');
const overhead = await timed('serving_overhead', () =>
  measureServingOverhead(
    { modelDir, seconds: plan.overheadSeconds, batch: 16, concurrency: 64, workers: 1, threads: 2 },
    (l) => say(`  ${l}`),
  ),
);

const vanillaPolicy = SERVED_POLICIES.find((p) => p.policy === 'vanilla')!;
const probeFor: CapacityContext['schedule'] = (rate, seconds) => probeSchedule(dataset, plan.seed, rate, seconds);
const calibration = (name: string): Promise<Awaited<ReturnType<typeof calibrateVanilla>>> =>
  timed(name, () =>
    calibrateVanilla(vanillaPolicy, {
      modelDir,
      modelName: manifest.name,
      name,
      bodiesPath,
      body: plan.body,
      workDir,
      plan: plan.capacity,
      sloMs: plan.sloMs,
      requestTimeoutMs: plan.requestTimeoutMs,
      schedule: probeFor,
      say,
    }),
  );
say(`vanilla's SLO capacity (p95 ≤ ${plan.sloMs} ms over every offered request), fresh server`);
const startCapacity = await calibration('vanilla-capacity-start');
const basis = loadBasis(startCapacity);
const capacityRps = basis.rps;
if (basis.from === 'lowest_probe')
  say(
    `vanilla met the ${plan.sloMs} ms SLO at no probed rate (a busy machine?): loads are fractions of ` +
      `its lowest probe, ${capacityRps.toFixed(0)}/s, instead`,
  );

const warmupRate = plan.warmup.loadFraction * capacityRps;
const warmupRequests = Math.min(plan.warmup.requests, Math.ceil(warmupRate * plan.warmup.maxSeconds));
const warmup: Schedule = warmupSchedule(dataset, plan.seed, warmupRequests, warmupRate);
const phases: ScheduledPhase[] = plan.phases.map((phase) => {
  const rateRps = phase.loadFraction * capacityRps;
  return {
    phase,
    rateRps,
    schedule: phaseSchedule(dataset, plan.seed, phase.pattern, phase.loadFraction, rateRps, phase.seconds),
  };
});
const figuresOf = (result: OpenLoopResult, schedule: Schedule, tiers = 0): PhaseFigures =>
  phaseFigures(result, schedule.items, trace.traces, dataset.labels, manifest.ramps.length, plan.sloMs, tiers);

const runs: RunRow[] = [];
const served: PolicyRun[] = [];
for (let round = 1; round <= plan.rounds; round++) {
  for (const variant of variants) {
    say(
      `${variant.label} (round ${round}/${plan.rounds}, ${variant.body} bodies): fresh server, ` +
        `warm-up ${warmup.offsetsMs.length} requests at ${warmupRate.toFixed(0)}/s, ${phases.length} measured run(s), SLO capacity`,
    );
    const run = await timed(`${variant.label} r${round}`, () =>
      runPolicy(
        variant,
        round,
        { modelDir, modelName: manifest.name, workDir, bodiesPath, warmup, phases, plan, probeSchedule: probeFor },
        figuresOf,
        say,
      ),
    );
    served.push(run);
    runs.push(...run.phases.map((p) => p.row));
  }
}

say('vanilla SLO capacity again, fresh server (drift)');
const endCapacity = await calibration('vanilla-capacity-end');
const drift = startCapacity.rps > 0 ? endCapacity.rps / startCapacity.rps - 1 : null;
say(`vanilla SLO capacity ${startCapacity.rps.toFixed(0)}/s at the start, ${endCapacity.rps.toFixed(0)}/s at the end`);

/**
 * The ABC tier's cost per call at batch 1 as each cascade server measured it at load (/exits), by
 * run; single-small's one-member tier is another tier and is left out.
 */
const abcTierCosts: CascadeResults['tier_cost_ms'] = served.flatMap((run) => {
  const policy = variants.find((v) => v.label === run.label)?.policy;
  const report = run.phases.at(-1)?.row.exits_report as { cascade?: { tiers?: { costMs?: number }[] } } | null;
  const cost = report?.cascade?.tiers?.[0]?.costMs;
  return policy?.cascade &&
    policy.cascade.tiers[0]?.members.length === Object.keys(cascadeTask?.members ?? {}).length &&
    typeof cost === 'number'
    ? [{ label: run.label, round: run.round, cost_ms: cost }]
    : [];
});
const fullBatch1Ms = atBatch(manifest.profile, manifest.profile.fullModelMs, 1);
/** The tier's cost share in a round: the median of that round's ABC servers' measurements. */
const tierShareIn = (round: number): number | null => {
  const costs = abcTierCosts
    .filter((c) => c.round === round)
    .map((c) => c.cost_ms)
    .sort((a, b) => a - b);
  return costs.length > 0 && fullBatch1Ms > 0 ? (costs[Math.floor(costs.length / 2)] as number) / fullBatch1Ms : null;
};

// The oracles, per round, from that round's vanilla runs on the same schedules (bench/lib/oracle.ts says how).
for (const run of served.filter((r) => r.label === 'vanilla')) {
  for (const p of run.phases) {
    const context = {
      mode: 'release' as const,
      body: run.body,
      round: run.round,
      computed: true,
      phase: p.phase,
      rateRps: p.rateRps,
    };
    const ramps = oracleResult(p.result, p.schedule.items, trace.traces, manifest, p.meanBatch);
    runs.push({
      ...runRow({ ...context, policy: 'oracle', label: 'oracle' }, figuresOf(ramps.result, p.schedule)),
      compute_share: ramps.computeShare,
    });
    const tierShare = tierShareIn(run.round);
    if (!cascadeTrace || tierShare === null) continue;
    const cascade = cascadeOracleResult(
      p.result,
      p.schedule.items,
      trace.traces,
      cascadeTrace.traces,
      tierShare,
      manifest,
      p.meanBatch,
    );
    runs.push({
      ...runRow(
        { ...context, policy: 'cascade-oracle', label: 'cascade-oracle' },
        figuresOf(cascade.result, p.schedule, 1),
      ),
      compute_share: cascade.computeShare,
    });
  }
}

const results: BenchResults = {
  format: RESULTS_FORMAT,
  quick: plan.quick,
  started_at: started.toISOString(),
  finished_at: new Date().toISOString(),
  duration_s: Number(((performance.now() - t0) / 1000).toFixed(1)),
  planned_duration_s: planned,
  provenance: finishProvenance(origin),
  model: {
    name: manifest.name,
    dir: args.model,
    manifest_created_at: manifest.createdAt,
    classes: manifest.model.classes,
    ramps: manifest.ramps.length,
  },
  workload: {
    kind: workload.kind,
    description: workload.description,
    item: workload.item,
    data: workload.data,
    items: dataset.items,
    slo_rule: sloRule,
  },
  plan,
  policies: [
    ...variants.map((v) => ({
      label: v.label,
      about: v.body === plan.body ? v.policy.about : `${v.policy.about}; JSON request bodies`,
      body: v.body,
      config: served.find((r) => r.label === v.label)?.config ?? null,
    })),
    { label: 'oracle', about: ORACLE_ABOUT, body: null, config: null },
    ...(cascadeTask ? [{ label: 'cascade-oracle', about: CASCADE_ORACLE_ABOUT, body: null, config: null }] : []),
  ],
  vanilla_capacity: { start: startCapacity, end: endCapacity, drift, load_basis: basis },
  served: served.map((r) => ({
    label: r.label,
    round: r.round,
    body: r.body,
    warmup: r.warmup,
    capacity: r.capacity,
  })),
  warmup: { requests: warmup.offsetsMs.length, load_fraction: plan.warmup.loadFraction, rate_rps: warmupRate },
  trace: {
    path: trace.path,
    recorded: trace.recorded,
    images: trace.traces.length,
    full_model_accuracy: fullModelAccuracy,
  },
  serving_overhead: overhead,
  ...(cascadeTask && single && cascadeTrace
    ? {
        cascade: {
          report: cascadeTask.report,
          members: cascadeTask.members,
          single,
          tier_cost_ms: abcTierCosts,
          full_model_ms_batch1: fullBatch1Ms,
          trace: cascadeTraceSummary(cascadeTrace, Object.keys(cascadeTask.members), trace.traces, dataset.labels),
        },
      }
    : {}),
  runs,
  durations_s: durations,
  sanity: { passed: true, problems: [] },
};

const base = join(outDir, stem);
const reports = [`${base}.md`, `${base}-cdf.svg`, `${base}-load.svg`];
const problems = resultProblems(results);
results.sanity = { passed: problems.length === 0, problems };
await writeFile(`${base}-cdf.svg`, cdfSvg(results));
await writeFile(`${base}-load.svg`, loadSvg(results));
await writeFile(`${base}.md`, markdownReport(results, stem));
problems.push(...(await missingFiles(reports)));
results.sanity = { passed: problems.length === 0, problems };
await writeFile(`${base}.json`, JSON.stringify(results, null, 1) + '\n');

process.stdout.write(
  [
    '',
    `offramp serving comparison of ${manifest.name}${plan.quick ? ' (quick)' : ''}, ${workload.description}, ` +
      `SLO ${plan.sloMs} ms, ${plan.body} bodies, ${plan.rounds} round(s): ` +
      `percentiles over every offered request (miss = not answered 200); ` +
      `ranges are min–max over rounds; ratios against vanilla of the same round`,
    '',
    textTable(comparisonTable(results)),
    '',
    ...capacityLines(results),
    textTable(capacityTable(results)),
    '',
    ...overheadLines(results).map((l) => l.replace(/\*\*/g, '')),
    '',
    `README table (${manifest.name}):`,
    textTable(readmeTable(results)),
    '',
    `results: ${base}.json, ${reports.join(', ')} (${(results.duration_s / 60).toFixed(1)} min, planned ${(planned / 60).toFixed(1)})`,
    problems.length === 0 ? 'sanity: passed' : `sanity: FAILED\n  ${problems.join('\n  ')}`,
    '',
  ].join('\n'),
);
// The bodies file is 20+ MB (images) and rebuilt every run; server logs and SLO files stay for inspection.
await rm(bodiesPath, { force: true });
process.exitCode = problems.length === 0 ? 0 : 1;
