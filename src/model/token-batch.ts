/**
 * Rows of token ids of different lengths → the feeds of one batch of a text model: `input_ids`
 * and `attention_mask` (and `token_type_ids`, all 0, when the model declares it), each
 * [rows, longest row]. A batch is padded only to its own longest row, never to the model's
 * maximum: attention costs grow with the square of the length, and most texts are short.
 */
import type { TextSpec } from './text-tokenizer.js';
import type { HostTensor } from './tensor.js';

/** One row as the model reads it, unpadded: its ids and their attention mask (1 = a real token). */
export interface TokenRow {
  ids: BigInt64Array;
  mask: BigInt64Array;
}

export function padTokenRows(
  rows: readonly TokenRow[],
  spec: Pick<TextSpec, 'padId' | 'inputs'>,
): Record<string, HostTensor> {
  const n = rows.length;
  const length = rows.reduce((longest, r) => Math.max(longest, r.ids.length), 0);
  const ids = new BigInt64Array(n * length).fill(BigInt(spec.padId));
  const mask = new BigInt64Array(n * length);
  rows.forEach((row, i) => {
    ids.set(row.ids, i * length);
    mask.set(row.mask, i * length);
  });
  const dims = [n, length];
  const feeds: Record<string, HostTensor> = {
    [spec.inputs.ids]: { type: 'int64', data: ids, dims },
    [spec.inputs.mask]: { type: 'int64', data: mask, dims: [...dims] },
  };
  if (spec.inputs.typeIds !== undefined)
    feeds[spec.inputs.typeIds] = { type: 'int64', data: new BigInt64Array(n * length), dims: [...dims] };
  return feeds;
}

/** A text's ids as a row: every position attended. */
export function tokenRow(ids: BigInt64Array): TokenRow {
  return { ids, mask: new BigInt64Array(ids.length).fill(1n) };
}
