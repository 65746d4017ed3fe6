/**
 * bench/results/<stem>.md: the comparison as a reader wants it — where and how it ran, the table,
 * capacity per policy, where requests exited, the serving-path overhead, and how to read the
 * oracle row.
 */
import { basename } from 'node:path';
import type { SloCapacity } from '../lib/capacity.js';
import { provenanceLine } from '../lib/machine.js';
import { CASCADE_ORACLE_ABOUT, ORACLE_ABOUT } from '../lib/policies.js';
import type { BenchResults } from '../lib/results.js';
import { perRequestLine } from '../lib/serving-overhead.js';
import { comparisonTable, exitTable, markdownTable, readmeTable, spread, type Table } from './table.js';

const f = (x: number | null | undefined, digits = 1): string =>
  x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits);

const probesText = (c: SloCapacity): string =>
  c.probes.map((p) => `${f(p.rate_rps, 0)}/s ${p.passed ? 'met' : 'missed'}`).join(', ');

/** Vanilla's SLO capacity at the start and the end of the run, and the drift between them. */
export function capacityLines(results: BenchResults): string[] {
  const { start, end, drift, load_basis: basis } = results.vanilla_capacity;
  const driftText =
    drift === null ? 'drift unknown (no start figure)' : `drift ${drift >= 0 ? '+' : ''}${f(drift * 100)} %`;
  return [
    `Vanilla SLO capacity (highest Poisson rate with p95 ≤ ${start.slo_ms} ms over every offered request; ` +
      `${results.plan.body} bodies; fresh server): ${f(start.rps, 0)}/s at the start (probes: ${probesText(start)}; ` +
      `closed-loop saturation ${f(start.upper_rps, 0)}/s), ${f(end.rps, 0)}/s at the end ` +
      `(closed-loop ${f(end.upper_rps, 0)}/s): ${driftText}. ` +
      (basis.from === 'slo_capacity'
        ? `Every load is a fraction of the start figure.`
        : `**No probe met the SLO at the start**: every load is a fraction of the lowest probe's rate, ${f(basis.rps, 0)}/s.`),
  ];
}

export function overheadLines(results: BenchResults): string[] {
  const o = results.serving_overhead;
  if (!o) return [];
  return [
    `Serving path vs a raw onnxruntime loop (batch ${o.options.batch}, ` +
      `${o.options.workers} worker × ${o.options.threads} threads, ` +
      `${o.options.seconds} s each; bench/lib/serving-overhead.ts): ` +
      `raw **${f(o.rawRps, 0)} rows/s**; engine in-process ${f(o.engine.rps, 0)} rows/s = **${f(o.engine.ratio * 100)} %** of raw ` +
      `(event-loop lag p99 ${f(o.engine.lag.p99Ms, 2)} ms); HTTP (binary bodies) ${f(o.http.client.rps, 0)} rows/s = ` +
      `**${f(o.http.ratio * 100)} %** of raw (event-loop lag p99 ${f(o.http.lag.p99Ms, 2)} ms, max ${f(o.http.lag.maxMs)} ms).`,
    ...(o.perRequest ? [`One request's cost: ${perRequestLine(o.perRequest)}.`] : []),
  ];
}

/**
 * SLO capacity and closed-loop saturation per served policy, spread over rounds, with ratios to
 * vanilla's of the same round.
 */
export function capacityTable(results: BenchResults): Table {
  const labels = [...new Set(results.served.map((s) => s.label))];
  const vanilla = (round: number): SloCapacity | undefined =>
    results.served.find((s) => s.label === 'vanilla' && s.round === round)?.capacity;
  const ratio = (x: number, base: number | undefined): number => (base && base > 0 ? x / base : Number.NaN);
  const rows = labels.map((label) => {
    const runs = results.served.filter((s) => s.label === label);
    return [
      label,
      spread(
        runs.map((s) => s.capacity.rps),
        (x) => x.toFixed(0),
      ),
      spread(
        runs.map((s) => ratio(s.capacity.rps, vanilla(s.round)?.rps)),
        (x) => `${x.toFixed(2)}×`,
      ),
      spread(
        runs.map((s) => s.capacity.saturation.rps),
        (x) => x.toFixed(0),
      ),
      spread(
        runs.map((s) => ratio(s.capacity.saturation.rps, vanilla(s.round)?.saturation.rps)),
        (x) => `${x.toFixed(2)}×`,
      ),
      spread(
        runs.map((s) => s.capacity.saturation.p50),
        (x) => x.toFixed(1),
      ),
      runs.map((s) => probesText(s.capacity)).join(' | '),
    ];
  });
  return {
    header: ['policy', 'SLO capacity/s', '×van', 'closed-loop/s', '×van', 'closed-loop p50 ms', 'probes (per round)'],
    numeric: [false, true, true, true, true, true, false],
    rows,
  };
}

