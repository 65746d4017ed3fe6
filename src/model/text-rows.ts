/**
 * Text data for the offline tools (`offramp prepare`, `offramp record`) and the bench: a JSON Lines
 * file (optionally gzipped) of `{"text": "...", "label": "..."}` records, tokenized once and gathered
 * into padded batches exactly as the server pads them (src/model/token-batch.ts), so that what
 * prepare measures is what serving runs.
 */
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import type { RowSource } from './input-rows.js';
import type { HostTensor } from './tensor.js';
import type { TextSpec, TextTokenizer } from './text-tokenizer.js';
import { padTokenRows, tokenRow, type TokenRow } from './token-batch.js';

export interface TextRecord {
  text: string;
  /** The record's label when the file has one (e.g. "spam"); prepare ignores it, bench reports accuracy with it. */
  label?: string;
}

/**
 * Reads a JSONL file (`.gz` is gunzipped) of records with a string `text`.
 * @throws Error naming the file and line of the first record that is not one.
 */
export async function readTextRecords(path: string): Promise<TextRecord[]> {
  let bytes = await readFile(path);
  if (path.endsWith('.gz')) bytes = gunzipSync(bytes);
  const records: TextRecord[] = [];
  bytes
    .toString('utf8')
    .split('\n')
    .forEach((line, i) => {
      if (line.trim().length === 0) return;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        throw new Error(`${path} line ${i + 1}: not JSON (text data is JSON Lines: {"text": "..."} per line)`);
      }
      const record = value as { text?: unknown; label?: unknown };
      if (typeof record !== 'object' || record === null || typeof record.text !== 'string')
        throw new Error(`${path} line ${i + 1}: no string "text" field`);
      records.push({ text: record.text, ...(typeof record.label === 'string' ? { label: record.label } : {}) });
    });
  return records;
}

/**
 * Text labels ("spam", "ham") → class indices through the manifest's label names: what `offramp
 * record` stores and the bench scores against, so both map the same records alike.
 * @throws Error naming the file and record of a label the model does not have.
 */
export function textLabels(records: readonly TextRecord[], names: readonly string[], source: string): Int32Array {
  return Int32Array.from(records, (record, i) => {
    const index = record.label === undefined ? -1 : names.indexOf(record.label);
    if (index < 0)
      throw new Error(
        `${source} record ${i + 1}: label ${JSON.stringify(record.label ?? null)} is not one of the model's labels (${names.join(', ')})`,
      );
    return index;
  });
}

/** Texts tokenized once; `feeds` pads each gathered batch to its longest row. */
export class TextRows implements RowSource {
  readonly rows: number;
  private readonly tokens: TokenRow[];
  /** How many texts were longer than the tokenizer's maximum and were cut. */
  readonly truncated: number;

  constructor(
    texts: readonly string[],
    tokenizer: TextTokenizer,
    private readonly spec: Pick<TextSpec, 'padId' | 'inputs'>,
    limit?: number,
  ) {
    const used = texts.slice(0, limit ?? texts.length);
    let truncated = 0;
    this.tokens = used.map((text) => {
      const encoded = tokenizer.encode(text);
      if (encoded.truncated) truncated++;
      return tokenRow(encoded.ids);
    });
    this.rows = this.tokens.length;
    this.truncated = truncated;
  }

  /** Ids per row (special tokens included): the lengths batches are padded from. */
  lengthOf(row: number): number {
    return this.tokens[row]?.ids.length ?? 0;
  }

  feeds(indices: ArrayLike<number>): Record<string, HostTensor> {
    return padTokenRows(
      Array.from(indices, (i) => this.tokens[i] as TokenRow),
      this.spec,
    );
  }
}
