/**
 * The two plots, as hand-written SVG (no plotting dependency): the latency CDF of every policy
 * at one load, and median / p95 latency against offered load. Latency axes are logarithmic:
 * tails at high load are 10–100× the median and would flatten everything else. Both plot round
 * 1 (the table shows the spread over rounds). A CDF is over every offered request, so a policy
 * that missed some stops below 100 %; a p95 that is a miss is not plotted.
 */
import type { BenchResults, RunRow } from '../lib/results.js';
import { policyName } from './table.js';

const WIDTH = 780;
const HEIGHT = 460;
const M = { left: 70, right: 210, top: 44, bottom: 56 };
const PLOT_W = WIDTH - M.left - M.right;
const PLOT_H = HEIGHT - M.top - M.bottom;

const COLORS: Record<string, string> = {
  vanilla: '#333333',
  static: '#1f77b4',
  apparate: '#ff7f0e',
  'guarded-release': '#2ca02c',
  'guarded-drop': '#d62728',
  oracle: '#9467bd',
  'abc-fixed': '#17becf',
  'abc-tuned': '#0b3d91',
  'single-small': '#bcbd22',
  'abc-ramps': '#e377c2',
  'cascade-oracle': '#7f7f7f',
};
const color = (label: string): string => COLORS[label] ?? '#8c564b';

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const num = (x: number): string => (Math.round(x * 10) / 10).toString();

/** 1-2-5 ticks covering [min, max] on a log axis. */
export function logTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
    for (const m of [1, 2, 5]) {
      const t = m * 10 ** e;
      if (t >= min / 1.0001 && t <= max * 1.0001) ticks.push(t);
    }
  }
  return ticks;
}

/** From the largest 1-2-5 value at or below the smallest value to a little above the largest. */
function logRange(values: number[]): [number, number] {
  const finite = values.filter((v) => Number.isFinite(v) && v > 0);
  if (finite.length === 0) return [1, 10];
  const min = Math.min(...finite);
  const decade = 10 ** Math.floor(Math.log10(min));
  const lo = [5, 2, 1].map((m) => m * decade).find((t) => t <= min) ?? decade;
  const hi = Math.max(...finite) * 1.15;
  return [lo, Math.max(hi, lo * 10)];
}

const tickText = (t: number): string => (t >= 1 ? String(t) : String(Number(t.toPrecision(1))));

interface LegendItem {
  label: string;
  color: string;
  dash?: string;
}

