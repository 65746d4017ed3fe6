/**
 * What-if: a budget slider, and what the tuner would choose at that budget on its current feedback
 * window (`/dashboard/api/what-if`) beside the thresholds in force. Requests follow the slider
 * after it rests (debounced), and an answer that arrives after a newer request was made is
 * dropped, so the figures always belong to the budget shown. "Apply" pins the what-if thresholds.
 */

import type { DashboardModelInfo, ExitKey, WhatIfReport } from '../protocol.js';
import type { AdminSession } from './admin.js';
import { controlsState, ROUTES } from './api.js';
import { BUDGET_POSITIONS, budgetAt, positionOf } from './budget-scale.js';
import { el, setText } from './dom.js';
import { describeThresholds, pinnableExits } from './exits.js';
import { formatCount, formatShare, MISSING } from './format.js';
import { requestJson } from './http.js';
import { panel } from './panel.js';

const DEBOUNCE_MS = 300;

export type Pin = (thresholds: Record<ExitKey, number | null>, what: string) => Promise<boolean>;

interface FigureRow {
  whatIf: HTMLElement;
  current: HTMLElement;
}

export class WhatIfPanel {
  readonly #model: DashboardModelInfo;
  readonly #session: AdminSession;
  readonly #pin: Pin;
  readonly #section: HTMLElement;
  readonly #slider: HTMLInputElement;
  readonly #budgetText: HTMLElement;
  readonly #rows: Record<'thresholds' | 'early' | 'savings' | 'disagreement', FigureRow>;
  readonly #status: HTMLElement;
  readonly #apply: HTMLButtonElement;
  readonly #unsubscribe: () => void;
  #budget: number;
  #report: WhatIfReport | undefined;
  #timer: number | undefined;
  #inFlight: AbortController | undefined;
  #destroyed = false;

