/**
 * The live panels of one model, drawn from the Timeline: latency, throughput, queue and batch
 * sizes, exit shares, thresholds with tuning events, disagreement, savings, CPU. Each panel is
 * built once per model and redrawn from the timeline on every render; switching models destroys
 * them and builds the new model's.
 */

import type { DashboardModelInfo, ModelSnapshot, TuningEvent, TuningEventKind } from '../protocol.js';
import { bucketLabels, describeBatchSizes, sumBatchSizes } from './batch-sizes.js';
import { Chart, type ChartSpec, type SeriesSpec } from './chart.js';
import { el, setText } from './dom.js';
import { describeThresholds, exitViews, type ExitView } from './exits.js';
import {
  formatClock,
  formatCores,
  formatCount,
  formatMs,
  formatRate,
  formatShare,
  formatThreshold,
  MISSING,
  significant,
} from './format.js';
import { COLORS, exitColor, FINAL_COLOR, panel, readout, swatch, tint, type Panel } from './panel.js';
import { exitShare, modelEvents, stackColumns, timeColumns, type Timeline } from './timeline.js';

/** The batch-size bars sum this much of the timeline. */
const BATCH_SPAN_MS = 60_000;
/** Tuning events listed under the threshold chart, newest first. */
const LISTED_EVENTS = 4;

export const EVENT_COLORS: Record<TuningEventKind, string> = {
  retune: '#7f8c8d',
  tighten: '#c0392b',
  ramps: '#8e44ad',
  pause: '#d35400',
  resume: '#d35400',
  pin: '#2b7bb9',
  unpin: '#2b7bb9',
  'ramp-disabled': '#222222',
  restore: '#27ae60',
};

/** Compact axis ticks; the units are in the panel titles and the readouts. */
const axisNumber = (value: number) => significant(value, 3);
const axisPercent = (value: number) => `${significant(value * 100, 3)}%`;

type Redraw = (timeline: Timeline) => void;

export class ModelPanels {
  readonly #model: DashboardModelInfo;
  readonly #root: HTMLElement;
  readonly #charts: Chart[] = [];
  readonly #sections: HTMLElement[] = [];
  readonly #redraws: Redraw[];

