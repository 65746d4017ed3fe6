/**
 * Writes a trained head as a small ONNX model whose input is the cut tensor itself (same name,
 * so the runtime feeds it straight from the segment's output) and whose output is `probs`,
 * the temperature-scaled softmax. Feature scaling and 1/T are folded into the Gemm weights, so
 * serving runs only pool → Sub(mean) → Gemm (→ act → Gemm) → Softmax.
 */
import { ElemType, makeValueInfo, onnx, type Dim } from '../../src/model/onnx-model.js';
import type { HeadKind } from '../../src/model/manifest.js';
import { HEAD_PROBS_OUTPUT } from '../../src/model/ramp-head.js';
import { hasHiddenLayer, hiddenActivation, quadrantWindow } from './head-kinds.js';

export interface HeadWeights {
  kind: HeadKind;
  featureCount: number;
  hidden: number;
  classes: number;
  /** Row-major [in, out] matrices and their biases; w1/b1 absent for gap-linear. */
  w1?: Float32Array;
  b1?: Float32Array;
  w2: Float32Array;
  b2: Float32Array;
  /** Per-feature standardisation applied before the first layer. */
  featureMean: Float32Array;
  featureStd: Float32Array;
  temperature: number;
}

/** The head's one output; the serving side reads it by this name (src/model/ramp-head.ts). */
export const HEAD_OUTPUT = HEAD_PROBS_OUTPUT;

function floatTensor(name: string, dims: number[], values: Float32Array): onnx.ITensorProto {
  const bytes = new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  return { name, dims, dataType: ElemType.FLOAT, rawData: bytes };
}

/**
 * Folds the division of x' = (x − mean)/std into the first layer: W' = W/std (per input row).
 * The subtraction stays a separate Sub node: folding it into the bias would subtract two large,
 * nearly equal float32 sums when a feature's mean is large against its spread, and lose precision.
 */
function foldScale(w: Float32Array, std: Float32Array, inputs: number, outputs: number): Float32Array {
  const wf = new Float32Array(w.length);
  for (let i = 0; i < inputs; i++) {
    for (let o = 0; o < outputs; o++) wf[i * outputs + o] = (w[i * outputs + o] as number) / (std[i] as number);
  }
  return wf;
}

export function buildHeadModel(
  weights: HeadWeights,
  input: { name: string; dims: Dim[] },
  opsetImport: onnx.IOperatorSetIdProto[],
): onnx.IModelProto {
  const nodes: onnx.INodeProto[] = [];
  const initializers: onnx.ITensorProto[] = [];
  const dims = input.dims;
  let features: string;
  switch (weights.kind) {
    case 'gap-linear':
    case 'gap-mlp':
      nodes.push({ opType: 'GlobalAveragePool', input: [input.name], output: ['pooled'], name: 'pool' });
      nodes.push({
        opType: 'Flatten',
        input: ['pooled'],
        output: ['features'],
        name: 'flatten',
        attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 1 }],
      });
      features = 'features';
      break;
    case 'quad-mlp': {
      const rows = quadrantWindow(Number(dims[2]));
      const cols = quadrantWindow(Number(dims[3]));
      nodes.push({
        opType: 'AveragePool',
        input: [input.name],
        output: ['pooled'],
        name: 'quadrants',
        attribute: [
          { name: 'kernel_shape', type: onnx.AttributeProto.AttributeType.INTS, ints: [rows.kernel, cols.kernel] },
          { name: 'strides', type: onnx.AttributeProto.AttributeType.INTS, ints: [rows.stride, cols.stride] },
        ],
      });
      nodes.push({
        opType: 'Flatten',
        input: ['pooled'],
        output: ['features'],
        name: 'flatten',
        attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 1 }],
      });
      features = 'features';
      break;
    }
    case 'pooler':
      initializers.push({ name: 'first_token', dims: [], dataType: ElemType.INT64, int64Data: [0] });
      nodes.push({
        opType: 'Gather',
        input: [input.name, 'first_token'],
        output: ['features'],
        name: 'first',
        attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 1 }],
      });
      features = 'features';
      break;
    case 'mlp':
      features = input.name;
      break;
  }

  initializers.push(floatTensor('feature_mean', [weights.featureCount], weights.featureMean));
  nodes.push({ opType: 'Sub', input: [features, 'feature_mean'], output: ['centered'], name: 'center' });
  features = 'centered';

  const t = weights.temperature;
  const lastIn = hasHiddenLayer(weights.kind) ? weights.hidden : weights.featureCount;
  let w2 = weights.w2;
  const b2 = weights.b2;
  if (hasHiddenLayer(weights.kind)) {
    if (!weights.w1 || !weights.b1) throw new Error(`${weights.kind} head needs first-layer weights`);
    const w1 = foldScale(weights.w1, weights.featureStd, weights.featureCount, weights.hidden);
    initializers.push(
      floatTensor('w1', [weights.featureCount, weights.hidden], w1),
      floatTensor('b1', [weights.hidden], weights.b1),
    );
    nodes.push({ opType: 'Gemm', input: [features, 'w1', 'b1'], output: ['hidden_pre'], name: 'dense' });
    nodes.push({
      opType: hiddenActivation(weights.kind) === 'tanh' ? 'Tanh' : 'Relu',
      input: ['hidden_pre'],
      output: ['hidden'],
      name: 'act',
    });
    features = 'hidden';
  } else {
    w2 = foldScale(w2, weights.featureStd, weights.featureCount, weights.classes);
  }
  // Temperature scaling folded in: softmax((xW + b)/T) = softmax(x(W/T) + b/T).
  initializers.push(
    floatTensor(
      'w2',
      [lastIn, weights.classes],
      w2.map((v) => v / t),
    ),
    floatTensor(
      'b2',
      [weights.classes],
      b2.map((v) => v / t),
    ),
  );
  nodes.push({ opType: 'Gemm', input: [features, 'w2', 'b2'], output: ['logits'], name: 'classifier' });
  nodes.push({
    opType: 'Softmax',
    input: ['logits'],
    output: [HEAD_OUTPUT],
    name: 'softmax',
    attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 1 }],
  });

  return {
    irVersion: 8,
    opsetImport,
    producerName: 'offramp',
    graph: {
      name: `ramp_head_${weights.kind}`,
      node: nodes,
      initializer: initializers,
      input: [makeValueInfo(input.name, ElemType.FLOAT, dims)],
      output: [makeValueInfo(HEAD_OUTPUT, ElemType.FLOAT, [dims[0] ?? 'batch', weights.classes])],
    },
  };
}
