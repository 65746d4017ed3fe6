/**
 * One-run comparison of serving policies on the real server under real HTTP load (issue 5).
 *
 *   npm run bench          full: 3 Poisson loads + a bursty one per policy, ≈ 12–15 min on 2 cores
 *   npm run bench:quick    smoke test for CI: one load, short runs, ≈ 2 min
 *
 * Steps: record every ramp's prediction per test image (`offramp record`, cached in tmp/bench/);
 * measure the serving path against a raw onnxruntime loop (bench/lib/serving-overhead.ts);
 * measure vanilla's capacity with a saturating closed-loop client; then for each served policy
 * start a fresh `offramp serve`, send an uncounted warm-up stream and open-loop loads at fractions
 * of that capacity from a load generator in its own process; compute the oracle from vanilla's
 * runs and the trace. Results: bench/results/<UTC time>.{json,md} and -cdf.svg / -load.svg; quick
 * runs write the same to bench/results/quick/ (git-ignored: CI smoke runs are not results) and
 * are marked "quick": true. The table is also printed, with ratios against vanilla at the same load.
 *
 * It exits non-zero only when something is broken (a policy answered nothing, an unexpected HTTP
 * status, a failed connection, vanilla disagreeing with the recorded model, a report not written),
 * never because of a timing: see bench/lib/sanity.ts.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { readManifest } from '../src/model/manifest.js';
import { FULL_PLAN, QUICK_PLAN } from './lib/bench-plan.js';
import { prepareDataset, TEST_IMAGES } from './lib/dataset.js';
import { measureCapacity } from './lib/capacity.js';
import { machineInfo, sourceVersion } from './lib/machine.js';
import { oracleResult } from './lib/oracle.js';
import { ORACLE_ABOUT, SERVED_POLICIES, policyLabel } from './lib/policies.js';
import { runPolicy, runRow, type PolicyRun, type ScheduledPhase } from './lib/policy-run.js';
import { RESULTS_FORMAT, type BenchResults, type RunRow } from './lib/results.js';
import { missingFiles, resultProblems } from './lib/sanity.js';
import { phaseSchedule, warmupSchedule, type Schedule } from './lib/schedules.js';
import { measureServingOverhead } from './lib/serving-overhead.js';
import { phaseFigures, type PhaseFigures } from './lib/stats.js';
import { imageTraces } from './lib/trace.js';
import type { OpenLoopResult } from './load/load-types.js';
import { markdownReport, overheadLines, saturationTable } from './report/markdown.js';
import { cdfSvg, loadSvg } from './report/svg.js';
import { comparisonTable, textTable } from './report/table.js';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    model: { type: 'string', default: 'models/fmnist-resnet' },
  },
});
// Ctrl-C: exit through process.exit so server-process.ts can kill the servers still running.
process.on('SIGINT', () => process.exit(130));

const plan = args.quick ? QUICK_PLAN : FULL_PLAN;
const modelDir = resolve(args.model);
const started = new Date();
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

const machine = machineInfo();
say(`${plan.quick ? 'quick' : 'full'} bench on ${machine.cpu_model}, ${machine.cores} cores; work files in ${workDir}`);
const manifest = await readManifest(modelDir);
const bodiesPath = join(workDir, 'bodies.jsonl');
const dataset = await prepareDataset(manifest, bodiesPath, plan.seed);

const trace = await timed('record_trace', () => imageTraces(modelDir, join('tmp', 'bench')));
const fullModelAccuracy = trace.traces.filter((t, i) => t.final === dataset.labels[i]).length / trace.traces.length;
say(
  `${trace.recorded ? 'recorded' : 'reused'} trace ${trace.path}: full-model accuracy ${(fullModelAccuracy * 100).toFixed(2)} %`,
);

say('serving-path overhead (raw onnxruntime loop, engine in-process, HTTP)');
const overhead = await timed('serving_overhead', () =>
  measureServingOverhead(
    { modelDir, data: TEST_IMAGES, seconds: plan.overheadSeconds, batch: 16, concurrency: 64, workers: 1, threads: 2 },
    (l) => say(`  ${l}`),
  ),
);

const vanillaPolicy = SERVED_POLICIES.find((p) => p.policy === 'vanilla')!;
const capacity = await timed('capacity', () =>
  measureCapacity(vanillaPolicy, { modelDir, workDir, bodiesPath, plan: plan.capacity }),
);
say(
  `vanilla capacity: ${capacity.rps.toFixed(0)} answers/s (p50 ${capacity.p50.toFixed(1)} ms, p99 ${capacity.p99.toFixed(1)} ms, ${capacity.errors} errors)`,
);

const warmupRate = plan.warmup.loadFraction * capacity.rps;
const warmup: Schedule = warmupSchedule(dataset, plan.seed, plan.warmup.requests, warmupRate);
const phases: ScheduledPhase[] = plan.phases.map((phase) => {
  const rateRps = phase.loadFraction * capacity.rps;
  return {
    phase,
    rateRps,
    schedule: phaseSchedule(dataset, plan.seed, phase.pattern, phase.loadFraction, rateRps, phase.seconds),
  };
});
const figuresOf = (result: OpenLoopResult, schedule: Schedule): PhaseFigures =>
  phaseFigures(result, schedule.images, trace.traces, dataset.labels, manifest.ramps.length);

const runs: RunRow[] = [];
const served = new Map<string, PolicyRun>();
for (const policy of SERVED_POLICIES) {
  const label = policyLabel(policy);
  say(
    `${label}: fresh server, warm-up ${warmup.offsetsMs.length} requests at ${warmupRate.toFixed(0)}/s, then ${phases.length} measured run(s)`,
  );
  const run = await timed(label, () =>
    runPolicy(
      policy,
      {
        modelDir,
        workDir,
        bodiesPath,
        warmup,
        phases,
        requestTimeoutMs: plan.requestTimeoutMs,
        saturation: { concurrency: plan.capacity.concurrency, seconds: plan.capacity.seconds },
      },
      figuresOf,
      say,
    ),
  );
  served.set(label, run);
  runs.push(...run.phases.map((p) => p.row));
}

// The oracle, from vanilla's runs on the same schedules (bench/lib/oracle.ts says how).
for (const p of served.get('vanilla')?.phases ?? []) {
  const result = oracleResult(p.result, p.schedule.images, trace.traces, manifest, p.meanBatch);
  runs.push(
    runRow(
      { policy: 'oracle', mode: 'release', computed: true, phase: p.phase, rateRps: p.rateRps },
      figuresOf(result, p.schedule),
    ),
  );
}

const results: BenchResults = {
  format: RESULTS_FORMAT,
  quick: plan.quick,
  started_at: started.toISOString(),
  finished_at: new Date().toISOString(),
  duration_s: Number(((performance.now() - t0) / 1000).toFixed(1)),
  machine,
  source: sourceVersion(),
  model: {
    name: manifest.name,
    dir: args.model,
    manifest_created_at: manifest.createdAt,
    classes: manifest.model.classes,
    ramps: manifest.ramps.length,
  },
  plan,
  policies: [
    ...SERVED_POLICIES.map((p) => ({
      label: policyLabel(p),
      about: p.about,
      config: served.get(policyLabel(p))?.config ?? null,
    })),
    { label: 'oracle', about: ORACLE_ABOUT, config: null },
  ],
  capacity,
  saturation: Object.fromEntries([...served].map(([label, r]) => [label, r.saturation])),
  warmup: {
    requests: warmup.offsetsMs.length,
    load_fraction: plan.warmup.loadFraction,
    rate_rps: warmupRate,
    by_policy: Object.fromEntries([...served].map(([label, r]) => [label, r.warmup])),
  },
  trace: {
    path: trace.path,
    recorded: trace.recorded,
    images: trace.traces.length,
    full_model_accuracy: fullModelAccuracy,
  },
  serving_overhead: overhead,
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
    `offramp serving comparison${plan.quick ? ' (quick)' : ''}: vanilla capacity ${capacity.rps.toFixed(0)}/s; ` +
      `warm-up ${results.warmup.requests} requests per policy, not counted; ratios against vanilla at the same load`,
    '',
    textTable(comparisonTable(results)),
    '',
    'capacity per policy (closed loop, after its runs):',
    textTable(saturationTable(results)),
    '',
    ...overheadLines(results).map((l) => l.replace(/\*\*/g, '')),
    '',
    `results: ${base}.json, ${reports.join(', ')} (${(results.duration_s / 60).toFixed(1)} min)`,
    problems.length === 0 ? 'sanity: passed' : `sanity: FAILED\n  ${problems.join('\n  ')}`,
    '',
  ].join('\n'),
);
// The bodies file is 20+ MB and rebuilt every run; server logs and SLO files stay for inspection.
await rm(bodiesPath, { force: true });
process.exitCode = problems.length === 0 ? 0 : 1;
