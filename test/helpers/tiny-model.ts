/**
 * A residual model small enough to build by hand, so graph analysis and splitting are tested
 * without any generated file:
 *
 *   x [batch,4] → MatMul → h1 → Relu → r1 → MatMul → h2 → Add(h2, r1) → s → MatMul → logits [batch,3]
 *                                      └──────────── skip ───────────┘
 *
 * Every path from x to logits passes through h1, r1 and s; h2 is bridged by the skip.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  decodeModel,
  ElemType,
  encodeModel,
  makeValueInfo,
  type ModelProto,
  type onnx,
} from '../../src/model/onnx-model.js';

export const TINY = { input: 'x', h1: 'h1', r1: 'r1', h2: 'h2', s: 's', output: 'logits' } as const;

/** Deterministic, varied weights (no RNG needed). */
function weight(name: string, rows: number, cols: number, phase: number): onnx.ITensorProto {
  const floatData = Array.from({ length: rows * cols }, (_, i) => Math.sin(1.7 * i + phase) * 0.5);
  return { name, dataType: ElemType.FLOAT, dims: [rows, cols], floatData };
}

export function tinyResidualModel(): ModelProto {
  const model: onnx.IModelProto = {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    producerName: 'offramp-test',
    graph: {
      name: 'tiny_residual',
      node: [
        { name: 'mm1', opType: 'MatMul', input: [TINY.input, 'W1'], output: [TINY.h1] },
        { name: 'relu', opType: 'Relu', input: [TINY.h1], output: [TINY.r1] },
        { name: 'mm2', opType: 'MatMul', input: [TINY.r1, 'W2'], output: [TINY.h2] },
        { name: 'add', opType: 'Add', input: [TINY.h2, TINY.r1], output: [TINY.s] },
        { name: 'mm3', opType: 'MatMul', input: [TINY.s, 'W3'], output: [TINY.output] },
      ],
      initializer: [weight('W1', 4, 8, 0.1), weight('W2', 8, 8, 0.7), weight('W3', 8, 3, 1.3)],
      input: [makeValueInfo(TINY.input, ElemType.FLOAT, ['batch', 4])],
      output: [makeValueInfo(TINY.output, ElemType.FLOAT, ['batch', 3])],
    },
  };
  // Round-trip through the wire format: callers get exactly what readModel would give them.
  return decodeModel(encodeModel(model));
}

/** Writes the model to `dir/tiny-residual.onnx` and returns the path. */
export async function writeTinyResidualModel(dir: string): Promise<string> {
  const path = join(dir, 'tiny-residual.onnx');
  await writeFile(path, encodeModel(tinyResidualModel()));
  return path;
}
