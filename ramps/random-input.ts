/**
 * Random but valid inputs for a model: what `verify`, the shape probe and latency profiling feed.
 * Float inputs get values in [0, 1) (pixel intensities); integer inputs get token ids below the
 * vocabulary size read from the embedding table they index, and an attention mask gets 1 where the
 * ids hold a token and 0 where they are padding.
 */
import type { HostTensor, TensorData } from '../src/model/tensor.js';
import { describeValueInfo, ElemType, int64ToNumber, ortTypeOfElem, type Dim } from '../src/model/onnx-model.js';
import type { GraphIndex } from '../src/model/graph.js';
import { seededRandom } from '../src/model/numeric.js';

/** Sizes to use for symbolic dimensions: the first one is the batch. */
export interface DimChoice {
  batch: number;
  /** Size for any other symbolic dimension (e.g. sequence length). */
  other: number;
  /** Explicit sizes by dimension name, e.g. { seq: 32 }. */
  named?: Record<string, number>;
}

export interface InputSpec {
  name: string;
  elemType: number;
  dims: Dim[];
}

export function modelInputSpecs(index: GraphIndex): InputSpec[] {
  const byName = new Map((index.graph.input ?? []).map((v) => [v.name ?? '', v]));
  return index.modelInputs.map((name) => {
    const info = byName.get(name);
    const described = info ? describeValueInfo(info) : { elemType: ElemType.FLOAT, dims: undefined };
    if (!described.dims) throw new Error(`model input '${name}' has no declared shape`);
    return { name, elemType: described.elemType, dims: described.dims };
  });
}

export function concreteDims(dims: Dim[], choice: DimChoice): number[] {
  return dims.map((d, i) => {
    if (typeof d === 'number' && d > 0) return d;
    if (typeof d === 'string' && choice.named?.[d] !== undefined) return choice.named[d];
    return i === 0 ? choice.batch : choice.other;
  });
}

/** Vocabulary size for an integer input: rows of the embedding table a Gather indexes with it. */
export function vocabularySize(index: GraphIndex, inputName: string): number | undefined {
  const tables = new Map((index.graph.initializer ?? []).map((t) => [t.name ?? '', t]));
  const frontier = [inputName];
  // Follow Cast/Unsqueeze-like single-input hops a few steps, as exporters insert them.
  for (let hop = 0; hop < 3 && frontier.length > 0; hop++) {
    const next: string[] = [];
    for (const name of frontier) {
      for (const c of index.consumers.get(name) ?? []) {
        const node = index.nodes[c];
        if (!node) continue;
        const inputs = node.input ?? [];
        if (node.opType === 'Gather' && inputs[1] === name) {
          const table = tables.get(inputs[0] ?? '');
          if (table?.dims?.length) return int64ToNumber(table.dims[0]);
        }
        if (node.opType === 'Cast' || node.opType === 'Unsqueeze' || node.opType === 'Reshape')
          next.push(...(node.output ?? []));
      }
    }
    frontier.splice(0, frontier.length, ...next);
  }
  return undefined;
}

function allocate(type: string, size: number): TensorData {
  switch (type) {
    case 'float32':
      return new Float32Array(size);
    case 'float64':
      return new Float64Array(size);
    case 'int32':
      return new Int32Array(size);
    case 'int64':
      return new BigInt64Array(size);
    case 'uint8':
    case 'bool':
      return new Uint8Array(size);
    case 'int8':
      return new Int8Array(size);
    case 'int16':
      return new Int16Array(size);
    case 'uint16':
      return new Uint16Array(size);
    case 'uint32':
      return new Uint32Array(size);
    case 'uint64':
      return new BigUint64Array(size);
    default:
      throw new Error(`cannot make random data of type '${type}'`);
  }
}

/**
 * An integer input that indexes no embedding table and is named like a mask (Hugging Face exports
 * call it `attention_mask`) is an attention mask, whose values must be 0 or 1: BERT turns it into
 * `(1 - mask) * most-negative-float`, which overflows to +∞ for any larger value and makes the
 * whole model's outputs NaN.
 */
const MASK_NAME = /mask/i;

export function randomInputs(index: GraphIndex, choice: DimChoice, seed = 1): Record<string, HostTensor> {
  const random = seededRandom(seed);
  const feeds: Record<string, HostTensor> = {};
  for (const spec of modelInputSpecs(index)) {
    const dims = concreteDims(spec.dims, choice);
    const type = ortTypeOfElem(spec.elemType);
    const size = dims.reduce((a, b) => a * b, 1);
    const data = allocate(type, size);
    if (type === 'float32' || type === 'float64') {
      for (let i = 0; i < size; i++) data[i] = random();
    } else if (type === 'bool') {
      for (let i = 0; i < size; i++) data[i] = random() < 0.5 ? 1 : 0;
    } else {
      const tableRows = vocabularySize(index, spec.name);
      const isMask = tableRows === undefined && MASK_NAME.test(spec.name);
      const vocab = tableRows ?? 100;
      const rowLength = dims.length > 1 ? size / (dims[0] as number) : size;
      for (let i = 0; i < size; i++) {
        // Token id 0 is padding in most vocabularies; pad the tail of every other row so masks matter.
        // The mask marks the same positions as padding, so ids and mask describe one batch.
        const row = Math.floor(i / rowLength);
        const position = i % rowLength;
        const padded = row % 2 === 1 && position >= Math.ceil(rowLength * 0.75);
        const id = padded ? 0 : isMask ? 1 : 1 + Math.floor(random() * Math.max(1, vocab - 1));
        if (data instanceof BigInt64Array || data instanceof BigUint64Array) data[i] = BigInt(id);
        else data[i] = id;
      }
    }
    feeds[spec.name] = { type, data, dims };
  }
  return feeds;
}
