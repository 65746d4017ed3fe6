/**
 * Reading and writing ONNX models through the generated protobuf classes of `onnx-proto`
 * (protobufjs), so the wire format is never hand-rolled. The model layer's base: the offline
 * pipeline (ramps/) analyses and rewrites models through it, and the engine decodes the model it
 * re-splits at the active ramps.
 */
import { readFile, writeFile } from 'node:fs/promises';
import onnxProto from 'onnx-proto';

// `export import` (not `const`) so `onnx` is both the runtime classes and the namespace of their types (onnx.IModelProto).
export import onnx = onnxProto.onnx;
export type ModelProto = onnxProto.onnx.ModelProto;
export type GraphProto = onnxProto.onnx.IGraphProto;
export type NodeProto = onnxProto.onnx.INodeProto;
export type TensorProto = onnxProto.onnx.ITensorProto;
export type ValueInfoProto = onnxProto.onnx.IValueInfoProto;

/** protobufjs decodes int64 fields as `Long` objects when long.js is present, numbers otherwise. */
export type Int64Like = number | { toNumber(): number };

export function int64ToNumber(value: Int64Like | null | undefined): number {
  if (value === null || value === undefined) return 0;
  return typeof value === 'number' ? value : value.toNumber();
}

/** ONNX TensorProto.DataType codes for the element types offramp handles. */
export const ElemType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
} as const;

/** onnxruntime's type names, indexed by the ONNX element type code. */
const ORT_TYPE_BY_ELEM: Record<number, string> = {
  1: 'float32',
  2: 'uint8',
  3: 'int8',
  4: 'uint16',
  5: 'int16',
  6: 'int32',
  7: 'int64',
  8: 'string',
  9: 'bool',
  10: 'float16',
  11: 'float64',
  12: 'uint32',
  13: 'uint64',
};

export function ortTypeOfElem(elemType: number): string {
  const name = ORT_TYPE_BY_ELEM[elemType];
  if (name === undefined) throw new Error(`unsupported ONNX element type ${elemType}`);
  return name;
}

export function elemOfOrtType(type: string): number {
  for (const [code, name] of Object.entries(ORT_TYPE_BY_ELEM)) if (name === type) return Number(code);
  throw new Error(`unsupported onnxruntime tensor type '${type}'`);
}

export function decodeModel(bytes: Uint8Array): ModelProto {
  return onnx.ModelProto.decode(bytes);
}

export function encodeModel(model: onnxProto.onnx.IModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

export async function readModel(path: string): Promise<ModelProto> {
  const bytes = await readFile(path);
  try {
    return decodeModel(bytes);
  } catch (err) {
    throw new Error(`${path} is not a readable ONNX model: ${(err as Error).message}`);
  }
}

export async function writeModel(path: string, model: onnxProto.onnx.IModelProto): Promise<void> {
  await writeFile(path, encodeModel(model));
}

/** One dimension of a declared shape: a fixed size, or a symbolic name such as "batch". */
export type Dim = number | string;

/** The declared element type and shape of a graph input or output (undefined parts were not declared). */
export function describeValueInfo(info: ValueInfoProto): { name: string; elemType: number; dims: Dim[] | undefined } {
  const tensorType = info.type?.tensorType;
  const dims = tensorType?.shape?.dim?.map((d, i): Dim =>
    d.dimParam ? d.dimParam : d.dimValue !== null && d.dimValue !== undefined ? int64ToNumber(d.dimValue) : `d${i}`,
  );
  return { name: info.name ?? '', elemType: tensorType?.elemType ?? 0, dims };
}

export function makeValueInfo(name: string, elemType: number, dims: Dim[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}
