/**
 * The comparison table, as rows of text cells, shared by the Markdown report and the console:
 * each policy at each load, with latency and throughput also as ratios against vanilla at the
 * same load in the same run (absolute times vary with the machine; ratios travel).
 */
import type { BenchResults, RunRow } from '../lib/results.js';

export interface Table {
  header: string[];
  /** Right-align these columns (numbers). */
  numeric: boolean[];
  rows: string[][];
}

const pct = (x: number | null, digits = 1): string =>
  x === null || !Number.isFinite(x) ? '–' : `${(x * 100).toFixed(digits)} %`;
const ms = (x: number): string => (Number.isFinite(x) ? x.toFixed(x < 10 ? 2 : 1) : '–');
const ratio = (x: number, base: number | undefined): string =>
  base && Number.isFinite(x) && base > 0 ? ` (${(x / base).toFixed(2)}×)` : '';

export function loadName(r: Pick<RunRow, 'pattern' | 'load_fraction'>): string {
  return `${r.pattern} ${Math.round(r.load_fraction * 100)} %`;
}

export function policyName(r: Pick<RunRow, 'label' | 'computed'>): string {
  return r.computed ? `${r.label} (computed)` : r.label;
}

/** Runs grouped by load (in plan order), policies in the order they ran, oracle last. */
export function orderedRuns(results: BenchResults): RunRow[] {
  const loads = results.plan.phases.map((p) => loadName({ pattern: p.pattern, load_fraction: p.loadFraction }));
  return [...results.runs].sort((a, b) => loads.indexOf(loadName(a)) - loads.indexOf(loadName(b)));
}

export function vanillaAt(results: BenchResults, r: RunRow): RunRow | undefined {
  return results.runs.find(
    (v) => v.policy === 'vanilla' && v.pattern === r.pattern && v.load_fraction === r.load_fraction,
  );
}

function errorsCell(r: RunRow): string {
  if (r.errors.total === 0) return '0';
  const parts = Object.entries(r.errors.by_status).map(
    ([status, n]) => `${n}×${status === '0' ? 'no answer' : status}`,
  );
  return parts.join(', ');
}

export function comparisonTable(results: BenchResults): Table {
  const header = [
    'policy',
    'load',
    'offered/s',
    'p50 ms (×van)',
    'p95 ms',
    'p99 ms (×van)',
    'answered/s (×van)',
    'disagree',
    'accuracy',
    'early exits',
    'head overhead',
    'errors',
    'load avg',
  ];
  const rows = orderedRuns(results).map((r) => {
    const v = vanillaAt(results, r);
    return [
      policyName(r),
      loadName(r),
      r.rate_rps.toFixed(0),
      ms(r.p50_ms) + ratio(r.p50_ms, v?.p50_ms),
      ms(r.p95_ms),
      ms(r.p99_ms) + ratio(r.p99_ms, v?.p99_ms),
      r.throughput_rps.toFixed(0) + ratio(r.throughput_rps, v?.throughput_rps),
      pct(r.disagreement, 2),
      pct(r.accuracy, 2),
      pct(r.early_fraction),
      pct(r.head_overhead),
      errorsCell(r),
      r.load_average_1m ? r.load_average_1m.map((x) => x.toFixed(1)).join('→') : '',
    ];
  });
  return { header, numeric: header.map((_, i) => i >= 2 && i < header.length - 2), rows };
}

/** Share of answered requests per exit (ramp id, then the full model). */
export function exitTable(results: BenchResults): Table {
  const ramps = results.model.ramps;
  const header = [
    'policy',
    'load',
    ...Array.from({ length: ramps }, (_, i) => `ramp ${i}`),
    'final',
    'active ramps (threshold)',
  ];
  const rows = orderedRuns(results).map((r) => [
    policyName(r),
    loadName(r),
    ...Array.from({ length: ramps }, (_, i) => (r.exits[String(i)] ? pct(r.exits[String(i)] ?? 0) : '–')),
    pct(r.exits['final'] ?? 0),
    r.computed
      ? 'all (oracle)'
      : r.active_ramps.map((a) => `${a.id} (${a.threshold === null ? 'never' : a.threshold.toFixed(3)})`).join(', ') ||
        'none',
  ]);
  return { header, numeric: header.map((_, i) => i >= 2 && i < header.length - 1), rows };
}

/** Plain-text rendering with aligned columns, for the terminal. */
export function textTable(t: Table): string {
  const widths = t.header.map((h, i) => Math.max(h.length, ...t.rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (t.numeric[i] ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number)))
      .join('  ')
      .trimEnd();
  return [line(t.header), widths.map((w) => '-'.repeat(w)).join('  '), ...t.rows.map(line)].join('\n');
}

export function markdownTable(t: Table): string {
  const esc = (c: string): string => c.replace(/\|/g, '\\|');
  return [
    `| ${t.header.map(esc).join(' | ')} |`,
    `|${t.numeric.map((n) => (n ? '---:' : '---')).join('|')}|`,
    ...t.rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}
