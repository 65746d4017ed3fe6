/**
 * The requests the bench sends: the workload's test items (bench/lib/workload.ts: Fashion-MNIST
 * images or SpamAssassin emails), one item per request, in a fixed shuffled order (seeded), so
 * every policy sees the same item at the same position and answers can be compared item by item.
 * Bodies are serialised once, before any load runs.
 */
import { writeFile } from 'node:fs/promises';
import { seededRandom } from '../../src/model/numeric.js';
import type { Workload } from './workload.js';

export interface Dataset {
  /** How many test items there are (schedules cycle through them). */
  items: number;
  /** True class per item. */
  labels: Int32Array;
  /** order[i]: the item sent by the i-th request of every schedule (wrapping around). */
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

/** Loads the workload's test items and writes the bodies file (line i = item i, a KServe v2 JSON body). */
export async function prepareDataset(workload: Workload, bodiesPath: string, seed: number): Promise<Dataset> {
  const { inputs, labels } = await workload.testItems();
  await writeFile(bodiesPath, inputs.map((input) => JSON.stringify({ inputs: [input] })).join('\n') + '\n');
  return { items: inputs.length, labels, order: shuffledOrder(inputs.length, seed) };
}

/** The items sent by `count` requests starting at schedule position `first`. */
export function itemsFor(dataset: Dataset, first: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => dataset.order[(first + i) % dataset.items] as number);
}