function frame(title: string, xLabel: string, yLabel: string, body: string[], legend: LegendItem[]): string {
  const legendItems = legend.map((l, i) => {
    const y = M.top + 10 + i * 20;
    const x = WIDTH - M.right + 16;
    return (
      `<line x1="${x}" y1="${y}" x2="${x + 26}" y2="${y}" stroke="${l.color}" stroke-width="2.5"` +
      `${l.dash ? ` stroke-dasharray="${l.dash}"` : ''}/>` +
      `<text x="${x + 32}" y="${y + 4}">${esc(l.label)}</text>`
    );
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" ` +
      'font-family="Helvetica, Arial, sans-serif" font-size="12">',
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${M.left}" y="24" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<rect x="${M.left}" y="${M.top}" width="${PLOT_W}" height="${PLOT_H}" fill="none" stroke="#999"/>`,
    ...body,
    `<text x="${M.left + PLOT_W / 2}" y="${HEIGHT - 14}" text-anchor="middle">${esc(xLabel)}</text>`,
    `<text x="18" y="${M.top + PLOT_H / 2}" text-anchor="middle" transform="rotate(-90 18 ${M.top + PLOT_H / 2})">${esc(yLabel)}</text>`,
    ...legendItems,
    '</svg>',
    '',
  ].join('\n');
}

function polyline(points: [number, number][], stroke: string, dash?: string): string {
  const d = points.map(([x, y]) => `${num(x)},${num(y)}`).join(' ');
  return `<polyline points="${d}" fill="none" stroke="${stroke}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`;
}

/** Latency CDF per policy for the Poisson runs at `results.plan.cdfLoadFraction`. */
export function cdfSvg(results: BenchResults): string {
  const load = results.plan.cdfLoadFraction;
  const runs = results.runs.filter(
    (r) => r.round === 1 && r.pattern === 'poisson' && r.load_fraction === load && r.cdf.length > 0,
  );
  const [lo, hi] = logRange(runs.flatMap((r) => r.cdf.map(([ms]) => ms)));
  const x = (ms: number): number =>
    M.left + ((Math.log10(Math.max(ms, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * PLOT_W;
  const y = (q: number): number => M.top + (1 - q) * PLOT_H;
  const body: string[] = [];
  for (const t of logTicks(lo, hi)) {
    body.push(
      `<line x1="${num(x(t))}" y1="${M.top}" x2="${num(x(t))}" y2="${M.top + PLOT_H}" stroke="#eee"/>` +
        `<text x="${num(x(t))}" y="${M.top + PLOT_H + 16}" text-anchor="middle">${tickText(t)}</text>`,
    );
  }
  for (const q of [0, 0.25, 0.5, 0.75, 0.9, 1]) {
    body.push(
      `<line x1="${M.left}" y1="${num(y(q))}" x2="${M.left + PLOT_W}" y2="${num(y(q))}" stroke="#eee"/>` +
        `<text x="${M.left - 6}" y="${num(y(q) + 4)}" text-anchor="end">${q * 100} %</text>`,
    );
  }
  for (const r of runs)
    body.push(
      polyline(
        r.cdf.map(([ms, q]) => [x(ms), y(q)]),
        color(r.label),
        r.computed ? '6 4' : undefined,
      ),
    );
  const rate = runs[0]?.rate_rps;
  return frame(
    `Latency CDF at ${Math.round(load * 100)} % of vanilla's SLO capacity (Poisson${rate ? `, ${rate.toFixed(0)} req/s` : ''}, round 1)`,
    'latency (ms, log scale)',
    'share of offered requests',
    body,
    runs.map((r) => ({ label: policyName(r), color: color(r.label), ...(r.computed ? { dash: '6 4' } : {}) })),
  );
}

/** Median (solid) and p95 (dashed) latency against offered load, Poisson runs, per policy. */
export function loadSvg(results: BenchResults): string {
  const runs = results.runs.filter((r) => r.round === 1 && r.pattern === 'poisson' && r.ok > 0);
  const byLabel = new Map<string, RunRow[]>();
  for (const r of runs)
    byLabel.set(
      r.label,
      [...(byLabel.get(r.label) ?? []), r].sort((a, b) => a.load_fraction - b.load_fraction),
    );
  const loads = [...new Set(runs.map((r) => r.load_fraction))].sort((a, b) => a - b);
  const finite = (x: number | null): x is number => x !== null && Number.isFinite(x);
  const [lo, hi] = logRange(runs.flatMap((r) => [r.p50_ms, r.p95_ms]).filter(finite));
  const xLo = Math.min(...loads, 1) - 0.1;
  const xHi = Math.max(...loads, 0) + 0.1;
  const x = (load: number): number => M.left + ((load - xLo) / (xHi - xLo)) * PLOT_W;
  const y = (ms: number): number =>
    M.top + (1 - (Math.log10(Math.max(ms, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * PLOT_H;
  const body: string[] = [];
  for (const t of logTicks(lo, hi)) {
    body.push(
      `<line x1="${M.left}" y1="${num(y(t))}" x2="${M.left + PLOT_W}" y2="${num(y(t))}" stroke="#eee"/>` +
        `<text x="${M.left - 6}" y="${num(y(t) + 4)}" text-anchor="end">${tickText(t)}</text>`,
    );
  }
  for (const load of loads) {
    const rate = runs.find((r) => r.load_fraction === load)?.rate_rps ?? 0;
    body.push(
      `<text x="${num(x(load))}" y="${M.top + PLOT_H + 16}" text-anchor="middle">${Math.round(load * 100)} % (${rate.toFixed(0)}/s)</text>`,
    );
  }
  for (const [label, rs] of byLabel) {
    const c = color(label);
    for (const [key, dash, marker] of [
      ['p50_ms', undefined, 'circle'],
      ['p95_ms', '5 4', 'rect'],
    ] as const) {
      const pts: [number, number][] = rs.flatMap((r): [number, number][] => {
        const v = r[key];
        return finite(v) ? [[x(r.load_fraction), y(v)]] : [];
      });
      if (pts.length > 1) body.push(polyline(pts, c, dash));
      for (const [px, py] of pts) {
        body.push(
          marker === 'circle'
            ? `<circle cx="${num(px)}" cy="${num(py)}" r="3.5" fill="${c}"/>`
            : `<rect x="${num(px - 3)}" y="${num(py - 3)}" width="6" height="6" fill="${c}"/>`,
        );
      }
    }
  }
  const legend: LegendItem[] = [...byLabel.entries()].map(([label, rs]) => ({
    label: policyName(rs[0] as RunRow),
    color: color(label),
  }));
  legend.push({ label: 'solid, ●: p50', color: '#777' }, { label: 'dashed, ■: p95', color: '#777', dash: '5 4' });
  return frame(
    'Median and p95 latency vs offered load (Poisson, round 1; misses count as +∞)',
    "offered load (share of vanilla's SLO capacity)",
    'latency (ms, log scale)',
    body,
    legend,
  );
}
