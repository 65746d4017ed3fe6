/**
 * A text model's request inputs → token rows, at the boundary, so that a bad row is refused
 * before it can share a batch with anyone (a token id outside the vocabulary would make
 * onnxruntime fail the whole batch).
 *
 * Two ways in, never mixed in one request:
 *  - `text` (BYTES, shape [N] or [N,1]): each element is tokenized here with the model's own
 *    tokenizer.json and cut to its maximum length (the response says how many rows were cut);
 *  - `input_ids` + `attention_mask` (INT64 or INT32, both [N,S]), as a Hugging Face tokenizer on
 *    the client produces them; `token_type_ids` may come along when the model has it and must be 0.
 *    Trailing positions whose mask is 0 are dropped: the batch is padded again to its own longest
 *    row, and a masked position changes no attended one.
 */
import { OfframpError } from '../errors.js';
import type { PreparedManifest } from '../model/manifest.js';
import type { TextSpec, TextTokenizer } from '../model/text-tokenizer.js';
import { tokenRow, type TokenRow } from '../model/token-batch.js';
import type { RequestRows } from '../engine/request.js';
import type { InputTensor, TensorMetadata } from './types.js';
import { shapeText } from './tensor-bytes.js';

export interface ConvertedText {
  input: Extract<RequestRows, { kind: 'tokens' }>;
  /** Rows whose text had more ids than the model's maximum length and was cut. */
  truncatedRows: number;
}

const ID_DATATYPES = ['INT64', 'INT32'];

/** The text model's inputs as metadata offers them: the text, or the ids and mask (and type ids) of a tokenizer. */
export function textInputMetadata(text: TextSpec): TensorMetadata[] {
  return [
    { name: text.textInput, datatype: 'BYTES', shape: [-1] },
    { name: text.inputs.ids, datatype: 'INT64', shape: [-1, -1] },
    { name: text.inputs.mask, datatype: 'INT64', shape: [-1, -1] },
    ...(text.inputs.typeIds ? [{ name: text.inputs.typeIds, datatype: 'INT64' as const, shape: [-1, -1] }] : []),
  ];
}

export function convertTextInput(
  modelName: string,
  manifest: PreparedManifest,
  tokenizer: TextTokenizer,
  inputs: InputTensor[],
): ConvertedText {
  const text = manifest.model.text as TextSpec;
  const known = textInputMetadata(text).map((m) => m.name);
  const byName = new Map<string, InputTensor>();
  for (const input of inputs) {
    if (!known.includes(input.name))
      throw new OfframpError('OFFRAMP_UNKNOWN_INPUT', {
        model: modelName,
        input: input.name,
        expected: `'${text.textInput}', or '${text.inputs.ids}' + '${text.inputs.mask}'`,
      });
    if (byName.has(input.name))
      throw new OfframpError('OFFRAMP_INVALID_REQUEST', { reason: `input '${input.name}' is given twice` });
    byName.set(input.name, input);
  }
  const textTensor = byName.get(text.textInput);
  if (textTensor) {
    if (byName.size > 1)
      throw new OfframpError('OFFRAMP_INVALID_REQUEST', {
        reason: `send either '${text.textInput}' or the token inputs ('${text.inputs.ids}' + '${text.inputs.mask}'), not both`,
      });
    return fromText(textTensor, tokenizer);
  }
  if (byName.size === 0) throw new OfframpError('OFFRAMP_MISSING_INPUT', { model: modelName, input: text.textInput });
  for (const name of [text.inputs.ids, text.inputs.mask]) {
    if (!byName.has(name)) throw new OfframpError('OFFRAMP_MISSING_INPUT', { model: modelName, input: name });
  }
  return fromTokens(text, tokenizer, byName);
}

