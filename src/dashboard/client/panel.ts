/**
 * A panel of the grid: a title, its chart(s), and beside them the readouts, whose values carry
 * `data-readout="<name>"` (the browser tests' hooks; the names are listed in app.ts). Also the
 * page's colours, so one series keeps one colour in every panel.
 */

import { el } from './dom.js';
import { MISSING } from './format.js';

export const COLORS = {
  p50: '#2b7bb9',
  p95: '#e08a00',
  p99: '#c0392b',
  limit: '#4a4f55',
  answers: '#2e8b57',
  errors: '#c0392b',
  queue: '#6a51a3',
  running: '#2b7bb9',
  disagreement: '#c0392b',
  bound: '#e08a00',
  savings: '#2e8b57',
  hindsight: '#6a51a3',
  cpu: '#2b7bb9',
  bars: '#6a8fb5',
} as const;

/** Exits in order; "final" (the full model) is always the neutral grey. */
const EXIT_PALETTE = ['#2b7bb9', '#2e8b57', '#e08a00', '#8e44ad', '#16a085', '#d35400', '#b5475d', '#5b6abf'];
export const FINAL_COLOR = '#aab2bd';

export function exitColor(index: number): string {
  return EXIT_PALETTE[index % EXIT_PALETTE.length]!;
}

/** A translucent version of a #rrggbb colour, for fills. */
export function tint(color: string, alpha: number): string {
  const value = Number.parseInt(color.slice(1), 16);
  return `rgba(${(value >> 16) & 255}, ${(value >> 8) & 255}, ${value & 255}, ${alpha})`;
}

export interface Panel {
  section: HTMLElement;
  charts: HTMLElement;
  readouts: HTMLElement;
  /** Under the chart and readouts: lists, notes. */
  foot: HTMLElement;
}

export function panel(parent: HTMLElement, name: string, title: string, note?: string): Panel {
  const charts = el('div', { class: 'panel-charts' });
  const readouts = el('div', { class: 'panel-readouts' });
  const foot = el('div', { class: 'panel-foot' });
  const section = el(
    'section',
    { class: 'panel', 'data-panel': name },
    el('h2', {}, title, note === undefined ? null : el('span', { class: 'panel-note' }, note)),
    el('div', { class: 'panel-body' }, charts, readouts),
    foot,
  );
  parent.appendChild(section);
  return { section, charts, readouts, foot };
}

/** A labelled value beside a chart; returns the element whose text is the value. */
export function readout(parent: HTMLElement, name: string, label: string, color?: string): HTMLElement {
  const value = el('span', { class: 'readout-value', 'data-readout': name }, MISSING);
  parent.appendChild(
    el(
      'div',
      { class: 'readout' },
      el('span', { class: 'readout-label' }, color === undefined ? null : swatch(color), label),
      value,
    ),
  );
  return value;
}

/**
 * A small colour square tying a readout to its line. Coloured through the CSSOM, which the CSP
 * allows (it forbids style attributes in markup and setAttribute('style'), as uPlot also relies on).
 */
export function swatch(color: string): HTMLElement {
  const square = el('span', { class: 'swatch' });
  square.style.backgroundColor = color;
  return square;
}