  constructor(root: HTMLElement, model: DashboardModelInfo, session: AdminSession, pin: Pin) {
    this.#model = model;
    this.#session = session;
    this.#pin = pin;
    this.#budget = model.accuracy.budget;
    const p = panel(root, 'what-if', 'What-if budget', "the tuner's choice on the current feedback window");
    this.#section = p.section;

    this.#slider = el('input', {
      type: 'range',
      id: 'whatif-budget',
      'data-testid': 'whatif-budget',
      min: '0',
      max: String(BUDGET_POSITIONS),
      step: '1',
      'aria-label': 'accuracy budget',
    });
    this.#slider.value = String(positionOf(this.#budget));
    this.#slider.addEventListener('input', () => {
      this.#budget = budgetAt(Number(this.#slider.value));
      this.#showBudget();
      this.#schedule();
    });
    this.#budgetText = el('span', { class: 'budget-value', 'data-testid': 'whatif-budget-value' });

    const row = (name: string, label: string): FigureRow & { tr: HTMLTableRowElement } => {
      const whatIf = el('td', { 'data-testid': `whatif-${name}` }, MISSING);
      const current = el('td', { 'data-testid': `whatif-current-${name}` }, MISSING);
      return { whatIf, current, tr: el('tr', {}, el('th', { scope: 'row' }, label), whatIf, current) };
    };
    const thresholds = row('thresholds', 'thresholds');
    const early = row('early', 'answered early');
    const savings = row('savings', 'predicted saving');
    const disagreement = row('disagreement', 'disagreement');
    this.#rows = { thresholds, early, savings, disagreement };

    this.#status = el('p', { class: 'hint', 'data-testid': 'whatif-status' }, 'Asking the tuner…');
    this.#apply = el('button', { type: 'button', 'data-testid': 'whatif-apply' }, 'Apply: pin these thresholds');
    this.#apply.addEventListener('click', () => void this.#applyReport());

    p.charts.appendChild(
      el(
        'div',
        { class: 'what-if' },
        el('label', { class: 'field', for: 'whatif-budget' }, 'Budget', this.#slider, this.#budgetText),
        el(
          'table',
          { class: 'figures' },
          el(
            'thead',
            {},
            el('tr', {}, el('th', {}), el('th', { scope: 'col' }, 'what-if'), el('th', { scope: 'col' }, 'now')),
          ),
          el('tbody', {}, thresholds.tr, early.tr, savings.tr, disagreement.tr),
        ),
        el('div', { class: 'button-row' }, this.#apply),
        this.#status,
      ),
    );
    this.#showBudget();
    this.#unsubscribe = session.onChange(() => this.#refreshApply());
    this.#refreshApply();
  }

  /** Asks for the what-if at the current budget now (the panel's first figures). */
  load(): void {
    void this.#request();
  }

  destroy(): void {
    this.#destroyed = true;
    window.clearTimeout(this.#timer);
    this.#inFlight?.abort();
    this.#unsubscribe();
    this.#section.remove();
  }

  #showBudget(): void {
    const own = this.#budget === this.#model.accuracy.budget ? " (the model's)" : '';
    setText(this.#budgetText, `${formatShare(this.#budget)}${own}`);
  }

  #schedule(): void {
    window.clearTimeout(this.#timer);
    this.#timer = window.setTimeout(() => void this.#request(), DEBOUNCE_MS);
  }

  async #request(): Promise<void> {
    this.#inFlight?.abort();
    const controller = new AbortController();
    this.#inFlight = controller;
    const budget = this.#budget;
    setText(this.#status, `Asking the tuner at ${formatShare(budget)}…`);
    const outcome = await requestJson<WhatIfReport>(ROUTES.whatIf(this.#model.name, budget), {
      signal: controller.signal,
    });
    // A newer request (or the panel's end) supersedes this one: its figures would not match the slider.
    if (this.#destroyed || this.#inFlight !== controller) return;
    this.#inFlight = undefined;
    if (!outcome.ok) {
      this.#report = undefined;
      this.#showFigures();
      setText(this.#status, outcome.message);
      return;
    }
    this.#report = outcome.value;
    this.#showFigures();
    setText(
      this.#status,
      `At ${formatShare(outcome.value.budget)}, on ${formatCount(outcome.value.rows, 'feedback row')} of the window.`,
    );
  }

  #showFigures(): void {
    const report = this.#report;
    const { thresholds, early, savings, disagreement } = this.#rows;
    if (report === undefined) {
      for (const row of [thresholds, early, savings, disagreement]) {
        setText(row.whatIf, MISSING);
        setText(row.current, MISSING);
      }
    } else {
      setText(thresholds.whatIf, describeThresholds(this.#model, report.thresholds));
      setText(thresholds.current, describeThresholds(this.#model, report.current.thresholds));
      setText(early.whatIf, formatShare(report.earlyShare));
      setText(early.current, formatShare(report.current.earlyShare));
      setText(savings.whatIf, formatShare(report.predictedSavings));
      setText(savings.current, formatShare(report.current.predictedSavings));
      const bound = report.upperBound === null ? '' : ` (bound ${formatShare(report.upperBound)})`;
      setText(disagreement.whatIf, `${formatShare(report.disagreement)}${bound}`);
      setText(disagreement.current, formatShare(report.current.disagreement));
    }
    this.#refreshApply();
  }

  #refreshApply(): void {
    const state = controlsState(this.#session.enabled, this.#session.token, this.#model.online);
    const hasRamps = pinnableExits(this.#model).length > 0;
    this.#apply.disabled = !state.admin || !hasRamps || this.#report === undefined;
    this.#apply.title = !state.admin
      ? state.reason
      : !hasRamps
        ? 'This model has no ramps to pin.'
        : this.#report === undefined
          ? 'No what-if figures to apply.'
          : 'Pins these thresholds through the admin endpoint.';
  }

  async #applyReport(): Promise<void> {
    const report = this.#report;
    if (report === undefined) return;
    const applied = await this.#pin(report.thresholds, `apply what-if at ${formatShare(report.budget)}`);
    // The "now" column changed: ask again so it shows the pinned thresholds.
    if (applied && !this.#destroyed) void this.#request();
  }
}
