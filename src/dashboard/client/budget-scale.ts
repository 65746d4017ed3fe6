/**
 * The what-if budget slider's scale: logarithmic from 0.1 % to 10 % in steps of a twentieth of a
 * decade (each step ×1.12), so the small budgets people use get as much travel as the large ones.
 * Pure (no DOM): tested in Node.
 */

export const BUDGET_MIN = 0.001;
export const BUDGET_MAX = 0.1;
export const STEPS_PER_DECADE = 20;
/** The range input's `max` (its `min` is 0, its `step` 1). */
export const BUDGET_POSITIONS = Math.round(Math.log10(BUDGET_MAX / BUDGET_MIN) * STEPS_PER_DECADE);

/** The budget at slider position `position`, rounded to two significant digits (0.0011, not 0.001122…). */
export function budgetAt(position: number): number {
  const clamped = Math.min(BUDGET_POSITIONS, Math.max(0, Math.round(position)));
  const exact = BUDGET_MIN * 10 ** (clamped / STEPS_PER_DECADE);
  return Number(exact.toPrecision(2));
}

/** The slider position nearest to `budget` (clamped to the scale). */
export function positionOf(budget: number): number {
  if (!(budget > 0)) return 0;
  const position = Math.round(Math.log10(budget / BUDGET_MIN) * STEPS_PER_DECADE);
  return Math.min(BUDGET_POSITIONS, Math.max(0, position));
}
