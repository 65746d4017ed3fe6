// The learned path (tuner/guarded.ts frontierPath) on incremental sweeps (window-eval.ts
// LooseningSearch): at every step, the move it makes is the one a full sweep of every ramp over
// every row picks from the same setting — or one whose saving per added disagreement ties with
// it — and its running totals are those of the setting it reached.
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readTrace, resampleRecords } from '../src/cli/replay-command.js';
import type { FeedbackRecord } from '../tuner/feedback-record.js';
import { frontierPath, pathQuantiles } from '../tuner/guarded.js';
import { sortByScore, WindowEvaluator, type WindowEvalOptions } from '../tuner/window-eval.js';
import { prng } from './fixtures/synthetic-trace.js';

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/traces/${name}`, import.meta.url));
const EPS = 1e-9;

interface Move {
  ramp: number;
  candidate: number;
  free: boolean;
  value: number;
}

/**
 * The steepest next move from `vector` (ramps at `positions`), found as frontierPath found it
 * before its sweeps were incremental: sweep every ramp over every row.
 */
function sweptMove(
  ev: WindowEvaluator,
  candidates: readonly Float64Array[],
  vector: Float64Array,
  positions: readonly number[],
  maxDisagreements: number,
): Move | null {
  const current = ev.totals(vector);
  let best: Move | null = null;
  candidates.forEach((cands, j) => {
    const from = positions[j] as number;
    if (from >= cands.length) return;
    const s = ev.sweep(j, vector, cands);
    for (let c = from + 1; c <= Math.min(cands.length, from + 3); c++) {
      const saved = current.latencyTotalMs - (s.latencyTotalMs[c] as number);
      if (saved <= EPS) continue;
      const total = s.disagreements[c] as number;
      if (total > maxDisagreements + EPS) continue;
      const added = total - current.disagreements;
      const free = added <= EPS;
      const value = free ? saved : saved / added;
      if (!best || (free && !best.free) || (free === best.free && value > best.value + EPS))
        best = { ramp: j, candidate: c, free, value };
    }
  });
  return best;
}

/** Saving per added disagreement (or saving, for a free move) of moving ramp j to candidate c, by a sweep. */
function sweptValue(ev: WindowEvaluator, cands: Float64Array, vector: Float64Array, j: number, c: number): number {
  const current = ev.totals(vector);
  const s = ev.sweep(j, vector, cands);
  const saved = current.latencyTotalMs - (s.latencyTotalMs[c] as number);
  const added = (s.disagreements[c] as number) - current.disagreements;
  return added <= EPS ? saved : saved / added;
}

function checkPath(rows: readonly FeedbackRecord[], options: WindowEvalOptions, budget: number): number {
  const ev = new WindowEvaluator(rows, { ...options, smoothDisagreement: true });
  const quantiles = pathQuantiles(ev.rows, options.activeRamps.length);
  const maxDisagreements = Math.ceil(2 * budget * ev.countedRows) + 2;
  const candidates = options.activeRamps.map((_, j) => ev.candidates(j, quantiles));
  const path = [...frontierPath(ev, { quantiles, maxDisagreements })];
  const positions = options.activeRamps.map(() => 0);
  let ties = 0;
  for (let s = 0; s < path.length; s++) {
    const point = path[s]!;
    const totals = ev.totals(point.vector);
    expect(point.latencyTotalMs).toBeCloseTo(totals.latencyTotalMs, 6);
    expect(point.disagreements).toBeCloseTo(totals.disagreements, 9);
    const swept = sweptMove(ev, candidates, point.vector, positions, maxDisagreements);
    const next = path[s + 1];
    if (!next) {
      expect(swept, `no move after setting ${s}`).toBeNull();
      break;
    }
    const ramp = next.vector.findIndex((t, j) => t !== point.vector[j]);
    const candidate = candidates[ramp]!.indexOf(next.vector[ramp]!) + 1;
    expect(swept).not.toBeNull();
    if (swept!.ramp !== ramp || swept!.candidate !== candidate) {
      // A tie: the sweep values both moves the same, up to its own rounding.
      const value = sweptValue(ev, candidates[ramp]!, point.vector, ramp, candidate);
      expect(Math.abs(value - swept!.value), `setting ${s}`).toBeLessThanOrEqual(1e-9 * Math.abs(swept!.value));
      ties++;
    }
    positions[ramp] = candidate;
  }
  expect(path.length).toBeGreaterThan(20);
  return ties;
}

describe('sortByScore', () => {
  it('orders the rows that can exit by score, highest first, ties by row, as a comparator sort does', () => {
    const random = prng(5);
    const rows = 5000;
    const special = [Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY, -0, 0, Number.NaN];
    // Two columns: scores with many ties (two decimals), and the special values among them.
    const scores = Float64Array.from({ length: 2 * rows }, (_, k) =>
      k >= rows && random() < 0.2
        ? (special[Math.floor(random() * special.length)] as number)
        : Math.round(random() * 100) / 100 - 0.5,
    );
    for (const j of [0, 1]) {
      const column = scores.subarray(j * rows, (j + 1) * rows);
      const expected = Array.from({ length: rows }, (_, i) => i)
        .filter((i) => (column[i] as number) > Number.NEGATIVE_INFINITY)
        .sort((a, b) => {
          const x = column[a] as number;
          const y = column[b] as number;
          return x === y ? a - b : y > x ? 1 : -1;
        });
      expect([...sortByScore(scores, rows, j)]).toEqual(expected);
    }
  });
});

describe('frontierPath on incremental sweeps', () => {
  it('moves as full sweeps would, on the recorded traces, for 1, 3 and 8 ramps', async () => {
    let ties = 0;
    for (const name of ['fmnist-stationary.jsonl.gz', 'fmnist-shifted.jsonl.gz']) {
      const { header, records } = await readTrace(fixture(name));
      for (const [activeRamps, rows, budget] of [
        [[2], 20_000, 0.01],
        [[0, 3, 5], 10_000, 0.01],
        [[0, 3, 5], 3_000, 0.02],
        [[0, 1, 2, 3, 4, 5, 6, 7], 6_000, 0.01],
      ] as const) {
        // What a live server feeds back: the readings of the active ramps.
        const stream = resampleRecords(records, rows, rows).map((r) => ({
          ...r,
          ramps: r.ramps.filter((x) => (activeRamps as readonly number[]).includes(x.id)),
        }));
        ties += checkPath(
          stream,
          { activeRamps, rule: { policy: header.policy, patience: 2 }, profile: header.profile },
          budget,
        );
      }
    }
    console.log(`frontierPath: ${ties} moves tied with the swept move (the sweep breaks such ties by rounding)`);
  }, 600_000);
});
