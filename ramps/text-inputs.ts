/**
 * Which inputs of a model are a text model's: token ids, an attention mask and, optionally,
 * token type ids, named as Hugging Face exports them. `offramp prepare` maps a text model's
 * inputs with it (the manifest's `model.text.inputs`), and the random inputs of `verify` and the
 * shape probe give such a model a real mask (1s, then 0s over padding) instead of random integers.
 * Text data files are told from .npy arrays by their name (`isTextData`), in prepare and record alike.
 */
import type { Dim } from '../src/model/onnx-model.js';
import type { TextSpec } from '../src/model/text-tokenizer.js';

export interface DeclaredInput {
  name: string;
  /** onnxruntime's type name, e.g. 'int64'. */
  type: string;
  dims: Dim[];
}

/** Whether a data file holds texts (JSON Lines) rather than a .npy array. */
export function isTextData(path: string): boolean {
  return /\.jsonl(\.gz)?$/i.test(path);
}

const IDS = 'input_ids';
const MASK = 'attention_mask';
const TYPE_IDS = 'token_type_ids';

/** An int64 [batch, sequence] input: what token ids and their mask look like. */
function isTokenMatrix(input: DeclaredInput): boolean {
  return input.type === 'int64' && input.dims.length === 2;
}

/**
 * The ids input: `input_ids`, else the only int64 [batch, sequence] input whose name contains
 * "ids" (and is not the type ids). Undefined when there is none: not a text model.
 */
function idsInput(inputs: readonly DeclaredInput[]): DeclaredInput | undefined {
  const exact = inputs.find((i) => i.name === IDS);
  if (exact) return exact;
  const named = inputs.filter((i) => i.name !== TYPE_IDS && i.name.toLowerCase().includes('ids') && isTokenMatrix(i));
  return named.length === 1 ? named[0] : undefined;
}

/**
 * The model's inputs as a text model's, or undefined when no input holds token ids (an image
 * model, say).
 * @throws Error naming the input when ids are there but the mask is missing, an input is not an
 *   int64 [batch, sequence] matrix, or some input is none of ids, mask and type ids.
 */
export function textInputsOf(inputs: readonly DeclaredInput[], source: string): TextSpec['inputs'] | undefined {
  const ids = idsInput(inputs);
  if (!ids) return undefined;
  const mask = inputs.find((i) => i.name === MASK);
  if (!mask) throw new Error(`${source}: a text model needs an '${MASK}' input beside '${ids.name}'`);
  const typeIds = inputs.find((i) => i.name === TYPE_IDS);
  for (const input of inputs) {
    if (input !== ids && input !== mask && input !== typeIds) {
      throw new Error(
        `${source}: input '${input.name}' is not one a text model is fed (${ids.name}, ${MASK}, ${TYPE_IDS})`,
      );
    }
    if (!isTokenMatrix(input)) {
      throw new Error(
        `${source}: input '${input.name}' is ${input.type} [${input.dims.join(',')}]; a text model's inputs are int64 [batch, sequence]`,
      );
    }
  }
  return { ids: ids.name, mask: mask.name, ...(typeIds ? { typeIds: typeIds.name } : {}) };
}
