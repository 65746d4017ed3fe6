/**
 * The requests the bench sends: Fashion-MNIST test images, one image per request, in a fixed
 * shuffled order (seeded), so every policy sees the same image at the same position and answers
 * can be compared image by image. Bodies are serialised once, before any load runs.
 */
import { writeFile } from 'node:fs/promises';
import type { PreparedManifest } from '../../src/model/manifest.js';
import { readNpy } from '../../src/model/npy.js';
import { seededRandom } from '../../src/model/numeric.js';

export const TEST_IMAGES = 'models/data/fashion-mnist/test-images.npy.gz';
export const TEST_LABELS = 'models/data/fashion-mnist/test-labels.npy.gz';

export interface Dataset {
  images: number;
  labels: Int32Array;
  /** order[i]: the image sent by the i-th request of every schedule (wrapping around). */
  order: Int32Array;
}

/** Fisher–Yates with the project's seeded PRNG: the same permutation on every machine and run. */
export function shuffledOrder(n: number, seed: number): Int32Array {
  const order = Int32Array.from({ length: n }, (_, i) => i);
  const random = seededRandom(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  return order;
}

/**
 * Loads the test set and writes the bodies file (line i = image i). Pixels go as UINT8 0..255,
 * which the server scales to [0,1] (src/data-plane/convert-input.ts) exactly as `record` does, so
 * served and recorded predictions come from the same input; the bodies are also half the size
 * of FP32 text.
 */
export async function prepareDataset(manifest: PreparedManifest, bodiesPath: string, seed: number): Promise<Dataset> {
  const spec = manifest.model.inputs[0];
  if (!spec) throw new Error('the model declares no input');
  const images = await readNpy(TEST_IMAGES);
  const labels = await readNpy(TEST_LABELS);
  if (images.type !== 'uint8') throw new Error(`${TEST_IMAGES}: expected uint8 pixels, got ${images.type}`);
  const n = images.shape[0] ?? 0;
  const rowShape = images.shape.slice(1);
  const rowSize = rowShape.reduce((a, b) => a * b, 1);
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const pixels = Array.from(images.data.subarray(i * rowSize, (i + 1) * rowSize) as Uint8Array);
    lines.push(
      JSON.stringify({ inputs: [{ name: spec.name, shape: [1, ...rowShape], datatype: 'UINT8', data: pixels }] }),
    );
  }
  await writeFile(bodiesPath, lines.join('\n') + '\n');
  return {
    images: n,
    labels: Int32Array.from(labels.data as ArrayLike<number | bigint>, Number),
    order: shuffledOrder(n, seed),
  };
}

/** The images sent by `count` requests starting at schedule position `first`. */
export function imagesFor(dataset: Dataset, first: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => dataset.order[(first + i) % dataset.images] as number);
}
