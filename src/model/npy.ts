/**
 * NumPy .npy arrays (optionally gzip-compressed), the format bootstrap data and traces use:
 * what `numpy.save` writes is what `offramp prepare --data` and `offramp record --data` read.
 * In the model layer because the engine's recorder (src/engine/recorder.ts) reads it too.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { TensorData } from './tensor.js';

export interface NpyArray {
  /** onnxruntime-style type name: float32, float64, int64, int32, uint8, int8, bool. */
  type: string;
  shape: number[];
  data: TensorData;
}

const DESCR_TO_TYPE: Record<string, string> = {
  '<f4': 'float32',
  '<f8': 'float64',
  '<i8': 'int64',
  '<i4': 'int32',
  '|u1': 'uint8',
  '|i1': 'int8',
  '|b1': 'bool',
  '<u8': 'uint64',
};

function typedArrayFor(type: string, buffer: ArrayBuffer, offset: number, length: number): TensorData {
  switch (type) {
    case 'float32':
      return new Float32Array(buffer, offset, length);
    case 'float64':
      return new Float64Array(buffer, offset, length);
    case 'int64':
      return new BigInt64Array(buffer, offset, length);
    case 'uint64':
      return new BigUint64Array(buffer, offset, length);
    case 'int32':
      return new Int32Array(buffer, offset, length);
    case 'int8':
      return new Int8Array(buffer, offset, length);
    default:
      return new Uint8Array(buffer, offset, length);
  }
}

export function parseNpy(bytes: Uint8Array, source = 'array'): NpyArray {
  const raw = bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes;
  const magic = String.fromCharCode(...raw.subarray(1, 6));
  if (raw[0] !== 0x93 || magic !== 'NUMPY') throw new Error(`${source}: not a .npy file (bad magic)`);
  const major = raw[6] ?? 0;
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = major === 1 ? 10 : 12;
  const header = new TextDecoder('latin1').decode(raw.subarray(headerStart, headerStart + headerLength));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw new Error(`${source}: unreadable .npy header: ${header}`);
  const type = DESCR_TO_TYPE[descr];
  if (!type)
    throw new Error(
      `${source}: unsupported dtype '${descr}' (use float32, float64, int64, int32, uint8, int8 or bool)`,
    );
  if (fortran === 'True')
    throw new Error(`${source}: Fortran-ordered arrays are not supported; save with numpy.ascontiguousarray`);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map(Number);
  const length = shape.reduce((a, b) => a * b, 1);
  const dataStart = headerStart + headerLength;
  // Copy into a fresh, aligned buffer: typed arrays need offsets that are multiples of their element size.
  const body = raw.slice(dataStart, raw.length);
  const data = typedArrayFor(type, body.buffer, body.byteOffset, length);
  return { type, shape, data };
}

export async function readNpy(path: string): Promise<NpyArray> {
  return parseNpy(await readFile(path), path);
}

export function encodeNpy(array: NpyArray): Uint8Array {
  const descr = Object.entries(DESCR_TO_TYPE).find(([, t]) => t === array.type)?.[0];
  if (!descr) throw new Error(`cannot write type '${array.type}' as .npy`);
  const shape = array.shape.length === 1 ? `(${array.shape[0]},)` : `(${array.shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  // Pad so the data starts at a multiple of 64 bytes, as numpy does; the header ends with a newline.
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const out = new Uint8Array(10 + header.length + array.data.byteLength);
  out.set([0x93, ...Buffer.from('NUMPY'), 1, 0], 0);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(Buffer.from(header, 'latin1'), 10);
  out.set(new Uint8Array(array.data.buffer, array.data.byteOffset, array.data.byteLength), 10 + header.length);
  return out;
}

export async function writeNpy(path: string, array: NpyArray): Promise<void> {
  const bytes = encodeNpy(array);
  await writeFile(path, path.endsWith('.gz') ? gzipSync(bytes) : bytes);
}
