/**
 * The comparison table, as rows of text cells, shared by the Markdown report and the console:
 * each policy at each load, figures as spreads over rounds, latency and throughput also as ratios
 * against vanilla at the same load in the same round (absolute times vary with the machine;
 * ratios travel).
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

/** A latency as it is shown: "miss" for +∞ (the percentile fell on an unanswered request). */
export const msText = (x: number | null): string =>
  x === null ? 'miss' : Number.isFinite(x) ? x.toFixed(x < 10 ? 2 : 1) : Number.isNaN(x) ? '–' : 'miss';

/** Stored latency (null = miss) → number (+∞ = miss). */
const lat = (x: number | null): number => (x === null ? Number.POSITIVE_INFINITY : x);

/**
 * Values over rounds as "median (min–max)", or one value when they agree. NaN (unknown) values
 * are left out; +∞ is shown by `fmt` (e.g. "miss").
 */
export function spread(values: number[], fmt: (x: number) => string): string {
  const known = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (known.length === 0) return '–';
  const lo = fmt(known[0] as number);
  const hi = fmt(known[known.length - 1] as number);
  if (lo === hi) return lo;
  const mid = known.length % 2 === 1 ? fmt(known[(known.length - 1) / 2] as number) : null;
  return mid !== null && known.length > 2 ? `${mid} (${lo}–${hi})` : `${lo}–${hi}`;
}