/** Files from before issue 13 have no `workload`: they are all Fashion-MNIST images at a fixed 50 ms. */
function workloadOf(results: BenchResults): NonNullable<BenchResults['workload']> {
  return (
    results.workload ?? {
      kind: 'image',
      description: 'Fashion-MNIST test images',
      item: 'image',
      data: 'models/data/fashion-mnist/test-images.npy.gz',
      items: results.trace.images,
      slo_rule: `fixed at ${results.plan.sloMs} ms`,
    }
  );
}

/**
 * `--cascade` runs: what stood in front of the model, what its members do offline over the test
 * items, the tier cost the cascade oracle used, and how to read the cascade rows.
 */
export function cascadeLines(results: BenchResults): string[] {
  const c = results.cascade;
  if (!c) return [];
  const t = c.trace;
  const names = Object.keys(c.members);
  const pctText = (x: number | null): string => (x === null ? '–' : `${f(x * 100)} %`);
  const costs = c.tier_cost_ms.map((x) => `${x.label} r${x.round} ${f(x.cost_ms, 3)} ms`).join(', ');
  return [
    '## Cascades (issue 14)',
    '',
    `The ABC tier: ${names.map((n) => `${n} (\`${c.members[n]}\`)`).join(', ')}, merged into one graph per call ` +
      `(\`cascade.execution: merged\`). single-small serves **${c.single.name}** alone: the member agreeing most with ` +
      `the backbone per \`${c.report}\` (${f(c.single.agreement * 100)} %). Every cascade is served in drop mode ` +
      `(a row a tier answers leaves the batch) with the accuracy budget and feedback window of the other policies. ` +
      `**abc-ramps is offramp's extension**, not part of ABC: the tier in front of the ramped backbone.`,
    '',
    `Offline, the members over all ${t.items} test ${results.workload?.item ?? 'item'}s ` +
      `(onnxruntime, \`bench/lib/cascade-trace.ts\`; \`${t.path}\`): all ${names.length} agree on ${pctText(t.all_agree)} ` +
      `and then differ from the full model on ${pctText(t.all_agree_disagreement)} of those; their plurality is the full ` +
      `model's answer on ${pctText(t.plurality_agrees)}. Per member, agreement with the full model / accuracy: ` +
      names
        .map((n) => `${n} ${pctText(t.member_agreement[n] ?? null)} / ${pctText(t.member_accuracy[n] ?? null)}`)
        .join(', ') +
      '.',
    '',
    `**cascade-oracle** — ${CASCADE_ORACLE_ABOUT}. Computed from vanilla's runs as the ramp oracle is, with the tier's ` +
      `cost as a share of the full model's: the median of the ABC tier's cost at batch 1 as the cascade servers of the ` +
      `round measured it at load (/exits \`cascade.tiers[0].costMs\`: ${costs || 'none reported'}) over the profile's ` +
      `full-model latency at batch 1 (${f(c.full_model_ms_batch1, 3)} ms). Cascade rows' oracle cut is against it; other ` +
      `rows' against the ramp oracle. "CPU ×van" of an oracle row is its compute per answer as a share of the full ` +
      `model's ("compute"), not CPU time. "by tier": the share of answered requests each tier answered (the response's ` +
      `\`tier\` parameter; "model" = the served model, its ramps included).`,
    '',
  ];
}