function fromText(tensor: InputTensor, tokenizer: TextTokenizer): ConvertedText {
  if (tensor.datatype !== 'BYTES')
    throw new OfframpError('OFFRAMP_WRONG_DATATYPE', {
      input: tensor.name,
      got: tensor.datatype,
      expected: 'BYTES (UTF-8 text)',
    });
  const shape = tensor.shape;
  const shapeOk =
    (shape.length === 1 || (shape.length === 2 && shape[1] === 1)) && Number.isInteger(shape[0]) && shape[0]! >= 1;
  if (!shapeOk)
    throw new OfframpError('OFFRAMP_WRONG_SHAPE', {
      input: tensor.name,
      got: shapeText(shape),
      expected: '[N] or [N,1] (one text per row)',
    });
  const rows = shape[0] as number;
  if (tensor.data.length !== rows)
    throw new OfframpError('OFFRAMP_ELEMENT_COUNT_MISMATCH', {
      input: tensor.name,
      got: tensor.data.length,
      shape: shapeText(shape),
      expected: rows,
    });
  const tokens: TokenRow[] = [];
  let truncatedRows = 0;
  for (let i = 0; i < rows; i++) {
    const value = tensor.data[i];
    // The transports hand BYTES over as strings (and refuse invalid UTF-8 as they decode it).
    if (typeof value !== 'string')
      throw new OfframpError('OFFRAMP_WRONG_DATATYPE', { input: tensor.name, got: typeof value, expected: 'BYTES' });
    if (value.trim().length === 0)
      throw new OfframpError('OFFRAMP_INVALID_TEXT', {
        input: tensor.name,
        element: i,
        reason: 'the text is empty; there is nothing to classify',
      });
    const encoded = tokenizer.encode(value);
    if (encoded.truncated) truncatedRows++;
    tokens.push(tokenRow(encoded.ids));
  }
  return { input: { kind: 'tokens', rows, tokens }, truncatedRows };
}

function fromTokens(text: TextSpec, tokenizer: TextTokenizer, byName: Map<string, InputTensor>): ConvertedText {
  const names = { ids: text.inputs.ids, mask: text.inputs.mask };
  const refuse = (reason: string): never => {
    throw new OfframpError('OFFRAMP_INVALID_TOKENS', { ...names, reason });
  };
  const ids = byName.get(text.inputs.ids) as InputTensor;
  const mask = byName.get(text.inputs.mask) as InputTensor;
  const typeIds = text.inputs.typeIds === undefined ? undefined : byName.get(text.inputs.typeIds);
  const tensors = [ids, mask, ...(typeIds ? [typeIds] : [])];
  for (const t of tensors) {
    if (!ID_DATATYPES.includes(t.datatype))
      throw new OfframpError('OFFRAMP_WRONG_DATATYPE', { input: t.name, got: t.datatype, expected: 'INT64 or INT32' });
    const [n, s] = t.shape;
    if (t.shape.length !== 2 || !Number.isInteger(n) || n! < 1 || !Number.isInteger(s) || s! < 1)
      throw new OfframpError('OFFRAMP_WRONG_SHAPE', {
        input: t.name,
        got: shapeText(t.shape),
        expected: '[N,S] (N rows of S token positions)',
      });
    if (t.data.length !== n! * s!)
      throw new OfframpError('OFFRAMP_ELEMENT_COUNT_MISMATCH', {
        input: t.name,
        got: t.data.length,
        shape: shapeText(t.shape),
        expected: n! * s!,
      });
  }
  for (const t of tensors.slice(1))
    if (t.shape[0] !== ids.shape[0] || t.shape[1] !== ids.shape[1])
      refuse(`'${t.name}' has shape ${shapeText(t.shape)} but '${ids.name}' has ${shapeText(ids.shape)}`);
  const [rows, length] = ids.shape as [number, number];
  if (length > tokenizer.maxLength)
    refuse(`${length} positions per row; the model reads at most ${tokenizer.maxLength} (tokenize with truncation)`);
  const int = (t: InputTensor, i: number): number => Number(t.data[i]);
  if (typeIds)
    for (let i = 0; i < typeIds.data.length; i++)
      if (int(typeIds, i) !== 0)
        refuse(`'${typeIds.name}' element ${i} is ${int(typeIds, i)}; only single texts (type 0) are served`);
  const tokens: TokenRow[] = [];
  for (let r = 0; r < rows; r++) {
    let used = 0;
    for (let j = 0; j < length; j++) {
      const at = r * length + j;
      const m = int(mask, at);
      if (m !== 0 && m !== 1) refuse(`row ${r} position ${j}: mask value ${m} (masks are 0 or 1)`);
      const id = int(ids, at);
      if (!Number.isInteger(id) || id < 0 || id >= tokenizer.vocabSize)
        refuse(`row ${r} position ${j}: token id ${id} is outside the vocabulary (0 … ${tokenizer.vocabSize - 1})`);
      if (m === 1) used = j + 1;
    }
    if (used === 0) refuse(`row ${r} attends to no token (its mask is all 0)`);
    const start = r * length;
    const row: TokenRow = {
      ids: BigInt64Array.from({ length: used }, (_, j) => BigInt(int(ids, start + j))),
      mask: BigInt64Array.from({ length: used }, (_, j) => BigInt(int(mask, start + j))),
    };
    tokens.push(row);
  }
  return { input: { kind: 'tokens', rows, tokens }, truncatedRows: 0 };
}
