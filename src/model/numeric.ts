/**
 * Row-wise numeric helpers shared by the offline pipeline (ramps/: training, calibration,
 * prepare) and the engine (src/engine/: final-layer probabilities, feedback records). One
 * definition each, so what prepare measured a head against and what serving computes cannot drift.
 * Rows are [rows × classes] matrices, row-major.
 */

/** softmax(logits / t) per row, computed against the row's maximum so large logits cannot overflow. */
export function softmaxRows(logits: Float32Array, classes: number, t = 1): Float32Array {
  const out = new Float32Array(logits.length);
  for (let r = 0; r < logits.length / classes; r++) {
    let max = -Infinity;
    for (let c = 0; c < classes; c++) max = Math.max(max, (logits[r * classes + c] as number) / t);
    let sum = 0;
    for (let c = 0; c < classes; c++) {
      const e = Math.exp((logits[r * classes + c] as number) / t - max);
      out[r * classes + c] = e;
      sum += e;
    }
    for (let c = 0; c < classes; c++) out[r * classes + c] = (out[r * classes + c] as number) / sum;
  }
  return out;
}

/** Index of the largest value per row; on a tie, the first (lowest) class. */
export function argmaxRows(values: ArrayLike<number>, classes: number): Int32Array {
  const rows = values.length / classes;
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < classes; c++)
      if ((values[r * classes + c] as number) > (values[r * classes + best] as number)) best = c;
    out[r] = best;
  }
  return out;
}

/**
 * A small, fast, seedable PRNG (mulberry32), so every draw can be reproduced: verification
 * inputs, head-training splits, replay resampling, bench schedules, and the executor's probe
 * draws (seeded at random in serving, fixed by tests).
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
