/**
 * Learns the element type and shape of every intermediate tensor by running the model once
 * with all of them exposed as outputs, at two different batch (and sequence) sizes: a dimension
 * that follows the batch size is named "batch", one that follows another symbolic size is
 * named after it, and one that stays put is fixed. ONNX files exported from PyTorch carry no
 * intermediate shapes, and JS has no ONNX shape inference, so measuring is the reliable way.
 */
import { type Dim, type ModelProto, onnx } from '../src/model/onnx-model.js';
import { OnnxSession } from '../src/model/onnx-session.js';
import type { GraphIndex } from '../src/model/graph.js';
import type { TensorFacts } from '../src/model/split.js';
import { randomInputs } from './random-input.js';

export interface ProbeResult {
  tensors: Map<string, TensorFacts>;
  /** The concrete shapes seen in the first run, for FLOP counting. */
  concrete: Map<string, number[]>;
}

/** The sizes of the first probe run, at which shapes (and so FLOP counts) are measured. */
export const PROBE_SIZES = { batch: 2, other: 12 } as const;
const FIRST = PROBE_SIZES;
const SECOND = { batch: 3, other: 16 };

/** A copy of the model whose graph outputs are every non-static node output. */
export function withAllOutputs(model: ModelProto, index: GraphIndex): Uint8Array {
  const names: string[] = [];
  const seen = new Set(index.modelOutputs);
  for (const i of index.order) {
    if (index.isStatic[i]) continue;
    for (const o of index.nodes[i]?.output ?? []) {
      if (o && !seen.has(o)) {
        seen.add(o);
        names.push(o);
      }
    }
  }
  const graph = { ...model.graph, output: [...(model.graph?.output ?? []), ...names.map((name) => ({ name }))] };
  return onnx.ModelProto.encode({ ...model, graph }).finish();
}

export async function probeTensors(model: ModelProto, index: GraphIndex): Promise<ProbeResult> {
  const session = await OnnxSession.create(withAllOutputs(model, index));
  try {
    const firstInputs = randomInputs(index, FIRST, 1);
    const first = await session.run(firstInputs);
    const second = await session.run(randomInputs(index, SECOND, 2));
    const tensors = new Map<string, TensorFacts>();
    // The inputs' shapes too: a MatMul reading a model input needs its inner dimension.
    const concrete = new Map<string, number[]>(Object.entries(firstInputs).map(([name, t]) => [name, t.dims]));
    for (const [name, a] of Object.entries(first)) {
      const b = second[name];
      if (!b) continue;
      concrete.set(name, a.dims);
      const dims: Dim[] = a.dims.map((size, i) => {
        const other = b.dims[i];
        if (other === size) return size;
        if (size === FIRST.batch && other === SECOND.batch) return 'batch';
        if (size === FIRST.other && other === SECOND.other) return 'seq';
        return `dyn${i}`;
      });
      const elems = a.dims.reduce((x, y) => x * y, 1);
      const batchDim = dims.indexOf('batch');
      tensors.set(name, { name, type: a.type, dims, elemsPerRow: batchDim >= 0 ? elems / FIRST.batch : elems });
    }
    return { tensors, concrete };
  } finally {
    await session.release();
  }
}