export function markdownReport(results: BenchResults, stem: string): string {
  const plan = results.plan;
  const workload = workloadOf(results);
  const phases = plan.phases
    .map((p) => `${p.pattern} ${Math.round(p.loadFraction * 100)} % × ${p.seconds} s`)
    .join(', ');
  return [
    `# offramp serving comparison — ${results.model.name} — ${results.started_at}${results.quick ? ' (quick)' : ''}`,
    '',
    provenanceLine(results.provenance),
    '',
    `Model ${results.model.name} (\`${results.model.dir}\`), ${results.model.ramps} ramps; ` +
      `${workload.items} ${workload.description}; ${plan.body} request bodies; ` +
      `SLO ${plan.sloMs} ms (${workload.slo_rule}); ` +
      `${plan.rounds} round(s). Took ${f(results.duration_s / 60)} min (planned ${f(results.planned_duration_s / 60)}).`,
    '',
    `Every served policy, in every round, gets a fresh \`offramp serve\` process with its own SLO file ` +
      `(defaults except tuner and exit mode), ` +
      `then an uncounted warm-up of ${results.warmup.requests} requests ` +
      `(Poisson at ${Math.round(results.warmup.load_fraction * 100)} % of vanilla's SLO capacity, ` +
      `${f(results.warmup.rate_rps, 0)}/s), then open-loop load: ${phases}, then its own SLO capacity search. ` +
      `Rounds run one after the other (every policy once per round). ` +
      `Requests are ${workload.description} (one ${workload.item} each) in one seeded shuffled order, the same for every policy; ` +
      `latency counts from the scheduled send time. ` +
      `**Percentiles are over every offered request**: one not answered 200 (429, 503, 504, client timeout) is a miss (+∞), ` +
      `shown as "miss" when a percentile falls on it. SLO attained = share of offered requests answered 200 within ${plan.sloMs} ms. ` +
      `Each cell is the median (min–max) over rounds, or min–max with two rounds, or one value when they agree; ` +
      `ratios (×van) are against vanilla at the same load in the same round. ` +
      `Oracle cut = vanilla's latency minus the oracle's; "of oracle cut" = (vanilla − policy) / (vanilla − oracle). ` +
      `CPU ms/answer = the server process's user + system CPU time (all threads; /proc/<pid>/stat read just before and ` +
      `after the load, or process_cpu_seconds_total without /proc) during the run per answered request; ×van against vanilla's. ` +
      `Disagreement is against the full model's class for the same ${workload.item} (\`offramp record\`) ` +
      `(full model accuracy: ${f(results.trace.full_model_accuracy * 100, 2)} %). ` +
      `Load avg is the machine's 1-minute load average before→after each run.`,
    '',
    markdownTable(comparisonTable(results)),
    '',
    `**oracle** — ${ORACLE_ABOUT}. ` +
      `Its latency is vanilla's measured latency for the same request (same round) minus the compute the exit would skip, ` +
      `from the manifest profile (bench/lib/oracle.ts); vanilla's misses stay misses.`,
    '',
    `![latency CDF](${basename(stem)}-cdf.svg) ![latency vs load](${basename(stem)}-load.svg)`,
    '',
    ...cascadeLines(results),
    '## Capacity per policy',
    '',
    ...capacityLines(results),
    '',
    `After its measured runs, each served policy's SLO capacity was searched the same way: closed-loop saturation ` +
      `(${plan.capacity.concurrency} in flight, ${plan.capacity.seconds} s) as the upper bracket, then ${plan.capacity.steps} ` +
      `Poisson probes of ${plan.capacity.probeSeconds} s bisecting between 0 and it (bench/lib/capacity.ts).`,
    '',
    markdownTable(capacityTable(results)),
    '',
    '## Where requests exited',
    '',
    markdownTable(exitTable(results)),
    '',
    "Head overhead is `offramp_ramp_overhead_ratio` at the end of the run: the active heads' profiled cost as a share of the full model's latency.",
    '',
    '## Serving-path overhead',
    '',
    ...overheadLines(results).flatMap((l) => [l, '']),
    `## README table (${results.model.name})`,
    '',
    `Ratios against vanilla at the same load and round (vanilla's own row in ms and requests/s); min–max over rounds, ` +
      `and for disagreement, accuracy and early answers over loads too. ` +
      `Full-model accuracy on these ${workload.item}s: ${f(results.trace.full_model_accuracy * 100, 2)} %.`,
    '',
    markdownTable(readmeTable(results)),
    '',
    '## Policies',
    '',
    ...results.policies.map((p) => `- **${p.label}**: ${p.about}`),
    '',
    `Sanity: ${results.sanity.passed ? 'passed' : `FAILED — ${results.sanity.problems.join('; ')}`}.`,
    '',
  ].join('\n');
}
