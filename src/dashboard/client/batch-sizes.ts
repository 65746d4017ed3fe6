/**
 * The batch-size distribution panel's data: the buckets of `offramp_batch_size` as bar labels and
 * the batches per bucket summed over a recent span. Pure (no DOM): tested in Node.
 */

import { formatCount, formatShare } from './format.js';
import type { TimelineEntry } from './timeline.js';

/**
 * One label per bucket of `upperBounds` (ascending; batch sizes are whole numbers), plus the last
 * bucket, "more": [1, 2, 4, 8] → ["1", "2", "3–4", "5–8", ">8"].
 */
export function bucketLabels(upperBounds: readonly number[]): string[] {
  const labels: string[] = [];
  let lower = 1;
  for (const upper of upperBounds) {
    labels.push(upper <= lower ? String(upper) : `${lower}–${upper}`);
    lower = Math.floor(upper) + 1;
  }
  labels.push(upperBounds.length === 0 ? 'all' : `>${upperBounds.at(-1)}`);
  return labels;
}

/**
 * Batches per bucket over `entries` for `model`: `bucketCount` sums (the buckets plus "more");
 * a snapshot whose list is shorter or longer (the model was reloaded with other buckets) adds
 * what fits.
 */
export function sumBatchSizes(entries: readonly TimelineEntry[], model: string, bucketCount: number): number[] {
  const totals = new Array<number>(bucketCount).fill(0);
  for (const { snapshot } of entries) {
    const counts = snapshot.models[model]?.batchSizes ?? [];
    for (let i = 0; i < bucketCount && i < counts.length; i++) totals[i]! += counts[i]!;
  }
  return totals;
}

/**
 * The batch-size readout: the most frequent bucket with its share, and how many batches the
 * counts hold ("mostly 5–8 (42 %) of 120 batches"); "no batches" when there were none.
 */
export function describeBatchSizes(labels: readonly string[], counts: readonly number[]): string {
  const total = counts.reduce((sum, count) => sum + count, 0);
  if (total === 0) return 'no batches';
  let mode = 0;
  counts.forEach((count, i) => {
    if (count > counts[mode]!) mode = i;
  });
  return `mostly ${labels[mode] ?? '?'} (${formatShare(counts[mode]! / total)}) of ${formatCount(total, 'batch', 'batches')}`;
}
