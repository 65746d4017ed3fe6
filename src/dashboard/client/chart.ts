/**
 * One uPlot chart in a panel, and the test hook every chart carries: its container has
 * `data-chart="<name>"` and `data-latest`, the JSON of the latest value it plotted per series
 * (series key → value at the last x, null for a gap or "never"), so a browser test can see a line
 * move without reading pixels.
 */

import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { el } from './dom.js';
import { formatClock, MISSING } from './format.js';
import type { Column } from './timeline.js';

export interface SeriesSpec {
  /** The series' key in `data-latest`. */
  key: string;
  label: string;
  color: string;
  /** Area fill under the line (stacked charts draw their bands this way). */
  fill?: string;
  dash?: number[];
  width?: number;
  /** Points only, no line (a marker such as the operating point). */
  pointsOnly?: boolean;
  /** Join across nulls (curves aligned on a shared x, where a null means "no point here"). */
  spanGaps?: boolean;
  /** The legend's value text while the cursor is over the chart (at data index `index`). */
  format?: (value: number | null, index: number) => string;
}

export interface VerticalMarker {
  /** On the x scale (epoch seconds on a time chart). */
  x: number;
  color: string;
}

export interface ChartSpec {
  name: string;
  /** 'time': x is epoch seconds; 'numeric': x is a quantity; 'bars': x is a category index. */
  kind: 'time' | 'numeric' | 'bars';
  series: SeriesSpec[];
  /** Axis tick text. */
  formatY: (value: number) => string;
  formatX?: (value: number) => string;
  /** The y range: 'zero' starts at 0 and fits the data; a pair fixes it; 'auto' fits the data. */
  yRange?: 'zero' | 'auto' | [number, number];
  /**
   * Both axes logarithmic (a numeric chart only; yRange is then ignored): for quantities that
   * span decades on one chart, such as a frontier whose predicted capacity is far beyond what
   * was measured.
   */
  logScale?: boolean;
  /** Category labels of a bar chart, by x index. */
  categories?: () => readonly string[];
  /** Vertical lines drawn over the plot (tuning events). */
  markers?: () => readonly VerticalMarker[];
  height?: number;
}

const DEFAULT_HEIGHT = 170;
const AXIS_FONT = '11px system-ui, sans-serif';
const GRID = { stroke: '#e6e8eb', width: 1 };
/** A bar chart's category label needs about this much room. */
const MIN_CATEGORY_PX = 34;

export class Chart {
  readonly container: HTMLDivElement;
  readonly #spec: ChartSpec;
  readonly #plot: uPlot;
  readonly #resize: ResizeObserver;

