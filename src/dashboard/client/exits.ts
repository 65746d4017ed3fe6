/**
 * A model's exits as the page names and orders them, and the admin endpoints' view of them (ramp
 * ids). Pure (no DOM): tested in Node.
 *
 * Exit keys are the metrics' `exit` label: with a cascade of T tiers, tiers are exits 0..T−1 and
 * ramp r is exit T + r (src/metrics.ts); the admin endpoints take ramp ids, so a ramp's key
 * minus the tier count is what they are sent. "final" is the full model.
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

/** The exits that have thresholds an operator can pin: the ramps. */
export function rampViews(model: DashboardModelInfo): ExitView[] {
  return exitViews(model).filter((view) => view.kind === 'ramp');
}

/** The ramp id the admin endpoints know exit `key` by; undefined for a tier, "final" or an unknown key. */
export function rampIdOf(model: DashboardModelInfo, key: ExitKey): number | undefined {
  const exit = model.exits.find((candidate) => candidate.key === key);
  if (exit?.kind !== 'ramp' || !/^\d+$/.test(key)) return undefined;
  const tiers = model.exits.filter((candidate) => candidate.kind === 'tier').length;
  return Number(key) - tiers;
}

/** The exit key of ramp `rampId` (the inverse of rampIdOf). */
export function exitKeyOfRamp(model: DashboardModelInfo, rampId: number): ExitKey {
  const tiers = model.exits.filter((candidate) => candidate.kind === 'tier').length;
  return String(rampId + tiers);
}

/**
 * The body of `PUT /v2/models/{m}/admin/thresholds` pinning these exits' thresholds: ramp id →
 * threshold (null = never). Exits that are not ramps are left out: only ramps can be pinned.
 */
export function pinRequestBody(
  model: DashboardModelInfo,
  thresholds: Record<ExitKey, number | null>,
): { thresholds: Record<string, number | null> } {
  const byRamp: Record<string, number | null> = {};
  for (const [key, threshold] of Object.entries(thresholds)) {
    const rampId = rampIdOf(model, key);
    if (rampId !== undefined) byRamp[String(rampId)] = threshold;
  }
  return { thresholds: byRamp };
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
