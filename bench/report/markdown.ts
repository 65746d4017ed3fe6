/**
 * bench/results/<stem>.md: the comparison as a reader wants it — what ran on what, the table,
 * where requests exited, the serving-path overhead, and how to read the oracle row.
 */
import { basename } from 'node:path';
import { ORACLE_ABOUT } from '../lib/policies.js';
import type { BenchResults } from '../lib/results.js';
import { comparisonTable, exitTable, markdownTable, type Table } from './table.js';

const f = (x: number | null | undefined, digits = 1): string =>
  x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits);

export function overheadLines(results: BenchResults): string[] {
  const o = results.serving_overhead;
  const c = results.capacity;
  const lines = [
    `Vanilla capacity over HTTP (closed loop, ${c.concurrency} in flight, client in its own process): ` +
      `**${f(c.rps, 0)} answers/s** (p50 ${f(c.p50)} ms, p99 ${f(c.p99)} ms, ${c.errors} errors); ` +
      `server event-loop lag while saturated p99 ${f(c.server_event_loop_lag.p99_ms)} ms, max ${f(c.server_event_loop_lag.max_ms)} ms.`,
  ];
  if (o) {
    lines.push(
      `Serving path vs a raw onnxruntime loop (batch ${o.options.batch}, ` +
        `${o.options.workers} worker × ${o.options.threads} threads, ` +
        `${o.options.seconds} s each; bench/lib/serving-overhead.ts): ` +
        `raw **${f(o.rawRps, 0)} rows/s**; engine in-process ${f(o.engine.rps, 0)} rows/s = **${f(o.engine.ratio * 100)} %** of raw ` +
        `(event-loop lag p99 ${f(o.engine.lag.p99Ms, 2)} ms); HTTP ${f(o.http.client.rps, 0)} rows/s = **${f(o.http.ratio * 100)} %** of raw ` +
        `(event-loop lag p99 ${f(o.http.lag.p99Ms, 2)} ms, max ${f(o.http.lag.maxMs)} ms).`,
    );
  }
  return lines;
}

/** Closed-loop capacity per served policy, with the ratio to vanilla's (same loop, same run). */
export function saturationTable(results: BenchResults): Table {
  const vanilla = results.saturation['vanilla']?.rps ?? null;
  return {
    header: ['policy', 'answers/s', '×vanilla', 'p50 ms', 'p99 ms', 'errors'],
    numeric: [false, true, true, true, true, true],
    rows: Object.entries(results.saturation).map(([label, s]) => [
      label,
      f(s.rps, 0),
      vanilla ? `${f(s.rps / vanilla, 2)}×` : '–',
      f(s.p50),
      f(s.p99),
      String(s.errors),
    ]),
  };
}

export function markdownReport(results: BenchResults, stem: string): string {
  const m = results.machine;
  const plan = results.plan;
  const phases = plan.phases
    .map((p) => `${p.pattern} ${Math.round(p.loadFraction * 100)} % × ${p.seconds} s`)
    .join(', ');
  return [
    `# offramp serving comparison — ${results.started_at}${results.quick ? ' (quick)' : ''}`,
    '',
    `${m.cpu_model}, ${m.cores} cores, ${m.memory_gib} GiB, ${m.os}, Node ${m.node}; load average ${f(m.load_average_1m, 2)} at start. ` +
      `Commit ${results.source.commit?.slice(0, 10) ?? 'unknown'}${results.source.dirty ? ' (with local changes)' : ''}. ` +
      `Model ${results.model.name}, ${results.model.ramps} ramps. Took ${f(results.duration_s / 60)} min.`,
    '',
    `Every served policy gets a fresh \`offramp serve\` process with its own SLO file (defaults except tuner and exit mode), ` +
      `then an uncounted warm-up of ${results.warmup.requests} requests (Poisson at ${Math.round(results.warmup.load_fraction * 100)} % of capacity, ` +
      `${f(results.warmup.rate_rps, 0)}/s) so the online tuners have feedback before anything is measured, then open-loop load: ${phases}. ` +
      `Rates are fractions of vanilla's capacity measured in this run. ` +
      `Requests are Fashion-MNIST test images in one seeded shuffled order, the same for every policy; ` +
      `latency counts from the scheduled send time. ` +
      `Disagreement is against the full model's class for the same image (\`offramp record\`), ` +
      `accuracy against the true labels ` +
      `(full model: ${f(results.trace.full_model_accuracy * 100, 2)} %). Ratios are against vanilla at the same load in this run. ` +
      `Load avg is the machine's 1-minute load average before→after each run: ` +
      `other work on these 2 cores skews timings, so compare rows taken under similar load.`,
    '',
    markdownTable(comparisonTable(results)),
    '',
    `**oracle** — ${ORACLE_ABOUT}. ` +
      `Its latency is vanilla's measured latency for the same request minus the compute the exit would skip, ` +
      `from the manifest profile (bench/lib/oracle.ts).`,
    '',
    `![latency CDF](${basename(stem)}-cdf.svg) ![latency vs load](${basename(stem)}-load.svg)`,
    '',
    '## Where requests exited',
    '',
    markdownTable(exitTable(results)),
    '',
    "Head overhead is `offramp_ramp_overhead_ratio` at the end of the run: the active heads' profiled cost as a share of the full model's latency.",
    '',
    '## Capacity per policy',
    '',
    `After its measured runs, each served policy was saturated by the same closed-loop client ` +
      `that measured vanilla's capacity (${results.capacity.concurrency} in flight): ` +
      `what it can answer, against vanilla's figure from the same loop.`,
    '',
    markdownTable(saturationTable(results)),
    '',
    '## Serving-path overhead',
    '',
    ...overheadLines(results).flatMap((l) => [l, '']),
    '## Policies',
    '',
    ...results.policies.map((p) => `- **${p.label}**: ${p.about}`),
    '',
    `Sanity: ${results.sanity.passed ? 'passed' : `FAILED — ${results.sanity.problems.join('; ')}`}.`,
    '',
  ].join('\n');
}
