/**
 * offramp's dashboard page (served at /dashboard; bundled by build.ts into dist/dashboard/). It
 * loads the models (`/dashboard/api/info`), opens one EventSource for every model, keeps ~15 min
 * of snapshots in a Timeline, and draws the picked model's panels (`?model=<name>`, the first
 * model by default). The contract with the server is src/dashboard/protocol.ts.
 *
 * Hooks for the browser tests: stable names; change them only together with the tests.
 * - Readouts: the element whose text is the value carries `data-readout="<name>"`: latency-p50,
 *   latency-p95, latency-p99, answers-per-s, errors-per-s, queue-depth, batch-sizes, exit-shares,
 *   thresholds, disagreement, guard-bound, savings, hindsight, cpu-per-answer, cpu-cores,
 *   frontier-point, stream-status ("connecting", "live", "reconnecting"); also running-batches,
 *   tuner-state, window-fill, early-share, last-update.
 * - Charts: the container has `data-chart="<name>"` and `data-latest`, the JSON of the latest value
 *   plotted per series (the value at the last x; null for a gap or, on thresholds, "never"):
 *   latency {p50, p95, p99, slo} · throughput {answers, errors} · queue {waiting, running} ·
 *   batch-sizes {<bucket label>: batches over the last minute} · exit-shares {<exit key>: share} ·
 *   thresholds {<exit key>: threshold or null} · disagreement {disagreement, guardBound, budget} ·
 *   savings {estimated, hindsight} · cpu-per-answer {msPerAnswer} · cpu-cores {cores} ·
 *   frontier {"operating-point": {throughputRps, latencyMs} or null, slo, curves: [legend labels]}.
 * - What-if (`data-testid`): whatif-budget (the range input: positions 0..40 on budget-scale.ts's
 *   log scale, 0.1 % to 10 %), whatif-budget-value, whatif-thresholds, whatif-early,
 *   whatif-savings, whatif-disagreement (the what-if column), whatif-current-<same> (the "now"
 *   column), whatif-apply, whatif-status (rows computed on, or the coded error).
 * - Controls (`data-testid`): admin-token, tuner-pause, tuner-resume, unpin-all, pin-ramp (a
 *   select whose values are exit keys), pin-threshold (a number or "never"), pin-apply,
 *   control-status (every admin answer or coded error, what-if Apply's included; `data-state`
 *   idle, pending, ok or error), control-reason (why controls are disabled; empty when they are not).
 * - model-picker (the select); each panel is `section[data-panel="<name>"]`; `<html data-state>`
 *   is "loading", then "ready" once the panels are built or "error" (the message in
 *   [data-testid="page-error"]); `<body data-rendered-seq>` is the seq of the newest snapshot drawn.
 * - The stream as received (timeline.ts's SeqWatch), on `<body>`: `data-received-seq` (the seq of
 *   the snapshot received last), `data-seq-skips` (times the seq jumped: snapshots were lost) and
 *   `data-seq-repeats` (times it did not rise: snapshots came again), so a test can tell that a
 *   resume lost and repeated nothing (the page itself drops repeats and draws skips as gaps).
 */

import type { DashboardInfo, DashboardModelInfo } from '../protocol.js';
import { AdminSession } from './admin.js';
import { modelFromQuery, queryWithModel, ROUTES } from './api.js';
import { ControlsPanel } from './controls-panel.js';
import { el, required, setText } from './dom.js';
import { formatClock, formatShare, formatMs, significant } from './format.js';
import { FrontierPanel } from './frontier-panel.js';
import { requestJson } from './http.js';
import { ModelPanels } from './model-panels.js';
import { openStream } from './stream.js';
import './styles.css';
import { SeqWatch, Timeline } from './timeline.js';
import { WhatIfPanel } from './what-if-panel.js';

/** The page keeps this much of the stream (the server's ring buffer reaches about as far). */
const KEEP_MS = 15 * 60_000;

/** Everything drawn for the picked model; rebuilt when the picker changes. */
class ModelView {
  readonly #live: ModelPanels;
  readonly #frontier: FrontierPanel;
  readonly #whatIf: WhatIfPanel;
  readonly #controls: ControlsPanel;

