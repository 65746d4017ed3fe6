/**
 * Random but valid inputs for a model: what `verify`, the shape probe and latency profiling feed.
 * Float inputs get values in [0, 1) (pixel intensities); integer inputs get token ids below the
 * vocabulary size read from the embedding table they index (below 100 when no table is found). A
 * text model's attention mask (ramps/text-inputs.ts) gets 1 over real tokens and 0 over padding,
 * and its token type ids 0: random integers there would be no input the model was trained on.
 */
import type { HostTensor, TensorData } from '../src/model/tensor.js';
import { describeValueInfo, ElemType, int64ToNumber, ortTypeOfElem, type Dim } from '../src/model/onnx-model.js';
import type { GraphIndex } from '../src/model/graph.js';
import { seededRandom } from '../src/model/numeric.js';
import { textInputsOf } from './text-inputs.js';

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

/** Which inputs of a text model need a mask's or type ids' values; none for other models. */
function textRoles(specs: readonly InputSpec[]): { mask?: string; typeIds?: string } {
  try {
    const inputs = textInputsOf(
      specs.map((s) => ({ name: s.name, type: ortTypeOfElem(s.elemType), dims: s.dims })),
      'model',
    );
    return inputs ? { mask: inputs.mask, ...(inputs.typeIds ? { typeIds: inputs.typeIds } : {}) } : {};
  } catch {
    return {}; // inputs that are not a text model's as prepare maps them: plain random integers
  }
}

export function randomInputs(index: GraphIndex, choice: DimChoice, seed = 1): Record<string, HostTensor> {
  const random = seededRandom(seed);
  const feeds: Record<string, HostTensor> = {};
  const specs = modelInputSpecs(index);
  const roles = textRoles(specs);
  for (const spec of specs) {
    const dims = concreteDims(spec.dims, choice);
    const type = ortTypeOfElem(spec.elemType);
    const size = dims.reduce((a, b) => a * b, 1);
    const data = allocate(type, size);
    const rowLength = dims.length > 1 ? size / (dims[0] as number) : size;
    // Every other row is padded over its last quarter, so masks matter; token id 0 is padding in most vocabularies.
    const padded = (i: number): boolean =>
      Math.floor(i / rowLength) % 2 === 1 && i % rowLength >= Math.ceil(rowLength * 0.75);
    if (type === 'float32' || type === 'float64') {
      for (let i = 0; i < size; i++) data[i] = random();
    } else if (type === 'bool') {
      for (let i = 0; i < size; i++) data[i] = random() < 0.5 ? 1 : 0;
    } else if (spec.name === roles.mask || spec.name === roles.typeIds) {
      const mask = spec.name === roles.mask;
      for (let i = 0; i < size; i++) {
        const value = mask && !padded(i) ? 1 : 0;
        if (data instanceof BigInt64Array || data instanceof BigUint64Array) data[i] = BigInt(value);
        else data[i] = value;
      }
    } else {
      const vocab = vocabularySize(index, spec.name) ?? 100;
      for (let i = 0; i < size; i++) {
        const id = padded(i) ? 0 : 1 + Math.floor(random() * Math.max(1, vocab - 1));
        if (data instanceof BigInt64Array || data instanceof BigUint64Array) data[i] = BigInt(id);
        else data[i] = id;
      }
    }
    feeds[spec.name] = { type, data, dims };
  }
  return feeds;
}
