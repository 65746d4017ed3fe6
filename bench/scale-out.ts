/**
 * Throughput of 1, 2 and 3 offramp replicas behind haproxy on this machine (issue 17, (c)).
 *
 *   npx tsx bench/scale-out.ts [--replicas 1,2,3] [--rounds 2] [--policy vanilla|static]
 *                              [--body binary|json] [--no-direct] [--quick] [--out bench/results]
 *
 * Each replica is `offramp serve` (bin/offramp.js on dist/: `npm run build` first) with one
 * executor worker of one intra-op thread, serving the bundled image model; haproxy runs the
 * documented config (docs/deploy/haproxy.cfg, lib/haproxy.ts). For each replica count, in
 * every round (rounds alternate the order, so drift on the machine is spread over the counts):
 * fresh replicas and haproxy, a closed-loop warm-up, then
 *  - the saturation throughput: a closed-loop client (load/closed-loop-client.ts, its own process)
 *    with 32 requests in flight per replica, so each replica keeps two batches queued behind the
 *    running one as the main bench does for one server; the CPU each process used meanwhile
 *    (/proc/<pid>/stat for the replicas and haproxy; the rest of the machine's busy time is the
 *    load client and whatever else runs);
 *  - the SLO capacity: the highest Poisson rate whose p95 over every offered request meets the
 *    workload's SLO (lib/capacity.ts, bisected below the saturation).
 * With one replica it also measures the replica directly, without haproxy: haproxy's own cost.
 *
 * Results: bench/results/scale-out-<UTC start>.md and .json (writeResultPair; --quick: in
 * bench/results/quick/, which git ignores). Nothing here asserts on time.
 */
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { readManifest } from '../src/model/manifest.js';
import { isBodyFormat } from './load/request-body.js';
import type { ClosedLoopResult } from './load/load-types.js';
import type { BenchPlan } from './lib/bench-plan.js';
import { measureSloCapacity, type CapacityContext, type SloCapacity } from './lib/capacity.js';
import { prepareDataset } from './lib/dataset.js';
import { runClosedLoop } from './lib/load-runner.js';
import { finishProvenance, provenance, provenanceLine, writeResultPair } from './lib/machine.js';
import { policyLabel, SERVED_POLICIES, servingConfig } from './lib/policies.js';
import { startReplicaSet, type ReplicaSet } from './lib/replicas.js';
import { probeSchedule } from './lib/schedules.js';
import { machineCpuSeconds, processCpuSeconds } from './lib/server-process.js';
import { workloadFor } from './lib/workload.js';
import { spread } from './report/table.js';