  constructor(root: HTMLElement, model: DashboardModelInfo) {
    this.#root = root;
    this.#model = model;
    this.#redraws = [
      this.#latency(),
      this.#throughput(),
      this.#queue(),
      this.#exitShares(),
      this.#thresholds(),
      this.#disagreement(),
      this.#savings(),
      this.#cpu(),
    ];
  }

  render(timeline: Timeline): void {
    for (const redraw of this.#redraws) redraw(timeline);
  }

  destroy(): void {
    for (const chart of this.#charts) chart.destroy();
    for (const section of this.#sections) section.remove();
  }

  #panel(name: string, title: string, note?: string): Panel {
    const created = panel(this.#root, name, title, note);
    this.#sections.push(created.section);
    return created;
  }

  #chart(parent: Panel, spec: ChartSpec): Chart {
    const chart = new Chart(parent.charts, spec);
    this.#charts.push(chart);
    return chart;
  }

  #latest(timeline: Timeline): ModelSnapshot | undefined {
    return timeline.latest?.models[this.#model.name];
  }

  #latency(): Redraw {
    const { slo, name } = this.#model;
    const sloLabel = `SLO p${significant(slo.percentile)} ≤ ${formatMs(slo.latencyMs)}`;
    const p = this.#panel('latency', 'Latency', 'ms, per second');
    const chart = this.#chart(p, {
      name: 'latency',
      kind: 'time',
      formatY: axisNumber,
      series: [
        { key: 'p50', label: 'p50', color: COLORS.p50, format: formatMs },
        { key: 'p95', label: 'p95', color: COLORS.p95, format: formatMs },
        { key: 'p99', label: 'p99', color: COLORS.p99, format: formatMs },
        { key: 'slo', label: sloLabel, color: COLORS.limit, dash: [6, 4], width: 1, format: formatMs },
      ],
    });
    const values = {
      p50: readout(p.readouts, 'latency-p50', 'p50', COLORS.p50),
      p95: readout(p.readouts, 'latency-p95', 'p95', COLORS.p95),
      p99: readout(p.readouts, 'latency-p99', 'p99', COLORS.p99),
    };
    p.readouts.appendChild(el('div', { class: 'readout-note' }, sloLabel));
    return (timeline) => {
      const { x, y } = timeColumns(timeline.entries, name, {
        p50: (m) => m.latencyMs?.p50 ?? null,
        p95: (m) => m.latencyMs?.p95 ?? null,
        p99: (m) => m.latencyMs?.p99 ?? null,
      });
      chart.setData(x, [y.p50, y.p95, y.p99, x.map(() => slo.latencyMs)]);
      const latency = this.#latest(timeline)?.latencyMs ?? null;
      for (const key of ['p50', 'p95', 'p99'] as const) setText(values[key], formatMs(latency?.[key] ?? null));
    };
  }

  #throughput(): Redraw {
    const { name } = this.#model;
    const p = this.#panel('throughput', 'Answers and errors', 'per second');
    const chart = this.#chart(p, {
      name: 'throughput',
      kind: 'time',
      formatY: axisNumber,
      series: [
        {
          key: 'answers',
          label: 'answers',
          color: COLORS.answers,
          fill: tint(COLORS.answers, 0.12),
          format: formatRate,
        },
        { key: 'errors', label: 'errors', color: COLORS.errors, format: formatRate },
      ],
    });
    const answers = readout(p.readouts, 'answers-per-s', 'answers', COLORS.answers);
    const errors = readout(p.readouts, 'errors-per-s', 'errors', COLORS.errors);
    return (timeline) => {
      const { x, y } = timeColumns(timeline.entries, name, {
        answers: (m) => m.answersPerS,
        errors: (m) => m.errorsPerS,
      });
      chart.setData(x, [y.answers, y.errors]);
      const latest = this.#latest(timeline);
      setText(answers, formatRate(latest?.answersPerS ?? null));
      setText(errors, formatRate(latest?.errorsPerS ?? null));
    };
  }

  #queue(): Redraw {
    const { name, batchSizeBuckets } = this.#model;
    const labels = bucketLabels(batchSizeBuckets);
    const p = this.#panel('queue', 'Queue and batch sizes', 'batches over the last minute');
    const queue = this.#chart(p, {
      name: 'queue',
      kind: 'time',
      height: 110,
      formatY: axisNumber,
      series: [
        { key: 'waiting', label: 'waiting', color: COLORS.queue, format: (v) => formatCount(v, 'request') },
        {
          key: 'running',
          label: 'batches running',
          color: COLORS.running,
          format: (v) => formatCount(v, 'batch', 'batches'),
        },
      ],
    });
    const bars = this.#chart(p, {
      name: 'batch-sizes',
      kind: 'bars',
      height: 100,
      formatY: axisNumber,
      categories: () => labels,
      series: [{ key: 'batches', label: 'batches', color: COLORS.bars, fill: tint(COLORS.bars, 0.85) }],
    });
    const waiting = readout(p.readouts, 'queue-depth', 'waiting', COLORS.queue);
    const running = readout(p.readouts, 'running-batches', 'running', COLORS.running);
    const sizes = readout(p.readouts, 'batch-sizes', 'batch size');
    return (timeline) => {
      const { x, y } = timeColumns(timeline.entries, name, {
        waiting: (m) => m.queueDepth,
        running: (m) => m.runningBatches,
      });
      queue.setData(x, [y.waiting, y.running]);
      const counts = sumBatchSizes(timeline.recent(BATCH_SPAN_MS), name, labels.length);
      bars.setData(
        labels.map((_label, i) => i),
        [counts],
        Object.fromEntries(labels.map((label, i) => [label, counts[i] ?? 0])),
      );
      const latest = this.#latest(timeline);
      setText(waiting, formatCount(latest?.queueDepth ?? null, 'request'));
      setText(running, formatCount(latest?.runningBatches ?? null, 'batch', 'batches'));
      setText(sizes, describeBatchSizes(labels, counts));
    };
  }

  #exitShares(): Redraw {
    const model = this.#model;
    const exits = exitViews(model);
    const colors = exits.map((exit, i) => (exit.kind === 'final' ? FINAL_COLOR : exitColor(i)));
    const p = this.#panel('exit-shares', 'Answers per exit', 'share of answers, stacked');
    // uPlot fills each series down to the axis, so the stack is drawn top band first: series i
    // (from the top) is the running sum up to exit n−1−i, filled in that exit's colour.
    const order = exits.map((_exit, i) => exits.length - 1 - i);
    let raw: (number | null)[][] = [];
    const chart = this.#chart(p, {
      name: 'exit-shares',
      kind: 'time',
      yRange: [0, 1],
      formatY: axisPercent,
      series: order.map((exitIndex): SeriesSpec => ({
        key: exits[exitIndex]!.key,
        label: exits[exitIndex]!.label,
        color: colors[exitIndex]!,
        fill: tint(colors[exitIndex]!, 0.75),
        width: 1,
        format: (_stacked, index) => formatShare(raw[exitIndex]?.[index] ?? null),
      })),
    });
    const shares = readout(p.readouts, 'exit-shares', 'now');
    return (timeline) => {
      const extractors = Object.fromEntries(
        exits.map((exit) => [exit.key, (m: ModelSnapshot) => exitShare(m, exit.key)]),
      );
      const { x, y } = timeColumns(timeline.entries, model.name, extractors);
      raw = exits.map((exit) => y[exit.key] ?? []);
      const stacked = stackColumns(raw);
      const last = x.length - 1;
      chart.setData(
        x,
        order.map((exitIndex) => stacked[exitIndex]!),
        Object.fromEntries(exits.map((exit, i) => [exit.key, last < 0 ? null : (raw[i]?.[last] ?? null)])),
      );
      const latest = this.#latest(timeline);
      const now = latest === undefined ? MISSING : describeShares(exits, latest);
      setText(shares, now);
    };
  }

  #thresholds(): Redraw {
    const model = this.#model;
    const exits = exitViews(model).filter((exit) => exit.kind !== 'final');
    let markers: { x: number; color: string }[] = [];
    const p = this.#panel('thresholds', 'Thresholds', `${model.policy} · tuner ${model.tunerKind}`);
    const chart = this.#chart(p, {
      name: 'thresholds',
      kind: 'time',
      yRange: 'auto',
      formatY: (value) => significant(value, 3),
      markers: () => markers,
      series: exits.map((exit, i): SeriesSpec => ({
        key: exit.key,
        label: exit.label,
        color: exitColor(i),
        format: formatThreshold,
      })),
    });
    const thresholds = readout(p.readouts, 'thresholds', 'in force');
    const tuner = readout(p.readouts, 'tuner-state', 'tuner');
    p.foot.appendChild(
      el(
        'p',
        { class: 'hint' },
        'A break in a line: the threshold is "never" (the ramp answers nothing) or nothing was sampled. ' +
          'Dashed lines: tuning events, listed below.',
      ),
    );
    const list = el('ol', { class: 'events', 'data-list': 'tuning-events' });
    p.foot.appendChild(list);
    // The newest event listed ('none': the empty list's note); undefined until the first render.
    let listed: TuningEvent | 'none' | undefined;
    return (timeline) => {
      const extractors = Object.fromEntries(
        exits.map((exit) => [exit.key, (m: ModelSnapshot) => m.thresholds[exit.key] ?? null]),
      );
      const { x, y } = timeColumns(timeline.entries, model.name, extractors);
      const events = modelEvents(timeline.entries, model.name);
      markers = events.map((event) => ({ x: event.at / 1000, color: EVENT_COLORS[event.kind] }));
      chart.setData(
        x,
        exits.map((exit) => y[exit.key] ?? []),
      );
      const latest = this.#latest(timeline);
      setText(thresholds, latest === undefined ? MISSING : describeThresholds(model, latest.thresholds, latest.pinned));
      setText(tuner, latest === undefined ? MISSING : tunerState(model, latest));
      // The list changes only when a new event arrives; rebuilding it every second would churn the DOM.
      const newest = events.at(-1) ?? 'none';
      if (newest !== listed) {
        listed = newest;
        list.replaceChildren(
          ...events
            .slice(-LISTED_EVENTS)
            .reverse()
            .map((event) =>
              el(
                'li',
                { 'data-kind': event.kind },
                el('time', {}, formatClock(event.at)),
                el('span', { class: 'event-kind' }, swatch(EVENT_COLORS[event.kind]), event.kind),
                el('span', { class: 'event-summary' }, event.summary),
              ),
            ),
        );
        if (newest === 'none')
          list.appendChild(el('li', { class: 'empty' }, 'No tuning events in the last 15 minutes.'));
      }
    };
  }

  #disagreement(): Redraw {
    const model = this.#model;
    const budget = model.accuracy.budget;
    const p = this.#panel('disagreement', 'Disagreement with the full model', 'feedback window');
    const chart = this.#chart(p, {
      name: 'disagreement',
      kind: 'time',
      formatY: axisPercent,
      series: [
        { key: 'disagreement', label: 'window', color: COLORS.disagreement, format: formatShare },
        { key: 'guardBound', label: "guard's bound", color: COLORS.bound, dash: [2, 3], format: formatShare },
        {
          key: 'budget',
          label: `budget ${formatShare(budget)}`,
          color: COLORS.limit,
          dash: [6, 4],
          width: 1,
          format: formatShare,
        },
      ],
    });
    const disagreement = readout(p.readouts, 'disagreement', 'window', COLORS.disagreement);
    const bound = readout(p.readouts, 'guard-bound', "guard's bound", COLORS.bound);
    const fill = readout(p.readouts, 'window-fill', 'window rows');
    p.readouts.appendChild(el('div', { class: 'readout-note' }, `budget ${formatShare(budget)}`));
    return (timeline) => {
      const { x, y } = timeColumns(timeline.entries, model.name, {
        disagreement: (m) => m.window.disagreement,
        guardBound: (m) => m.guardBound,
      });
      chart.setData(x, [y.disagreement, y.guardBound, x.map(() => budget)]);
      const latest = this.#latest(timeline);
      setText(disagreement, formatShare(latest?.window.disagreement ?? null));
      setText(
        bound,
        latest === undefined ? MISSING : latest.guardBound === null ? 'none' : formatShare(latest.guardBound),
      );
      setText(fill, latest === undefined ? MISSING : `${latest.window.rows} of ${latest.window.capacity}`);
    };
  }

  #savings(): Redraw {
    const { name } = this.#model;
    const p = this.#panel('savings', 'Latency saved by early exits', 'share of full-model latency');
    const chart = this.#chart(p, {
      name: 'savings',
      kind: 'time',
      formatY: axisPercent,
      series: [
        {
          key: 'estimated',
          label: 'estimated',
          color: COLORS.savings,
          fill: tint(COLORS.savings, 0.12),
          format: formatShare,
        },
        { key: 'hindsight', label: 'hindsight optimum', color: COLORS.hindsight, dash: [6, 4], format: formatShare },
      ],
    });
    const savings = readout(p.readouts, 'savings', 'estimated', COLORS.savings);
    const hindsight = readout(p.readouts, 'hindsight', 'hindsight', COLORS.hindsight);
    const early = readout(p.readouts, 'early-share', 'answered early');
    return (timeline) => {
      const { x, y } = timeColumns(timeline.entries, name, {
        estimated: (m) => m.savings.estimated,
        hindsight: (m) => m.savings.hindsight,
      });
      chart.setData(x, [y.estimated, y.hindsight]);
      const latest = this.#latest(timeline);
      setText(savings, formatShare(latest?.savings.estimated ?? null));
      setText(
        hindsight,
        latest === undefined
          ? MISSING
          : latest.savings.hindsight === null
            ? 'unknown'
            : formatShare(latest.savings.hindsight),
      );
      setText(early, formatShare(latest?.window.earlyFraction ?? null));
    };
  }

  #cpu(): Redraw {
    const { name } = this.#model;
    const p = this.#panel('cpu', 'CPU', 'whole process, all models');
    const perAnswer = this.#chart(p, {
      name: 'cpu-per-answer',
      kind: 'time',
      height: 105,
      formatY: axisNumber,
      series: [{ key: 'msPerAnswer', label: 'ms per answer', color: COLORS.cpu, format: formatMs }],
    });
    const cores = this.#chart(p, {
      name: 'cpu-cores',
      kind: 'time',
      height: 105,
      formatY: axisNumber,
      series: [
        { key: 'cores', label: 'cores', color: COLORS.queue, fill: tint(COLORS.queue, 0.12), format: formatCores },
      ],
    });
    const perAnswerValue = readout(p.readouts, 'cpu-per-answer', 'per answer', COLORS.cpu);
    const coresValue = readout(p.readouts, 'cpu-cores', 'cores', COLORS.queue);
    return (timeline) => {
      const { x, y } = timeColumns(timeline.entries, name, {
        msPerAnswer: (_m, s) => s.cpuMsPerAnswer,
        cores: (_m, s) => s.cpuCores,
      });
      perAnswer.setData(x, [y.msPerAnswer]);
      cores.setData(x, [y.cores]);
      const latest = timeline.latest;
      setText(perAnswerValue, formatMs(latest?.cpuMsPerAnswer ?? null));
      setText(coresValue, formatCores(latest?.cpuCores ?? null));
    };
  }
}

/** The exits that can answer now (in the plan in force, and "final") or did answer in the interval. */
function describeShares(exits: readonly ExitView[], model: ModelSnapshot): string {
  if (Object.keys(model.exitShares).length === 0) return 'no answers';
  return exits
    .filter((exit) => exit.kind === 'final' || exit.key in model.thresholds || (exitShare(model, exit.key) ?? 0) > 0)
    .map((exit) => `${exit.label} ${formatShare(exitShare(model, exit.key))}`)
    .join(' · ');
}

function tunerState(model: DashboardModelInfo, snapshot: ModelSnapshot): string {
  const pins = snapshot.pinned.length === 0 ? '' : ` · ${snapshot.pinned.length} pinned`;
  if (!model.online) return `${model.tunerKind}${pins}`;
  return `${snapshot.paused ? 'paused' : 'running'}${pins}`;
}