/** x / base per round; NaN when unknown, +∞ when x is a miss and base is not. */
function ratioOf(x: number, base: number | undefined): number {
  if (base === undefined || Number.isNaN(base) || !Number.isFinite(base) || base <= 0) return Number.NaN;
  return x / base;
}
const ratioText = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(2)}×` : 'miss');

export function loadName(r: Pick<RunRow, 'pattern' | 'load_fraction'>): string {
  return `${r.pattern} ${Math.round(r.load_fraction * 100)} %`;
}

export function policyName(r: Pick<RunRow, 'label' | 'computed'>): string {
  return r.computed ? `${r.label} (computed)` : r.label;
}

/** Runs grouped by load (in plan order), policies in the order they ran, oracle last, then round. */
export function orderedRuns(results: BenchResults): RunRow[] {
  const loads = results.plan.phases.map((p) => loadName({ pattern: p.pattern, load_fraction: p.loadFraction }));
  const labels = results.policies.map((p) => p.label);
  return [...results.runs].sort(
    (a, b) =>
      loads.indexOf(loadName(a)) - loads.indexOf(loadName(b)) ||
      labels.indexOf(a.label) - labels.indexOf(b.label) ||
      a.round - b.round,
  );
}

/** The runs of one policy at one load, one per round, round order. */
export interface RunGroup {
  label: string;
  load: string;
  rows: RunRow[];
}

export function runGroups(results: BenchResults): RunGroup[] {
  const groups: RunGroup[] = [];
  for (const r of orderedRuns(results)) {
    const load = loadName(r);
    const last = groups[groups.length - 1];
    if (last && last.label === r.label && last.load === load) last.rows.push(r);
    else groups.push({ label: r.label, load, rows: [r] });
  }
  return groups;
}

/** The row of `label` at the same load and round as r (vanilla, the oracle). */
export function peerOf(results: BenchResults, r: RunRow, label: string): RunRow | undefined {
  return results.runs.find(
    (v) => v.label === label && v.round === r.round && v.pattern === r.pattern && v.load_fraction === r.load_fraction,
  );
}

export function vanillaAt(results: BenchResults, r: RunRow): RunRow | undefined {
  return peerOf(results, r, 'vanilla');
}

/**
 * The share of the oracle's cut a policy reaches, in one round: (vanilla − policy) / (vanilla −
 * oracle) for a latency percentile. 1 = all of it, 0 = none, negative = slower than vanilla; NaN
 * when the oracle cuts nothing or a figure is missing, −∞ when the policy's percentile is a miss.
 */
export function oracleFraction(policy: number, vanilla: number, oracle: number): number {
  const cut = vanilla - oracle;
  if (!Number.isFinite(vanilla) || !Number.isFinite(oracle) || !(cut > 0) || Number.isNaN(policy)) return Number.NaN;
  return (vanilla - policy) / cut;
}

function errorsCell(rows: RunRow[]): string {
  const byStatus: Record<string, number> = {};
  for (const r of rows)
    for (const [status, n] of Object.entries(r.errors.by_status)) byStatus[status] = (byStatus[status] ?? 0) + n;
  const parts = Object.entries(byStatus).map(([status, n]) => `${n}×${status === '0' ? 'no answer' : status}`);
  return parts.length === 0 ? '0' : parts.join(', ');
}

/**
 * The oracle a row's cut is measured against: the cascade oracle for a cascade (its rows say which
 * tier answered), the ramp oracle otherwise.
 */
function oracleFor(r: RunRow): string {
  return r.tier_shares ? 'cascade-oracle' : 'oracle';
}

/** Whether any row served (or computed) a cascade: the tables then show where tiers answered. */
export function hasCascade(results: BenchResults): boolean {
  return results.runs.some((r) => r.tier_shares);
}

/**
 * CPU per answer against vanilla's in the same round; for a computed row (an oracle) its compute
 * per answer as a share of the full model's instead, marked "compute" (it has no CPU time).
 */
function cpuRatioCell(results: BenchResults, rs: RunRow[]): string {
  if (rs[0]?.computed) {
    const share = spread(
      rs.map((r) => r.compute_share ?? Number.NaN),
      (x) => `${x.toFixed(2)}×`,
    );
    return share === '–' ? share : `${share} (compute)`;
  }
  return spread(
    rs.map((r) => ratioOf(r.cpu_ms_per_answer ?? Number.NaN, vanillaAt(results, r)?.cpu_ms_per_answer ?? Number.NaN)),
    ratioText,
  );
}

/** Share answered per cascade tier over rounds: "T0 80.1 % · model 19.9 %" (spreads per tier); "" without a cascade. */
function tierCell(rs: RunRow[]): string {
  const keys = Object.keys(rs[0]?.tier_shares ?? {});
  return keys
    .map(
      (k) =>
        `${k === 'model' ? 'model' : `T${k}`} ${spread(
          rs.map((r) => r.tier_shares?.[k] ?? Number.NaN),
          (x) => pct(x),
        )}`,
    )
    .join(' · ');
}

/**
 * One row per policy and load; every figure is a spread over rounds, ratios are taken against
 * vanilla of the same round before spreading.
 */
export function comparisonTable(results: BenchResults): Table {
  const cascaded = hasCascade(results);
  const header = [
    'policy',
    'load',
    'offered/s',
    'p50 ms',
    'p50 ×van',
    'p95 ms',
    'p95 ×van',
    'p99 ms',
    'p99 ×van',
    'answered/s',
    '×van',
    'SLO attained',
    'oracle cut p50 / p95 ms',
    'of oracle cut p50 / p95',
    'CPU ms/answer',
    'CPU ×van',
    'disagree',
    'accuracy',
    'early exits',
    ...(cascaded ? ['by tier'] : []),
    'errors',
    'load avg',
  ];
  const rows = runGroups(results).map(({ label, load, rows: rs }) => {
    const first = rs[0] as RunRow;
    const per = (f: (r: RunRow) => number): number[] => rs.map(f);
    const van = (r: RunRow): RunRow | undefined => vanillaAt(results, r);
    const orc = (r: RunRow): RunRow | undefined => peerOf(results, r, oracleFor(r));
    const latRatio = (key: 'p50_ms' | 'p95_ms' | 'p99_ms'): string =>
      spread(
        per((r) => {
          const v = van(r);
          return v ? ratioOf(lat(r[key]), lat(v[key])) : Number.NaN;
        }),
        ratioText,
      );
    const cut = (key: 'p50_ms' | 'p95_ms'): number[] =>
      per((r) => {
        const v = van(r);
        const o = orc(r);
        return v && o ? lat(v[key]) - lat(o[key]) : Number.NaN;
      });
    const reached = (key: 'p50_ms' | 'p95_ms'): string =>
      spread(
        per((r) => {
          const v = van(r);
          const o = orc(r);
          return v && o ? oracleFraction(lat(r[key]), lat(v[key]), lat(o[key])) : Number.NaN;
        }),
        (x) => (Number.isFinite(x) ? `${(x * 100).toFixed(0)} %` : 'miss'),
      );
    const cutMs = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : '–');
    return [
      policyName(first),
      load,
      spread(
        per((r) => r.rate_rps),
        (x) => x.toFixed(0),
      ),
      spread(
        per((r) => lat(r.p50_ms)),
        msText,
      ),
      latRatio('p50_ms'),
      spread(
        per((r) => lat(r.p95_ms)),
        msText,
      ),
      latRatio('p95_ms'),
      spread(
        per((r) => lat(r.p99_ms)),
        msText,
      ),
      latRatio('p99_ms'),
      spread(
        per((r) => r.throughput_rps),
        (x) => x.toFixed(0),
      ),
      spread(
        per((r) => ratioOf(r.throughput_rps, van(r)?.throughput_rps)),
        ratioText,
      ),
      spread(
        per((r) => r.slo_attainment),
        (x) => pct(x),
      ),
      label === 'vanilla' ? '' : `${spread(cut('p50_ms'), cutMs)} / ${spread(cut('p95_ms'), cutMs)}`,
      label === 'vanilla' || first.computed ? '' : `${reached('p50_ms')} / ${reached('p95_ms')}`,
      spread(
        per((r) => r.cpu_ms_per_answer ?? Number.NaN),
        (x) => x.toFixed(2),
      ),
      cpuRatioCell(results, rs),
      spread(
        per((r) => r.disagreement),
        (x) => pct(x, 2),
      ),
      spread(
        per((r) => r.accuracy),
        (x) => pct(x, 2),
      ),
      spread(
        per((r) => r.early_fraction),
        (x) => pct(x),
      ),
      ...(cascaded ? [tierCell(rs)] : []),
      errorsCell(rs),
      rs
        .map((r) => (r.load_average_1m ? r.load_average_1m.map((x) => x.toFixed(1)).join('→') : ''))
        .filter((x) => x)
        .join(', '),
    ];
  });
  return { header, numeric: header.map((_, i) => i >= 2 && i < header.length - 2), rows };
}

/**
 * Share of answered requests per exit: a cascade's tiers (when there is one), the backbone's
 * ramps by id, then its last layer.
 */
export function exitTable(results: BenchResults): Table {
  const ramps = results.model.ramps;
  const tiers = Math.max(0, ...results.runs.map((r) => Object.keys(r.tier_shares ?? {}).length - 1));
  const header = [
    'policy',
    'load',
    'round',
    ...Array.from({ length: tiers }, (_, t) => `tier ${t}`),
    ...Array.from({ length: ramps }, (_, i) => `ramp ${i}`),
    'final',
    'head overhead',
    'active exits (threshold)',
  ];
  const exitText = (a: RunRow['active_ramps'][number]): string =>
    `${a.kind === 'tier' ? `tier ${a.id} θ` : `${a.id}`} (${a.threshold === null ? 'never' : a.threshold.toFixed(3)})`;
  const rows = orderedRuns(results).map((r) => [
    policyName(r),
    loadName(r),
    String(r.round),
    ...Array.from({ length: tiers }, (_, t) => (r.tier_shares?.[String(t)] ? pct(r.tier_shares[String(t)] ?? 0) : '–')),
    ...Array.from({ length: ramps }, (_, i) => (r.exits[String(i)] ? pct(r.exits[String(i)] ?? 0) : '–')),
    pct(r.exits['final'] ?? 0),
    pct(r.head_overhead),
    r.computed ? `all (${r.label})` : r.active_ramps.map(exitText).join(', ') || 'none',
  ]);
  return { header, numeric: header.map((_, i) => i >= 3 && i < header.length - 1), rows };
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

/** Values as "min–max", or one value when they agree; NaN (unknown) left out, "–" when none is known. */
function range(values: number[], fmt: (x: number) => string): string {
  const known = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (known.length === 0) return '–';
  const lo = fmt(known[0] as number);
  const hi = fmt(known[known.length - 1] as number);
  return lo === hi ? lo : `${lo}–${hi}`;
}

/**
 * The summary the project README shows per model, one row per policy: latency ratios to vanilla
 * at every load (vanilla itself in ms), SLO capacity against vanilla's (vanilla's in requests/s),
 * CPU per answer against vanilla's in the same round (vanilla's in ms; an oracle's compute share,
 * over loads too), disagreement with the full model, accuracy against the labels and the share
 * answered early, each as min–max over rounds (and, for the last three, over loads). The first column names the
 * model, so the tables of two runs stack into one.
 */
export function readmeTable(results: BenchResults): Table {
  const loads = results.plan.phases.map((p) => loadName({ pattern: p.pattern, load_fraction: p.loadFraction }));
  const loadList = loads.map((l) => l.replace(/^poisson /, '')).join(' / ');
  const labels = results.policies.map((p) => p.label);
  const rows = labels.map((label) => {
    const runs = results.runs.filter((r) => r.label === label);
    const latency = (key: 'p50_ms' | 'p99_ms'): string =>
      loads
        .map((load) => {
          const at = runs.filter((r) => loadName(r) === load);
          if (label === 'vanilla')
            return range(
              at.map((r) => lat(r[key])),
              msText,
            );
          return range(
            at.map((r) => {
              const v = vanillaAt(results, r);
              return v ? ratioOf(lat(r[key]), lat(v[key])) : Number.NaN;
            }),
            (x) => (Number.isFinite(x) ? x.toFixed(2) : 'miss'),
          );
        })
        .join(' / ');
    const served = results.served.filter((s) => s.label === label);
    const vanillaCapacity = (round: number): number | undefined =>
      results.served.find((s) => s.label === 'vanilla' && s.round === round)?.capacity.rps;
    const capacity =
      served.length === 0
        ? '—'
        : label === 'vanilla'
          ? `${range(
              served.map((s) => s.capacity.rps),
              (x) => x.toFixed(0),
            )}/s`
          : range(
              served.map((s) => ratioOf(s.capacity.rps, vanillaCapacity(s.round))),
              (x) => x.toFixed(2),
            );
    const cpu =
      label === 'vanilla'
        ? `${range(
            runs.map((r) => r.cpu_ms_per_answer ?? Number.NaN),
            (x) => x.toFixed(2),
          )} ms`
        : runs[0]?.computed
          ? range(
              runs.map((r) => r.compute_share ?? Number.NaN),
              (x) => `${x.toFixed(2)} (compute)`,
            )
          : range(
              runs.map((r) =>
                ratioOf(r.cpu_ms_per_answer ?? Number.NaN, vanillaAt(results, r)?.cpu_ms_per_answer ?? Number.NaN),
              ),
              (x) => x.toFixed(2),
            );
    return [
      results.model.name,
      label === 'vanilla' ? 'vanilla (ms)' : policyName(runs[0] ?? { label, computed: false }),
      latency('p50_ms'),
      latency('p99_ms'),
      capacity,
      cpu.startsWith('–') ? '–' : cpu,
      range(
        runs.map((r) => r.disagreement),
        (x) => pct(x, 2),
      ),
      range(
        runs.map((r) => r.accuracy),
        (x) => pct(x, 2),
      ),
      range(
        runs.map((r) => r.early_fraction),
        (x) => pct(x, 0),
      ),
    ];
  });
  return {
    header: [
      'model',
      'policy',
      `p50 ×vanilla at ${loadList}`,
      `p99 ×vanilla at ${loadList}`,
      'SLO capacity ×vanilla',
      'CPU/answer ×vanilla',
      'disagreement',
      'accuracy',
      'answered early',
    ],
    numeric: [false, false, false, false, true, true, true, true, true],
    rows,
  };
}
