/**
 * Joins the rows the batcher picked — slices of one or more requests — into the feeds of one
 * batch. Dense rows (one shape for all) are concatenated under the model's single input; token
 * rows are padded to the longest row of this batch (src/model/token-batch.ts), so a batch of short
 * texts never pays for the model's maximum length.
 */
import type { PreparedManifest } from '../model/manifest.js';
import { padTokenRows, type TokenRow } from '../model/token-batch.js';
import type { BatchInput } from './backend.js';
import type { RequestRows } from './request.js';
import type { RowSlice } from './scheduler.js';

export function batchFeeds(manifest: PreparedManifest, slices: readonly RowSlice[], rows: number): BatchInput {
  const first = slices[0]?.request.input as RequestRows;
  if (first.kind === 'tokens') {
    const text = manifest.model.text;
    if (!text) throw new Error(`model '${manifest.name}' got token rows but is not a text model`);
    const tokens: TokenRow[] = [];
    for (const slice of slices) {
      const input = slice.request.input as Extract<RequestRows, { kind: 'tokens' }>;
      tokens.push(...input.tokens.slice(slice.firstRow, slice.firstRow + slice.rows));
    }
    return padTokenRows(tokens, text);
  }
  const rowSize = first.rowShape.reduce((a, b) => a * b, 1);
  const data =
    first.data instanceof BigInt64Array ? new BigInt64Array(rows * rowSize) : new Float32Array(rows * rowSize);
  let at = 0;
  for (const slice of slices) {
    const input = slice.request.input as Extract<RequestRows, { kind: 'dense' }>;
    (data as Float32Array).set(
      (input.data as Float32Array).subarray(slice.firstRow * rowSize, (slice.firstRow + slice.rows) * rowSize),
      at * rowSize,
    );
    at += slice.rows;
  }
  const name = manifest.model.inputs[0]?.name as string;
  return {
    [name]: { type: data instanceof BigInt64Array ? 'int64' : 'float32', dims: [rows, ...first.rowShape], data },
  };
}
