/**
 * Tensor contents as raw bytes: the one layout KServe v2 uses for gRPC's `raw_input_contents` /
 * `raw_output_contents` and for HTTP's binary tensor data extension — little-endian, row-major,
 * no padding between elements; BOOL one byte per element (0 = false); BYTES each element as a
 * 4-byte little-endian length followed by its bytes. Both transports decode and encode with these
 * functions, so the same bytes cannot mean two things.
 */
import { endianness } from 'node:os';
import { OfframpError } from '../errors.js';
import { DATATYPES, type Datatype, type OutputTensor, type TensorValues } from './types.js';

const LITTLE_ENDIAN = endianness() === 'LE';

/** Bytes per element (BYTES elements are length-prefixed, so it has no fixed size). */
export const ELEMENT_BYTES: Readonly<Record<Exclude<Datatype, 'BYTES'>, number>> = {
  BOOL: 1,
  UINT8: 1,
  INT8: 1,
  UINT16: 2,
  INT16: 2,
  FP16: 2,
  UINT32: 4,
  INT32: 4,
  FP32: 4,
  UINT64: 8,
  INT64: 8,
  FP64: 8,
};

export function isDatatype(value: string): value is Datatype {
  return (DATATYPES as readonly string[]).includes(value);
}

export function unknownDatatype(input: string, got: string): OfframpError {
  return new OfframpError('OFFRAMP_WRONG_DATATYPE', {
    input,
    got: got === '' ? '(none)' : got,
    expected: `one of the KServe v2 datatypes (${DATATYPES.join(', ')})`,
  });
}

