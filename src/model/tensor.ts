/**
 * Tensors in host memory, as plain typed arrays: what the model layer, the offline pipeline and
 * the engine pass around. Kept free of any onnxruntime import, so the engine's execution
 * interface (src/engine/backend.ts) and pure code can name tensors without loading the runtime;
 * only src/model/onnx-session.ts converts them to and from onnxruntime's own tensors.
 */

export type TensorData =
  | Float32Array
  | Float64Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | BigUint64Array;

/** A tensor in host memory: onnxruntime's type name, row-major data and dimensions. */
export interface HostTensor {
  type: string;
  data: TensorData;
  dims: number[];
}
