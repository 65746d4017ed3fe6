/**
 * The shallow ramp heads offramp trains, and how each turns a cut tensor into features.
 * The same pooling is computed here in JS (for training) and by standard ONNX ops in the
 * exported head (for serving), so the two must match exactly.
 *
 *   gap-linear  [B,C,H,W] → global average pool → linear            (the classic baseline)
 *   gap-mlp     [B,C,H,W] → global average pool → dense+ReLU → linear
 *   quad-mlp    [B,C,H,W] → 2×2 average pool (quadrants) → dense+ReLU → linear
 *               keeps coarse "where" information that early blocks need and GAP throws away
 *   pooler      [B,S,H]   → first token → dense+tanh → linear        (BERT-pooler-like)
 *   mlp         [B,F]     → dense+ReLU → linear
 */
import type { HeadKind } from '../../src/model/manifest.js';
import type { HostTensor } from '../../src/model/tensor.js';

export const HEAD_KINDS: readonly HeadKind[] = ['gap-linear', 'gap-mlp', 'quad-mlp', 'pooler', 'mlp'];

/** Which head kinds fit a cut tensor of this rank. */
export function headKindsForRank(rank: number): HeadKind[] {
  if (rank === 4) return ['gap-linear', 'gap-mlp', 'quad-mlp'];
  if (rank === 3) return ['pooler'];
  if (rank === 2) return ['mlp'];
  return [];
}

export function hasHiddenLayer(kind: HeadKind): boolean {
  return kind !== 'gap-linear';
}

export function hiddenActivation(kind: HeadKind): 'relu' | 'tanh' {
  return kind === 'pooler' ? 'tanh' : 'relu';
}

/** Kernel and stride that make ONNX AveragePool cut an n-long axis into two (overlapping if n is odd) halves. */
export function quadrantWindow(n: number): { kernel: number; stride: number } {
  const kernel = Math.ceil(n / 2);
  return { kernel, stride: Math.max(1, n - kernel) };
}

export function featureCount(kind: HeadKind, dims: readonly number[]): number {
  switch (kind) {
    case 'gap-linear':
    case 'gap-mlp':
      return dims[1] ?? 0;
    case 'quad-mlp':
      return (dims[1] ?? 0) * 4;
    case 'pooler':
      return dims[2] ?? 0;
    case 'mlp':
      return dims[1] ?? 0;
  }
}

/** Features for every row of a batch: [rows × featureCount], row-major. */
export function extractFeatures(kind: HeadKind, tensor: HostTensor): Float32Array {
  const dims = tensor.dims;
  const data = tensor.data as Float32Array;
  const rows = dims[0] ?? 0;
  const f = featureCount(kind, dims);
  const out = new Float32Array(rows * f);
  if (kind === 'gap-linear' || kind === 'gap-mlp' || kind === 'quad-mlp') {
    const [, channels = 0, height = 0, width = 0] = dims;
    const plane = height * width;
    const rowWindow = quadrantWindow(height);
    const colWindow = quadrantWindow(width);
    for (let b = 0; b < rows; b++) {
      for (let c = 0; c < channels; c++) {
        const base = (b * channels + c) * plane;
        if (kind !== 'quad-mlp') {
          let sum = 0;
          for (let i = 0; i < plane; i++) sum += data[base + i] as number;
          out[b * f + c] = sum / plane;
          continue;
        }
        // Flatten order of [B,C,2,2]: channel-major, then row quadrant, then column quadrant.
        for (let qi = 0; qi < 2; qi++) {
          for (let qj = 0; qj < 2; qj++) {
            let sum = 0;
            const r0 = qi * rowWindow.stride;
            const c0 = qj * colWindow.stride;
            for (let r = r0; r < r0 + rowWindow.kernel; r++) {
              for (let col = c0; col < c0 + colWindow.kernel; col++) sum += data[base + r * width + col] as number;
            }
            out[b * f + c * 4 + qi * 2 + qj] = sum / (rowWindow.kernel * colWindow.kernel);
          }
        }
      }
    }
  } else if (kind === 'pooler') {
    const [, seq = 0, hidden = 0] = dims;
    for (let b = 0; b < rows; b++) out.set(data.subarray(b * seq * hidden, b * seq * hidden + hidden), b * f);
  } else {
    out.set(data.subarray(0, rows * f));
  }
  return out;
}
