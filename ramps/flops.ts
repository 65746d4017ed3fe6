/**
 * A rough compute count per node, from the probed shapes: multiply-adds dominate classifiers, so
 * Conv, Gemm and MatMul are counted exactly (×2 per multiply-add) and every other op as one
 * operation per output element. Only the fractions matter: "how much of the model runs before
 * this cut point".
 */
import { int64ToNumber, type NodeProto } from '../src/model/onnx-model.js';
import type { GraphIndex } from '../src/model/graph.js';

const product = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);

function attributeInt(node: NodeProto, name: string, fallback: number): number {
  const attr = (node.attribute ?? []).find((a) => a.name === name);
  return attr ? int64ToNumber(attr.i) : fallback;
}

export function nodeFlops(index: GraphIndex, nodeIndex: number, shapes: Map<string, number[]>): number {
  const node = index.nodes[nodeIndex];
  if (!node || index.isStatic[nodeIndex]) return 0;
  const output = shapes.get(node.output?.[0] ?? '');
  if (!output) return 0;
  const inputShape = (k: number): number[] | undefined => {
    const name = node.input?.[k] ?? '';
    const measured = shapes.get(name);
    if (measured) return measured;
    const init = (index.graph.initializer ?? []).find((t) => t.name === name);
    return init ? (init.dims ?? []).map(int64ToNumber) : undefined;
  };
  switch (node.opType) {
    case 'Conv':
    case 'ConvTranspose': {
      const weight = inputShape(1);
      if (!weight) return product(output);
      // weight: [Cout, Cin/group, kH, kW]; each output element costs Cin/group·kH·kW multiply-adds.
      return 2 * product(output) * product(weight.slice(1));
    }
    case 'Gemm': {
      const a = inputShape(0);
      if (!a) return product(output);
      const k = attributeInt(node, 'transA', 0) ? (a[0] ?? 1) : (a[a.length - 1] ?? 1);
      return 2 * product(output) * k;
    }
    case 'MatMul': {
      const a = inputShape(0);
      const k = a?.[a.length - 1] ?? 1;
      return 2 * product(output) * k;
    }
    default:
      return product(output);
  }
}