const { values: args } = parseArgs({
  options: {
    replicas: { type: 'string', default: '1,2,3' },
    rounds: { type: 'string' },
    policy: { type: 'string', default: 'vanilla' },
    body: { type: 'string', default: 'binary' },
    'no-direct': { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    model: { type: 'string', default: 'models/fmnist-resnet' },
    out: { type: 'string', default: 'bench/results' },
  },
});
if (!isBodyFormat(args.body)) throw new Error(`--body must be binary or json, not ${args.body}`);
const body = args.body;
const counts = args.replicas.split(',').map(Number);
if (counts.some((n) => !Number.isInteger(n) || n < 1))
  throw new Error(`--replicas: whole numbers ≥ 1, not ${args.replicas}`);
const policy = SERVED_POLICIES.find((p) => policyLabel(p) === args.policy);
if (!policy || (policy.tuner !== 'off' && policy.tuner !== 'static'))
  throw new Error(
    `--policy vanilla or static, not ${args.policy}: an online tuner would learn apart on each replica, ` +
      'and its warm-up would weigh on the figures',
  );
// Ctrl-C: exit through process.exit so server-process.ts kills the servers still running.
process.on('SIGINT', () => process.exit(130));

/** In flight per replica in the closed loop: two batches of 16 queued behind the running one. */
const IN_FLIGHT_PER_REPLICA = 32;
/** lib/capacity.ts's plan but the concurrency, which grows with the replicas. */
const CAPACITY: Omit<BenchPlan['capacity'], 'concurrency'> = args.quick
  ? { warmSeconds: 1, seconds: 2, steps: 2, probeSeconds: 1.5 }
  : { warmSeconds: 3, seconds: 8, steps: 4, probeSeconds: 4 };
const rounds = Number(args.rounds ?? 2);
const SEED = 5;

const started = new Date();
const origin = provenance();
const modelDir = resolve(args.model);
const manifest = await readManifest(modelDir);
const workload = workloadFor(manifest, modelDir);
const sloMs = workload.slo.ms;
const stem = started
  .toISOString()
  .replace(/:/g, '-')
  .replace(/\.\d+Z$/, 'Z');
const workRoot = join('tmp', 'scale-out', stem);
await mkdir(workRoot, { recursive: true });
const t0 = performance.now();
const say = (line: string): void => {
  process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
};
const bodiesPath = join(workRoot, 'bodies.jsonl');
const dataset = await prepareDataset(workload, bodiesPath, SEED);
const config = servingConfig(modelDir, manifest.name, policy, sloMs) as { server: object; models: object[] };
// One executor worker of one thread per replica: a replica is one event loop and one inference thread.
config.server = { ...config.server, workers: 1, intra_op_threads: 1 };

const fmt0 = (x: number): string => x.toFixed(0);
const fmt1 = (x: number): string => x.toFixed(1);
const fmt2 = (x: number): string => x.toFixed(2);
/** CPU used during a measurement, in cores (CPU seconds per second of wall time). */
interface CpuUse {
  wall_s: number;
  /** Each replica process (its event loop, executor worker thread and the rest). */
  replicas: number[];
  haproxy: number | null;
  /** The whole machine's busy time, every core. */
  machine: number;
  /** machine − replicas − haproxy: the load client, and anything else running. */
  rest: number;
}

type Path = 'haproxy' | 'direct';

interface Row {
  round: number;
  replicas: number;
  /** Through haproxy, or straight to the one replica. */
  path: Path;
  concurrency: number;
  saturation: ClosedLoopResult;
  cpu_at_saturation: CpuUse;
  slo_capacity: Pick<SloCapacity, 'rps' | 'slo_ms' | 'probes'>;
  /** Requests haproxy had to send again (logged with a retry count), over the whole run. */
  retried: number | null;
}

async function cpuDuring<T>(set: ReplicaSet, work: () => Promise<T>): Promise<{ result: T; cpu: CpuUse }> {
  const pids = set.replicas.map((r) => r.process.pid);
  const sample = async () => ({
    at: performance.now(),
    replicas: await Promise.all(pids.map((pid) => processCpuSeconds(pid))),
    haproxy: await processCpuSeconds(set.haproxy.pid),
    machine: machineCpuSeconds(),
  });
  const before = await sample();
  const result = await work();
  const after = await sample();
  const wall = (after.at - before.at) / 1000;
  const cores = (a: number | null, b: number | null): number | null =>
    a === null || b === null ? null : (b - a) / wall;
  const replicas = pids.map((_, i) => cores(before.replicas[i] ?? null, after.replicas[i] ?? null) ?? Number.NaN);
  const haproxy = cores(before.haproxy, after.haproxy);
  const machine = (after.machine - before.machine) / wall;
  const rest = machine - replicas.reduce((a, b) => a + b, 0) - (haproxy ?? 0);
  return { result, cpu: { wall_s: wall, replicas, haproxy, machine, rest } };
}

async function measure(round: number, count: number): Promise<Row[]> {
  const workDir = join(workRoot, `round${round}-replicas${count}`);
  await mkdir(workDir, { recursive: true });
  const concurrency = IN_FLIGHT_PER_REPLICA * count;
  const set = await startReplicaSet({ count, workDir, config });
  const rows: Row[] = [];
  try {
    const paths: [Path, string][] = [['haproxy', set.haproxy.baseUrl]];
    if (count === 1 && !args['no-direct'])
      paths.push(['direct', (set.replicas[0] as ReplicaSet['replicas'][0]).process.baseUrl]);
    for (const [path, baseUrl] of paths) {
      const name = `round${round}-replicas${count}-${path}`;
      const url = `${baseUrl}/v2/models/${manifest.name}/infer`;
      const plan = { ...CAPACITY, concurrency };
      await runClosedLoop(url, bodiesPath, concurrency, plan.warmSeconds, body);
      const { result: saturation, cpu } = await cpuDuring(set, () =>
        runClosedLoop(url, bodiesPath, concurrency, plan.seconds, body),
      );
      const ctx: CapacityContext = {
        modelName: manifest.name,
        bodiesPath,
        body,
        workDir,
        name,
        plan,
        sloMs,
        requestTimeoutMs: 30_000,
        schedule: (rate, seconds) => probeSchedule(dataset, SEED, rate, seconds),
        say,
      };
      const capacity = await measureSloCapacity({ baseUrl }, ctx, saturation);
      rows.push({
        round,
        replicas: count,
        path,
        concurrency,
        saturation,
        cpu_at_saturation: cpu,
        slo_capacity: { rps: capacity.rps, slo_ms: capacity.slo_ms, probes: capacity.probes },
        retried: null,
      });
      say(
        `  ${name}: CPU cores during the saturation run: replicas ${cpu.replicas.map(fmt2).join(' + ')}, ` +
          `haproxy ${cpu.haproxy === null ? '?' : fmt2(cpu.haproxy)}, rest ${fmt2(cpu.rest)}, machine ${fmt2(cpu.machine)}`,
      );
    }
    const retried = (await set.haproxy.requests()).filter((r) => r.retries > 0).length;
    for (const row of rows) if (row.path === 'haproxy') row.retried = retried;
  } finally {
    await set.close();
  }
  return rows;
}

const cores = origin.machine.cores;
say(
  `scale-out of ${manifest.name} (${workload.description}, SLO ${sloMs} ms, ${policyLabel(policy)}, ${body} bodies) ` +
    `with ${counts.join(', ')} replicas, ${rounds} round(s), on ${origin.machine.cpu_model}, ${cores} cores; work files in ${workRoot}`,
);
if (origin.clean === false) say('the tree has local changes: these results cannot back a README figure');
const rows: Row[] = [];
for (let round = 1; round <= rounds; round++) {
  // Alternate the order: drift on the machine lands on every count, not on whichever runs last.
  const order = round % 2 === 1 ? counts : [...counts].reverse();
  for (const count of order) {
    say(`round ${round}: ${count} replica(s)`);
    rows.push(...(await measure(round, count)));
  }
}

// The report.
const done = finishProvenance(origin);
const configsInOrder: { replicas: number; path: Path }[] = [
  ...counts.map((n) => ({ replicas: n, path: 'haproxy' as const })),
  ...(counts.includes(1) && !args['no-direct'] ? [{ replicas: 1, path: 'direct' as const }] : []),
];
const baseline = (round: number): number | undefined =>
  rows.find((r) => r.round === round && r.replicas === 1 && r.path === 'haproxy')?.saturation.rps;
const lines = [
  `# Scale-out through haproxy, ${started.toISOString()}${args.quick ? ' (--quick: too short to quote)' : ''}`,
  '',
  provenanceLine(done),
  '',
  `${manifest.name} (${workload.description}), policy ${policyLabel(policy)}, ${body} bodies. Each replica: ` +
    '`offramp serve` with 1 executor worker of 1 intra-op thread; haproxy runs docs/deploy/haproxy.cfg. ' +
    `Saturation: closed loop, ${IN_FLIGHT_PER_REPLICA} requests in flight per replica, ${CAPACITY.seconds} s after ` +
    `${CAPACITY.warmSeconds} s of warm-up; SLO capacity: highest Poisson rate with p95 over every offered request ≤ ${sloMs} ms ` +
    `(${CAPACITY.steps} probes of ${CAPACITY.probeSeconds} s bisecting below the saturation). ${rounds} rounds, fresh ` +
    'processes each time: median (min–max) over the rounds. CPU in cores (CPU seconds per second) during the saturation run.',
  '',
  '| replicas | path | saturation req/s | × 1 replica | p50 ms | p99 ms | errors | SLO capacity req/s | ' +
    'CPU: replicas | CPU: haproxy | CPU: rest | CPU: machine |',
  '|--:|---|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|',
];
for (const c of configsInOrder) {
  const mine = rows.filter((r) => r.replicas === c.replicas && r.path === c.path);
  const col = (f: (r: Row) => number, format: (x: number) => string): string => spread(mine.map(f), format);
  lines.push(
    `| ${c.replicas} | ${c.path === 'haproxy' ? 'haproxy' : 'direct (no balancer)'} | ` +
      [
        col((r) => r.saturation.rps, fmt0),
        col(
          (r) => r.saturation.rps / (baseline(r.round) ?? Number.NaN),
          (x) => `${fmt2(x)}×`,
        ),
        col((r) => r.saturation.p50, fmt1),
        col((r) => r.saturation.p99, fmt1),
        errorsByStatus(mine),
        col((r) => r.slo_capacity.rps, fmt0),
        col((r) => r.cpu_at_saturation.replicas.reduce((a, b) => a + b, 0), fmt2),
        col((r) => r.cpu_at_saturation.haproxy ?? Number.NaN, fmt2),
        col((r) => r.cpu_at_saturation.rest, fmt2),
        col((r) => r.cpu_at_saturation.machine, fmt2),
      ].join(' | ') +
      ' |',
  );
}
/** "429 × 120, 503 × 2" over the rounds' saturation runs; "0" when every answer was 200. */
function errorsByStatus(of: readonly Row[]): string {
  const total: Record<string, number> = {};
  for (const r of of)
    for (const [status, n] of Object.entries(r.saturation.errors_by_status)) total[status] = (total[status] ?? 0) + n;
  const text = Object.entries(total)
    .map(([status, n]) => `${status} × ${n}`)
    .join(', ');
  return text || '0';
}
const viaHaproxy = rows.filter((r) => r.path === 'haproxy');
const cpuSpread = (f: (cpu: CpuUse) => number): string =>
  spread(
    viaHaproxy.map((r) => f(r.cpu_at_saturation)),
    fmt2,
  );
const replicasCpu = (cpu: CpuUse): number => cpu.replicas.reduce((a, b) => a + b, 0);
// Most of the busy time outside the replicas and haproxy: the client, or other work on the machine.
const crowded = viaHaproxy.some((r) => r.cpu_at_saturation.rest > replicasCpu(r.cpu_at_saturation));
lines.push(
  '',
  "Errors: the saturation runs' non-200 answers by HTTP status, every round summed (429: offramp's admission " +
    'refused what it could not answer within the SLO; 504: it waited in the queue past its deadline; 0: no ' +
    'answer); the SLO capacity counts them as misses.',
  '',
  '## What limits it',
  '',
  `This machine has ${cores} cores. A replica is one event loop (HTTP, request decoding, batching) and one ` +
    'inference thread (one intra-op thread), so it keeps at most two cores busy; the load client (one node ' +
    'process, encoding every request and decoding every answer) and haproxy share the same cores. During the ' +
    `saturation runs through haproxy the machine was busy on ${cpuSpread((c) => c.machine)} of ${cores} cores: ` +
    `the replicas ${cpuSpread(replicasCpu)}, haproxy ${cpuSpread((c) => c.haproxy ?? Number.NaN)}, everything ` +
    `else (the load client and any other work on the machine) ${cpuSpread((c) => c.rest)}. ` +
    'With every core busy, another replica on the same machine only shares them, adding its own event loop and ' +
    'context switches: replicas add throughput here only as far as one replica left cores idle. Replicas scale ' +
    'on machines of their own (pods on separate nodes), each bringing its cores; on one machine this run shows ' +
    "the balancer's cost (the direct row) and the cost of sharing, not the gain of adding machines." +
    (crowded
      ? ` In some runs more CPU went outside the replicas and haproxy than to the replicas (load average ` +
        `${done.load_average_1m.start.toFixed(1)} at the start): the machine was busy with other work, and ` +
        'these figures say more about it than about offramp.'
      : ''),
  '',
);
const report = lines.join('\n');
process.stdout.write(`${report}\n`);
const outDir = resolve(args.out, args.quick ? 'quick' : '.');
const base = await writeResultPair(outDir, 'scale-out', started, report, {
  format: 'offramp.scale-out/1',
  provenance: done,
  quick: args.quick,
  model: manifest.name,
  policy: policyLabel(policy),
  body,
  slo_ms: sloMs,
  in_flight_per_replica: IN_FLIGHT_PER_REPLICA,
  capacity_plan: CAPACITY,
  rounds,
  rows,
});
say(`wrote ${base}.md and .json`);