  constructor(parent: HTMLElement, spec: ChartSpec) {
    this.#spec = spec;
    this.container = el('div', { class: 'chart', 'data-chart': spec.name, 'data-latest': '{}' });
    parent.appendChild(this.container);
    const width = Math.max(200, this.container.clientWidth);
    this.#plot = new uPlot(this.#options(width), this.#emptyData(), this.container);
    // Charts follow their panel's width (the grid reflows with the window); height is fixed.
    this.#resize = new ResizeObserver(() => {
      const next = Math.max(200, this.container.clientWidth);
      if (next !== this.#plot.width) this.#plot.setSize({ width: next, height: spec.height ?? DEFAULT_HEIGHT });
    });
    this.#resize.observe(this.container);
  }

  /** Draws `ys` (one column per series, in the spec's order) over `x`, and records the latest values. */
  setData(x: readonly number[], ys: readonly Column[], latest?: Record<string, unknown>): void {
    this.#plot.setData([x as number[], ...(ys as Column[])] as uPlot.AlignedData);
    const last = x.length - 1;
    const values =
      latest ??
      Object.fromEntries(this.#spec.series.map((series, i) => [series.key, last < 0 ? null : (ys[i]?.[last] ?? null)]));
    const json = JSON.stringify(values);
    if (this.container.dataset['latest'] !== json) this.container.dataset['latest'] = json;
  }

  /** Redraws without new data (the markers changed). */
  redraw(): void {
    this.#plot.redraw(false);
  }

  destroy(): void {
    this.#resize.disconnect();
    this.#plot.destroy();
    this.container.remove();
  }

  #emptyData(): uPlot.AlignedData {
    return [[], ...this.#spec.series.map(() => [])] as uPlot.AlignedData;
  }

  #options(width: number): uPlot.Options {
    const spec = this.#spec;
    const bars = spec.kind === 'bars';
    const series: uPlot.Series[] = [
      {},
      ...spec.series.map((s): uPlot.Series => {
        const format = s.format ?? ((value: number | null) => (value === null ? MISSING : spec.formatY(value)));
        return {
          label: s.label,
          stroke: s.color,
          width: s.width ?? 1.5,
          ...(s.fill === undefined ? {} : { fill: s.fill }),
          ...(s.dash === undefined ? {} : { dash: s.dash }),
          spanGaps: s.spanGaps ?? false,
          value: (_u, value, _series, index) => format(value ?? null, index ?? -1),
          points: s.pointsOnly ? { show: true, size: 10, fill: s.color, stroke: '#ffffff', width: 2 } : { show: false },
          ...(s.pointsOnly ? { paths: () => null } : {}),
          ...(bars ? { paths: uPlot.paths.bars!({ size: [0.7, 48] }), fill: s.fill ?? s.color } : {}),
        };
      }),
    ];
    const yRange = spec.yRange ?? 'zero';
    const log = spec.logScale === true && spec.kind === 'numeric';
    const yScale: uPlot.Scale = log
      ? { distr: 3, log: 10 }
      : yRange === 'auto'
        ? {}
        : yRange === 'zero'
          ? { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] }
          : { range: yRange };
    const categories = spec.categories;
    const xAxis: uPlot.Axis = {
      font: AXIS_FONT,
      grid: bars ? { show: false } : GRID,
      ticks: { show: false },
      // One line of tick text (uPlot's default time ticks take two, and room for them).
      size: 24,
      space: 36,
      ...(bars && categories
        ? {
            // Every k-th category, so that labels never overlap on a narrow panel.
            splits: (u) => {
              const count = categories().length;
              const every = Math.max(
                1,
                Math.ceil((MIN_CATEGORY_PX * count) / Math.max(1, u.bbox.width / devicePixelRatio)),
              );
              return categories()
                .map((_label, i) => i)
                .filter((i) => i % every === 0);
            },
            values: (_u, splits) => splits.map((i) => categories()[i] ?? ''),
          }
        : spec.kind === 'time'
          ? { values: (_u, splits) => splits.map((seconds, _i, all) => clockTick(seconds, all)) }
          : spec.formatX
            ? { values: (_u, splits) => splits.map((value) => tickText(value, spec.formatX!)) }
            : {}),
    };
    const yAxis: uPlot.Axis = {
      font: AXIS_FONT,
      grid: GRID,
      ticks: { show: false },
      size: 56,
      values: (_u, splits) => splits.map((value) => tickText(value, spec.formatY)),
    };
    return {
      width,
      height: spec.height ?? DEFAULT_HEIGHT,
      series,
      scales: {
        x: bars
          ? { time: false, range: (_u, _min, max) => [-0.5, Math.max(0, max) + 0.5] }
          : log
            ? { time: false, distr: 3, log: 10 }
            : { time: spec.kind === 'time' },
        y: yScale,
      },
      axes: [xAxis, yAxis],
      legend: { show: !bars, live: true },
      cursor: { drag: { x: false, y: false }, points: { show: !bars } },
      padding: [8, 8, 0, 0],
      plugins: spec.markers ? [markerPlugin(spec.markers)] : [],
    };
  }
}

/** A tick's label; a logarithmic axis passes null for the ticks between its labelled ones. */
function tickText(value: number | null, format: (value: number) => string): string {
  return value === null ? '' : format(value);
}

/** Draws vertical lines at the markers' x over the series (tuning events on the threshold chart). */
function markerPlugin(markers: () => readonly VerticalMarker[]): uPlot.Plugin {
  return {
    hooks: {
      draw: (u) => {
        const { ctx, bbox } = u;
        const min = u.scales['x']?.min;
        const max = u.scales['x']?.max;
        if (min === undefined || max === undefined) return;
        ctx.save();
        ctx.lineWidth = Math.max(1, devicePixelRatio);
        ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
        for (const marker of markers()) {
          if (marker.x < min || marker.x > max) continue;
          const left = Math.round(u.valToPos(marker.x, 'x', true));
          ctx.strokeStyle = marker.color;
          ctx.beginPath();
          ctx.moveTo(left, bbox.top);
          ctx.lineTo(left, bbox.top + bbox.height);
          ctx.stroke();
        }
        ctx.restore();
      },
    },
  };
}

/** A time tick as the local clock: minutes, or seconds too when ticks are under a minute apart. */
function clockTick(seconds: number, ticks: readonly number[]): string {
  const step = ticks.length > 1 ? Math.abs(ticks[1]! - ticks[0]!) : 60;
  return formatClock(seconds * 1000, step < 60);
}
