/**
 * Cascade member models built in the test, as an operator's own members would be: small linear
 * classifiers over Fashion-MNIST pixels, written as ONNX through src/model/onnx-model.ts. Their
 * weights are the caller's (fitted, or chosen to make a member misbehave).
 *
 *   pixels [batch,1,28,28] → (AveragePool pool×pool) → Flatten → Gemm(W, b) → logits [batch,classes]
 *                                                                   (→ Softmax → probabilities)
 */
import { ElemType, encodeModel, makeValueInfo, onnx } from '../../src/model/onnx-model.js';

export const IMAGE_SIDE = 28;

export interface LinearMember {
  /** [features × classes], row-major; features = (28 / pool)². */
  weights: Float32Array;
  /** [classes]. */
  bias: Float32Array;
  /** Average-pools the image by this factor first (1: the raw pixels). */
  pool?: number;
  /** The default-domain opset the model declares (17, as the bundled members). */
  opset?: number;
  /** Input name ('pixels', as the bundled backbone). */
  input?: string;
  /** Ends in a Softmax: the output is probabilities, not logits. */
  softmax?: boolean;
}

function tensor(name: string, dims: number[], values: Float32Array): onnx.ITensorProto {
  return { name, dataType: ElemType.FLOAT, dims, floatData: Array.from(values) };
}

/** The member as ONNX model bytes. */
export function linearMemberModel(spec: LinearMember): Uint8Array {
  const { weights, bias, pool = 1, opset = 17, input = 'pixels', softmax = false } = spec;
  const classes = bias.length;
  const features = weights.length / classes;
  const nodes: onnx.INodeProto[] = [];
  let x = input;
  if (pool > 1) {
    const ints = (name: string, values: number[]): onnx.IAttributeProto => ({
      name,
      type: onnx.AttributeProto.AttributeType.INTS,
      ints: values,
    });
    nodes.push({
      name: 'pool',
      opType: 'AveragePool',
      input: [x],
      output: ['pooled'],
      attribute: [ints('kernel_shape', [pool, pool]), ints('strides', [pool, pool])],
    });
    x = 'pooled';
  }
  nodes.push({ name: 'flatten', opType: 'Flatten', input: [x], output: ['features'] });
  nodes.push({ name: 'linear', opType: 'Gemm', input: ['features', 'W', 'b'], output: ['logits'] });
  const output = softmax ? 'probabilities' : 'logits';
  if (softmax)
    nodes.push({
      name: 'softmax',
      opType: 'Softmax',
      input: ['logits'],
      output: [output],
      attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 1 }],
    });
  return encodeModel({
    irVersion: 8,
    opsetImport: [{ domain: '', version: opset }],
    producerName: 'offramp-test',
    graph: {
      name: 'linear_member',
      node: nodes,
      initializer: [tensor('W', [features, classes], weights), tensor('b', [classes], bias)],
      input: [makeValueInfo(input, ElemType.FLOAT, ['batch', 1, IMAGE_SIDE, IMAGE_SIDE])],
      output: [makeValueInfo(output, ElemType.FLOAT, ['batch', classes])],
    },
  });
}

/** Deterministic, varied weights for a member whose accuracy does not matter. */
export function arbitraryMember(phase: number, spec: Partial<LinearMember> = {}): Uint8Array {
  const pool = spec.pool ?? 4;
  const features = (IMAGE_SIDE / pool) ** 2;
  const weights = Float32Array.from({ length: features * 10 }, (_, i) => Math.sin(1.3 * i + phase));
  const bias = Float32Array.from({ length: 10 }, (_, i) => Math.cos(i + phase));
  return linearMemberModel({ weights, bias, pool, ...spec });
}