export function shapeText(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * The byte length of a tensor of this datatype and shape, or undefined for BYTES (its elements
 * vary in length). Throws OFFRAMP_WRONG_DATATYPE for a datatype KServe v2 does not have.
 */
export function tensorByteSize(input: string, datatype: string, shape: readonly number[]): number | undefined {
  if (!isDatatype(datatype)) throw unknownDatatype(input, datatype);
  return datatype === 'BYTES' ? undefined : elementCount(shape) * ELEMENT_BYTES[datatype];
}

function malformed(input: string, reason: string): OfframpError {
  return new OfframpError('OFFRAMP_MALFORMED_TENSOR_BYTES', { input, reason });
}

/**
 * One tensor's raw bytes as typed values. The result is a view onto `bytes` when the machine is
 * little-endian and `bytes` starts at a multiple of the element size (a Float32Array cannot start
 * elsewhere); otherwise a copy. So the caller must not reuse `bytes` while the request lives —
 * both transports hand in per-request buffers, and the data plane copies inputs into the model's
 * own tensor before running. FP16 comes through as its bit patterns in a Uint16Array (what
 * onnxruntime's float16 tensors take); whether the model accepts it is the data plane's call.
 */
export function decodeTensorBytes(
  input: string,
  datatype: string,
  shape: readonly number[],
  bytes: Uint8Array,
): TensorValues {
  if (!isDatatype(datatype)) throw unknownDatatype(input, datatype);
  const expected = elementCount(shape);
  if (datatype === 'BYTES') {
    const strings = decodeBytesElements(input, bytes);
    if (strings.length !== expected) throw countMismatch(input, strings.length, shape, expected);
    return strings;
  }
  const size = ELEMENT_BYTES[datatype];
  if (bytes.byteLength % size !== 0) {
    throw malformed(
      input,
      `${bytes.byteLength} bytes are not a whole number of ${datatype} elements (${size} bytes each)`,
    );
  }
  const count = bytes.byteLength / size;
  if (count !== expected) throw countMismatch(input, count, shape, expected);
  let view = bytes;
  if (!LITTLE_ENDIAN || bytes.byteOffset % size !== 0) {
    view = new Uint8Array(bytes.byteLength);
    view.set(bytes);
    if (!LITTLE_ENDIAN) swapBytes(view, size);
  }
  const { buffer, byteOffset } = view;
  switch (datatype) {
    case 'BOOL':
      return Array.from(view, (b) => b !== 0);
    case 'UINT8':
      return new Uint8Array(buffer, byteOffset, count);
    case 'INT8':
      return new Int8Array(buffer, byteOffset, count);
    case 'UINT16':
    case 'FP16':
      return new Uint16Array(buffer, byteOffset, count);
    case 'INT16':
      return new Int16Array(buffer, byteOffset, count);
    case 'UINT32':
      return new Uint32Array(buffer, byteOffset, count);
    case 'INT32':
      return new Int32Array(buffer, byteOffset, count);
    case 'FP32':
      return new Float32Array(buffer, byteOffset, count);
    case 'UINT64':
      return new BigUint64Array(buffer, byteOffset, count);
    case 'INT64':
      return new BigInt64Array(buffer, byteOffset, count);
    case 'FP64':
      return new Float64Array(buffer, byteOffset, count);
  }
}

function countMismatch(input: string, got: number, shape: readonly number[], expected: number): OfframpError {
  return new OfframpError('OFFRAMP_ELEMENT_COUNT_MISMATCH', { input, got, shape: shapeText(shape), expected });
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * One BYTES element as text. The models served read BYTES as UTF-8 text; bytes that are not UTF-8
 * are refused here rather than turned into replacement characters the model would classify.
 */
export function decodeTextElement(input: string, element: number, bytes: Uint8Array): string {
  try {
    return UTF8.decode(bytes);
  } catch {
    throw new OfframpError('OFFRAMP_INVALID_TEXT', { input, element, reason: 'the bytes are not valid UTF-8' });
  }
}

/** BYTES elements: each a 4-byte little-endian length, then its bytes (read as UTF-8 text). */
function decodeBytesElements(input: string, bytes: Uint8Array): string[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: string[] = [];
  let at = 0;
  while (at < bytes.byteLength) {
    if (at + 4 > bytes.byteLength) throw malformed(input, `they end inside the length of BYTES element ${out.length}`);
    const length = view.getUint32(at, true);
    at += 4;
    if (length > bytes.byteLength - at)
      throw malformed(
        input,
        `BYTES element ${out.length} claims ${length} bytes but only ${bytes.byteLength - at} remain`,
      );
    out.push(decodeTextElement(input, out.length, bytes.subarray(at, at + length)));
    at += length;
  }
  return out;
}

function swapBytes(bytes: Uint8Array, size: number): void {
  if (size === 1) return;
  for (let at = 0; at < bytes.length; at += size) bytes.subarray(at, at + size).reverse();
}

/** An output whose array kind disagrees with its datatype is a server bug, not a client error. */
export function checkOutputData(output: OutputTensor): void {
  const { datatype, data } = output;
  const ok = Array.isArray(data)
    ? datatype === 'BYTES'
    : datatype !== 'BYTES' && ELEMENT_BYTES[datatype] === data.BYTES_PER_ELEMENT;
  if (!ok)
    throw new OfframpError('OFFRAMP_INTERNAL', {
      reason: `output '${output.name}' is ${datatype} but its data is a ${data.constructor.name}`,
    });
}

/** BYTES elements in the wire layout: each a 4-byte little-endian length, then its UTF-8 bytes. */
export function encodeBytesElements(texts: readonly string[]): Buffer {
  const parts = texts.map((s) => Buffer.from(s, 'utf8'));
  const out = Buffer.alloc(parts.reduce((n, p) => n + 4 + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.writeUInt32LE(part.length, at);
    part.copy(out, at + 4);
    at += 4 + part.length;
  }
  return out;
}

/**
 * One output's raw bytes. Typed data on a little-endian machine is a view onto the output's own
 * buffer, not a copy; BYTES elements are length-prefixed.
 */
export function encodeTensorBytes(output: OutputTensor): Buffer {
  checkOutputData(output);
  const { data } = output;
  if (Array.isArray(data)) return encodeBytesElements(data);
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (LITTLE_ENDIAN) return bytes;
  const swapped = Buffer.from(bytes);
  swapBytes(swapped, data.BYTES_PER_ELEMENT);
  return swapped;
}