  constructor(grid: HTMLElement, model: DashboardModelInfo, session: AdminSession) {
    this.#live = new ModelPanels(grid, model);
    this.#frontier = new FrontierPanel(grid, model);
    this.#whatIf = new WhatIfPanel(grid, model, session, (thresholds, what) => this.#controls.pin(thresholds, what));
    this.#controls = new ControlsPanel(grid, model, session);
    void this.#frontier.load();
    this.#whatIf.load();
  }

  render(timeline: Timeline): void {
    this.#live.render(timeline);
    this.#frontier.render(timeline);
  }

  destroy(): void {
    this.#live.destroy();
    this.#frontier.destroy();
    this.#whatIf.destroy();
    this.#controls.destroy();
  }
}

function describeModel(model: DashboardModelInfo): string {
  return [
    `v${model.version}`,
    `${model.policy} · ${model.mode}`,
    `tuner ${model.tunerKind}${model.online ? ' (online)' : ''}`,
    `SLO p${significant(model.slo.percentile)} ≤ ${formatMs(model.slo.latencyMs)}`,
    `budget ${formatShare(model.accuracy.budget)}`,
  ].join(' · ');
}

async function start(): Promise<void> {
  const root = document.documentElement;
  root.dataset['state'] = 'loading';
  const header = required<HTMLElement>(document, 'header');
  const grid = required<HTMLElement>(document, 'main');
  const outcome = await requestJson<DashboardInfo>(ROUTES.info);
  if (!outcome.ok) {
    grid.appendChild(
      el('p', { class: 'page-error', 'data-testid': 'page-error' }, `The dashboard could not load: ${outcome.message}`),
    );
    root.dataset['state'] = 'error';
    return;
  }
  const info = outcome.value;
  const names = info.models.map((model) => model.name);

  const picker = el(
    'select',
    { 'data-testid': 'model-picker', 'aria-label': 'model' },
    ...names.map((name) => el('option', { value: name }, name)),
  );
  const facts = el('span', { class: 'model-facts' });
  const streamStatus = el(
    'span',
    { class: 'stream-status', 'data-readout': 'stream-status', 'data-state': 'connecting' },
    'connecting',
  );
  const lastUpdate = el('span', { class: 'last-update', 'data-readout': 'last-update' }, '');
  header.append(
    el('label', { class: 'picker' }, 'Model ', picker),
    facts,
    el('span', { class: 'stream' }, streamStatus, lastUpdate),
  );
  required<HTMLElement>(header, '.version').textContent = `v${info.version}`;

  const timeline = new Timeline(KEEP_MS);
  const session = new AdminSession(info.adminEnabled);
  let view: ModelView | undefined;

  let renderPending = false;
  const render = () => {
    renderPending = false;
    const latest = timeline.latest;
    view?.render(timeline);
    if (latest !== undefined) {
      setText(lastUpdate, `updated ${formatClock(latest.t)}`);
      document.body.dataset['renderedSeq'] = String(latest.seq);
    }
  };
  // One render per frame however many snapshots arrived (the ring buffer comes as a burst), and
  // none while the tab is hidden: snapshots are still kept, and drawn when it shows again.
  const scheduleRender = () => {
    if (renderPending || document.hidden) return;
    renderPending = true;
    requestAnimationFrame(render);
  };

  const show = (name: string) => {
    const model = info.models.find((candidate) => candidate.name === name);
    view?.destroy();
    view = undefined;
    if (model === undefined) return;
    picker.value = name;
    setText(facts, describeModel(model));
    history.replaceState(history.state, '', queryWithModel(location.search, name) + location.hash);
    view = new ModelView(grid, model, session);
    scheduleRender();
  };

  picker.addEventListener('change', () => show(picker.value));
  document.addEventListener('visibilitychange', scheduleRender);

  const first = modelFromQuery(location.search, names);
  if (first === undefined) {
    grid.appendChild(el('p', { class: 'page-error', 'data-testid': 'page-error' }, 'The server serves no models.'));
  } else {
    show(first);
  }
  root.dataset['state'] = 'ready';

  const received = new SeqWatch();
  openStream(
    (snapshot) => {
      received.see(snapshot.seq);
      document.body.dataset['receivedSeq'] = String(snapshot.seq);
      document.body.dataset['seqSkips'] = String(received.skips);
      document.body.dataset['seqRepeats'] = String(received.repeats);
      if (timeline.add(snapshot)) scheduleRender();
    },
    (state) => {
      streamStatus.dataset['state'] = state;
      setText(streamStatus, state);
    },
  );
}

void start();
