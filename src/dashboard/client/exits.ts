/**
 * A model's exits as the page names and orders them, and the ids the admin endpoints take. Pure (no DOM): tested in Node.
 *
 * Exit keys are the metrics' `exit` label: with a cascade of T tiers, tiers are exits 0..T−1 and
 * ramp r is exit T + r (src/metrics.ts). The admin endpoints number a model's exits the same way
 * (a tier's θ can be pinned like a ramp's threshold), so a key is sent as it is. "final" is the
 * full model.
 */

import type { DashboardModelInfo, ExitKey } from '../protocol.js';
import { formatThreshold } from './format.js';

export const FINAL_EXIT: ExitKey = 'final';

export interface ExitView {
  key: ExitKey;
  label: string;
  kind: 'tier' | 'ramp' | 'final';
}

/** Every exit in answering order (tiers, ramps, then the full model), "final" added if info leaves it out. */
export function exitViews(model: DashboardModelInfo): ExitView[] {
  const views: ExitView[] = model.exits.map((exit) => ({ key: exit.key, label: exit.label, kind: exit.kind }));
  if (!views.some((view) => view.key === FINAL_EXIT)) views.push({ key: FINAL_EXIT, label: 'final', kind: 'final' });
  return views;
}

/** The exits that have thresholds an operator can pin: the cascade's tiers and the ramps (not "final"). */
export function pinnableExits(model: DashboardModelInfo): ExitView[] {
  return exitViews(model).filter((view) => view.kind !== 'final');
}

/**
 * The id the admin endpoints know exit `key` by — the exit id itself (a served cascade's exits
 * view numbers its tiers and ramps as exits, src/model/cascade.ts) — or undefined for "final" or a
 * key the model does not have.
 */
export function adminIdOf(model: DashboardModelInfo, key: ExitKey): number | undefined {
  const exit = model.exits.find((candidate) => candidate.key === key);
  if (exit === undefined || !/^\d+$/.test(key)) return undefined;
  return Number(key);
}

/**
 * The body of `PUT /v2/models/{m}/admin/thresholds` pinning these exits' thresholds: exit id →
 * threshold (null = never). "final" and unknown keys are left out.
 */
export function pinRequestBody(
  model: DashboardModelInfo,
  thresholds: Record<ExitKey, number | null>,
): { thresholds: Record<string, number | null> } {
  const byExit: Record<string, number | null> = {};
  for (const [key, threshold] of Object.entries(thresholds)) {
    const id = adminIdOf(model, key);
    if (id !== undefined) byExit[String(id)] = threshold;
  }
  return { thresholds: byExit };
}

/** Thresholds as one line, in exit order: "ramp 0 0.93 · ramp 1 never (pinned)". */
export function describeThresholds(
  model: DashboardModelInfo,
  thresholds: Record<ExitKey, number | null>,
  pinned: readonly ExitKey[] = [],
): string {
  const parts = exitViews(model)
    .filter((view) => view.key in thresholds)
    .map(
      (view) =>
        `${view.label} ${formatThreshold(thresholds[view.key] ?? null)}${pinned.includes(view.key) ? ' (pinned)' : ''}`,
    );
  return parts.length === 0 ? 'none' : parts.join(' · ');
}
