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

/** The seedable PRNG every reproducible draw uses (defined in the pure layer: replay draws probes too). */
export { seededRandom } from '../../tuner/seeded-random.js';
