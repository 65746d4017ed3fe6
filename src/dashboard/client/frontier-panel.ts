/**
 * The latency–throughput frontier of one model: the report's predicted curves (from the latency
 * profile) and measured ones (from bench results), the SLO as a horizontal line, and the live
 * operating point from the stream as a marker, refreshed with every render.
 */

import type { DashboardModelInfo, FrontierCurve, FrontierReport } from '../protocol.js';
import { ROUTES } from './api.js';
import { Chart, type SeriesSpec } from './chart.js';
import { el, setText } from './dom.js';
import { formatMs, formatRate, MISSING, significant } from './format.js';
import { alignCurves, latencyKeyFor, operatingPoint } from './frontier.js';
import { requestJson } from './http.js';
import { COLORS, exitColor, panel, readout } from './panel.js';
import type { Timeline } from './timeline.js';

/** The operating point averages this much of the stream. */
const OPERATING_SPAN_MS = 10_000;

const OPERATING_POINT_COLOR = '#111111';

export class FrontierPanel {
  readonly #model: DashboardModelInfo;
  readonly #section: HTMLElement;
  readonly #charts: HTMLElement;
  readonly #point: HTMLElement;
  readonly #status: HTMLElement;
  #chart: Chart | undefined;
  #curves: { spec: SeriesSpec; curve: FrontierCurve }[] = [];
  #destroyed = false;

  constructor(root: HTMLElement, model: DashboardModelInfo) {
    this.#model = model;
    const key = latencyKeyFor(model.slo.percentile);
    const p = panel(
      root,
      'frontier',
      'Latency–throughput frontier',
      `latency at the SLO's percentile (${key}) against req/s`,
    );
    this.#section = p.section;
    this.#charts = p.charts;
    this.#point = readout(p.readouts, 'frontier-point', 'operating point', OPERATING_POINT_COLOR);
    p.readouts.appendChild(
      el(
        'div',
        { class: 'readout-note' },
        `SLO p${significant(model.slo.percentile)} ≤ ${formatMs(model.slo.latencyMs)}`,
      ),
    );
    this.#status = el('p', { class: 'hint', 'data-testid': 'frontier-status' }, 'Loading the frontier…');
    p.foot.appendChild(this.#status);
  }

  /** Fetches the report and builds the chart; until then (or on failure) the panel says why it is empty. */
  async load(): Promise<void> {
    const outcome = await requestJson<FrontierReport>(ROUTES.frontier(this.#model.name));
    if (this.#destroyed) return;
    if (!outcome.ok) {
      setText(this.#status, `No frontier: ${outcome.message}`);
      return;
    }
    const report = outcome.value;
    const measured = report.measured;
    this.#curves = [
      ...report.predicted.map((curve, i) => ({
        curve,
        spec: {
          key: `predicted: ${curve.label}`,
          label: `predicted: ${curve.label}`,
          color: exitColor(i),
          spanGaps: true,
        },
      })),
      ...(measured?.curves ?? []).map((curve, i) => ({
        curve,
        spec: {
          key: `measured: ${curve.label}`,
          label: `measured p${significant(measured!.percentile)}: ${curve.label}`,
          color: exitColor(report.predicted.length + i),
          dash: [5, 4],
          spanGaps: true,
        },
      })),
    ];
    this.#chart = new Chart(this.#charts, {
      name: 'frontier',
      kind: 'numeric',
      // Predicted capacity (compute only) lies decades beyond what HTTP serving reaches: on
      // linear axes the measured curves and the operating point would sit in a corner.
      logScale: true,
      height: 200,
      formatY: (value) => significant(value, 3),
      formatX: (value) => significant(value, 3),
      series: [
        ...this.#curves.map(({ spec }) => ({ ...spec, format: formatMs })),
        { key: 'slo', label: 'SLO', color: COLORS.limit, dash: [6, 4], width: 1, spanGaps: true, format: formatMs },
        { key: 'operating-point', label: 'now', color: OPERATING_POINT_COLOR, pointsOnly: true, format: formatMs },
      ],
    });
    const axes =
      'x: throughput (req/s); y: latency (ms); both logarithmic. Predicted: compute only (no HTTP, JSON or batching overhead).';
    setText(
      this.#status,
      measured === null
        ? `Measured: no bench results for this model yet. ${axes}`
        : `Measured: ${measured.source}${measured.commit === null ? '' : ` @ ${measured.commit.slice(0, 8)}`}, ${measured.startedAt}. ` +
            axes,
    );
  }

  render(timeline: Timeline): void {
    const point = operatingPoint(timeline.recent(OPERATING_SPAN_MS), this.#model.name, this.#model.slo.percentile);
    setText(
      this.#point,
      point === null
        ? MISSING
        : `${formatRate(point.throughputRps)} at ${formatMs(point.latencyMs)} ${point.latencyKey}`,
    );
    if (this.#chart === undefined) return;
    const now: FrontierCurve = {
      label: 'now',
      points: point === null ? [] : [{ throughputRps: point.throughputRps, latencyMs: point.latencyMs }],
    };
    const { x, y } = alignCurves([...this.#curves.map(({ curve }) => curve), now]);
    const slo = this.#model.slo.latencyMs;
    this.#chart.setData(x, [...y.slice(0, -1), x.map(() => slo), y.at(-1) ?? []], {
      'operating-point': point === null ? null : { throughputRps: point.throughputRps, latencyMs: point.latencyMs },
      slo,
      curves: this.#curves.map(({ spec }) => spec.label),
    });
  }

  destroy(): void {
    this.#destroyed = true;
    this.#chart?.destroy();
    this.#section.remove();
  }
}
