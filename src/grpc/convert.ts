/**
 * KServe v2 gRPC messages ↔ the data plane's request/response types (one data plane, thin
 * transports: docs/architecture.md): decoding and encoding only. What the data plane checks
 * (datatype against the model, shape, element count of typed contents) is left to it; what only
 * this transport can check (the structure of the message, raw byte lengths, integer ranges of the
 * wire types) is checked here, as coded errors.
 */
import { endianness } from 'node:os';
import type {
  Datatype,
  InferRequest,
  InferResponse,
  InputTensor,
  OutputTensor,
  Parameters,
  RequestedOutput,
  TensorValues,
} from '../data-plane/types.js';
import { OfframpError } from '../errors.js';
import type {
  OutInferOutputTensor,
  OutModelInferResponse,
  OutParameters,
  OutTensorContents,
  WireInferInputTensor,
  WireModelInferRequest,
  WireParameters,
  WireTensorContents,
} from './proto.js';

const LITTLE_ENDIAN = endianness() === 'LE';

type ContentsField = keyof WireTensorContents;

/** The InferTensorContents field of each datatype (FP16 has none: it is raw-only). */
const CONTENTS_FIELD: Readonly<Record<Exclude<Datatype, 'FP16'>, ContentsField>> = {
  BOOL: 'bool_contents',
  UINT8: 'uint_contents',
  UINT16: 'uint_contents',
  UINT32: 'uint_contents',
  UINT64: 'uint64_contents',
  INT8: 'int_contents',
  INT16: 'int_contents',
  INT32: 'int_contents',
  INT64: 'int64_contents',
  FP32: 'fp32_contents',
  FP64: 'fp64_contents',
  BYTES: 'bytes_contents',
};

const CONTENTS_FIELDS = Object.keys({
  bool_contents: 0,
  int_contents: 0,
  int64_contents: 0,
  uint_contents: 0,
  uint64_contents: 0,
  fp32_contents: 0,
  fp64_contents: 0,
  bytes_contents: 0,
} satisfies Record<ContentsField, 0>) as ContentsField[];

/** Bytes per element in raw contents (BYTES is length-prefixed, so absent). */
const ELEMENT_BYTES: Readonly<Record<Exclude<Datatype, 'BYTES'>, number>> = {
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

/** Value range of the narrow integer types, which travel in 32-bit protobuf fields. */
const INT_RANGE: Readonly<Partial<Record<Datatype, readonly [number, number]>>> = {
  INT8: [-128, 127],
  INT16: [-32768, 32767],
  UINT8: [0, 255],
  UINT16: [0, 65535],
};

function isDatatype(value: string): value is Datatype {
  return Object.hasOwn(CONTENTS_FIELD, value) || value === 'FP16';
}

function invalid(reason: string): OfframpError {
  return new OfframpError('OFFRAMP_INVALID_REQUEST', { reason });
}

function unknownDatatype(input: string, got: string): OfframpError {
  return new OfframpError('OFFRAMP_WRONG_DATATYPE', {
    input,
    got: got === '' ? '(none)' : got,
    expected: 'one of the KServe v2 datatypes (BOOL, UINT8…UINT64, INT8…INT64, FP16, FP32, FP64, BYTES)',
  });
}

// ---- Request ---------------------------------------------------------------------------------

/**
 * A decoded ModelInferRequest as the data plane's InferRequest. Inputs come from each tensor's
 * typed `contents` or, for all of them at once, from `raw_input_contents`; mixing the two is an
 * error (as the protocol says).
 */
export function toInferRequest(wire: WireModelInferRequest, signal?: AbortSignal): InferRequest {
  if (wire.model_name === '') throw invalid('model_name is empty');
  const raw = wire.raw_input_contents;
  const usesRaw = raw.length > 0;
  if (usesRaw && raw.length !== wire.inputs.length) {
    throw invalid(
      `raw_input_contents has ${raw.length} entries but the request has ${wire.inputs.length} inputs; give one entry per input, in order`,
    );
  }
  const inputs = wire.inputs.map((tensor, i): InputTensor => {
    if (tensor.name === '') throw invalid(`input #${i} has no name`);
    const shape = toShape(tensor.shape, `input '${tensor.name}'`);
    let data: TensorValues;
    if (usesRaw) {
      if (hasContents(tensor.contents)) {
        throw invalid(
          `input '${tensor.name}' has typed contents but the request also uses raw_input_contents; use one or the other`,
        );
      }
      data = decodeRaw(tensor.name, tensor.datatype, shape, raw[i]!);
    } else {
      data = decodeContents(tensor);
    }
    const input: InputTensor = { name: tensor.name, datatype: tensor.datatype, shape, data };
    const parameters = toParameters(tensor.parameters);
    if (parameters !== undefined) input.parameters = parameters;
    return input;
  });
  const request: InferRequest = { modelName: wire.model_name, parameters: toParameters(wire.parameters) ?? {}, inputs };
  if (wire.id !== '') request.id = wire.id;
  if (wire.model_version !== '') request.modelVersion = wire.model_version;
  if (wire.outputs.length > 0) {
    request.outputs = wire.outputs.map((out, i): RequestedOutput => {
      if (out.name === '') throw invalid(`requested output #${i} has no name`);
      const parameters = toParameters(out.parameters);
      return parameters === undefined ? { name: out.name } : { name: out.name, parameters };
    });
  }
  if (signal !== undefined) request.signal = signal;
  return request;
}

/** int64 dims (decimal strings) as numbers; each must be a non-negative safe integer. */
function toShape(dims: readonly string[], what: string): number[] {
  return dims.map((text) => {
    const dim = Number(text);
    if (!Number.isSafeInteger(dim) || dim < 0)
      throw invalid(`${what} has shape dimension ${text}; dimensions must be integers ≥ 0`);
    return dim;
  });
}

function hasContents(contents: WireTensorContents | null): contents is WireTensorContents {
  return contents !== null && CONTENTS_FIELDS.some((field) => contents[field].length > 0);
}

/** Typed contents: the field matching the datatype (the data plane checks the element count). */
function decodeContents(tensor: WireInferInputTensor): TensorValues {
  const { name, datatype, contents } = tensor;
  if (!isDatatype(datatype)) throw unknownDatatype(name, datatype);
  if (datatype === 'FP16')
    throw invalid(`input '${name}' is FP16, which has no typed contents field; send it in raw_input_contents`);
  const field = CONTENTS_FIELD[datatype];
  if (contents !== null) {
    const misplaced = CONTENTS_FIELDS.find((f) => f !== field && contents[f].length > 0);
    if (misplaced !== undefined)
      throw invalid(`input '${name}' is ${datatype}, so its contents belong in ${field}, not ${misplaced}`);
  }
  const c: WireTensorContents = contents ?? emptyContents();
  switch (datatype) {
    case 'BOOL':
      return c.bool_contents;
    case 'UINT8':
      return Uint8Array.from(checkRange(name, datatype, c.uint_contents));
    case 'UINT16':
      return Uint16Array.from(checkRange(name, datatype, c.uint_contents));
    case 'UINT32':
      return Uint32Array.from(c.uint_contents);
    case 'UINT64':
      return BigUint64Array.from(c.uint64_contents, (v) => BigInt(v));
    case 'INT8':
      return Int8Array.from(checkRange(name, datatype, c.int_contents));
    case 'INT16':
      return Int16Array.from(checkRange(name, datatype, c.int_contents));
    case 'INT32':
      return Int32Array.from(c.int_contents);
    case 'INT64':
      return BigInt64Array.from(c.int64_contents, (v) => BigInt(v));
    case 'FP32':
      return Float32Array.from(c.fp32_contents);
    case 'FP64':
      return Float64Array.from(c.fp64_contents);
    // TensorValues carries BYTES elements as strings: UTF-8 text is what the models served take.
    case 'BYTES':
      return c.bytes_contents.map((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8'));
  }
}

function emptyContents(): WireTensorContents {
  return {
    bool_contents: [],
    int_contents: [],
    int64_contents: [],
    uint_contents: [],
    uint64_contents: [],
    fp32_contents: [],
    fp64_contents: [],
    bytes_contents: [],
  };
}

/** A typed array constructor would wrap out-of-range values silently; refuse them instead. */
function checkRange(input: string, datatype: Datatype, values: readonly number[]): readonly number[] {
  const range = INT_RANGE[datatype];
  if (range === undefined) return values;
  const [lo, hi] = range;
  const at = values.findIndex((v) => v < lo || v > hi);
  if (at >= 0)
    throw invalid(`input '${input}' is ${datatype} but holds ${values[at]} at index ${at}, outside ${lo}..${hi}`);
  return values;
}

/**
 * One raw_input_contents entry as a typed array. The bytes are copied into a fresh ArrayBuffer:
 * the entry is a view into the received message at any offset, and a Float32Array (say) needs a
 * 4-byte-aligned start. FP16 comes through as its bit patterns in a Uint16Array (what
 * onnxruntime's float16 tensors take); the data plane decides whether the model accepts FP16.
 */
function decodeRaw(input: string, datatype: string, shape: readonly number[], bytes: Uint8Array): TensorValues {
  if (!isDatatype(datatype)) throw unknownDatatype(input, datatype);
  const expected = shape.reduce((a, b) => a * b, 1);
  if (datatype === 'BYTES') {
    const strings = decodeRawBytes(input, bytes);
    if (strings.length !== expected) throw countMismatch(input, strings.length, shape, expected);
    return strings;
  }
  const size = ELEMENT_BYTES[datatype];
  if (bytes.byteLength % size !== 0) {
    throw invalid(
      `raw contents of input '${input}' are ${bytes.byteLength} bytes, not a multiple of ${size} (the size of one ${datatype} element)`,
    );
  }
  const count = bytes.byteLength / size;
  if (count !== expected) throw countMismatch(input, count, shape, expected);
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  if (!LITTLE_ENDIAN) swapBytes(copy, size);
  const buffer = copy.buffer;
  switch (datatype) {
    case 'BOOL':
      return Array.from(copy, (b) => b !== 0);
    case 'UINT8':
      return copy;
    case 'INT8':
      return new Int8Array(buffer);
    case 'UINT16':
    case 'FP16':
      return new Uint16Array(buffer);
    case 'INT16':
      return new Int16Array(buffer);
    case 'UINT32':
      return new Uint32Array(buffer);
    case 'INT32':
      return new Int32Array(buffer);
    case 'FP32':
      return new Float32Array(buffer);
    case 'UINT64':
      return new BigUint64Array(buffer);
    case 'INT64':
      return new BigInt64Array(buffer);
    case 'FP64':
      return new Float64Array(buffer);
  }
}

function countMismatch(input: string, got: number, shape: readonly number[], expected: number): OfframpError {
  return new OfframpError('OFFRAMP_ELEMENT_COUNT_MISMATCH', { input, got, shape: `[${shape.join(',')}]`, expected });
}

/** Raw BYTES (Triton's layout): each element as a 4-byte little-endian length, then its bytes. */
function decodeRawBytes(input: string, bytes: Uint8Array): string[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: string[] = [];
  let at = 0;
  while (at < bytes.byteLength) {
    if (at + 4 > bytes.byteLength)
      throw invalid(`raw BYTES contents of input '${input}' end inside the length of element ${out.length}`);
    const length = view.getUint32(at, true);
    at += 4;
    if (at + length > bytes.byteLength)
      throw invalid(
        `raw BYTES element ${out.length} of input '${input}' claims ${length} bytes but only ${bytes.byteLength - at} remain`,
      );
    out.push(Buffer.from(bytes.buffer, bytes.byteOffset + at, length).toString('utf8'));
    at += length;
  }
  return out;
}

function swapBytes(bytes: Uint8Array, size: number): void {
  if (size === 1) return;
  for (let at = 0; at < bytes.length; at += size) bytes.subarray(at, at + size).reverse();
}

/**
 * InferParameter map → Parameters. int64/uint64 values become numbers when they are safe
 * integers; a larger one stays a decimal string rather than being rounded (the data plane
 * rejects it where it expects a number, e.g. `priority`, and ignores it otherwise). A parameter
 * with no member set (or one this proto does not know) is skipped, as protobuf skips unknown
 * fields.
 */
export function toParameters(wire: WireParameters): Parameters | undefined {
  const keys = Object.keys(wire);
  if (keys.length === 0) return undefined;
  const out: Parameters = {};
  for (const key of keys) {
    const p = wire[key]!;
    switch (p.parameter_choice) {
      case 'bool_param':
        out[key] = p.bool_param ?? false;
        break;
      case 'string_param':
        out[key] = p.string_param ?? '';
        break;
      case 'double_param':
        out[key] = p.double_param ?? 0;
        break;
      case 'int64_param':
        out[key] = intParameter(p.int64_param);
        break;
      case 'uint64_param':
        out[key] = intParameter(p.uint64_param);
        break;
      case undefined:
        break;
    }
  }
  return out;
}

function intParameter(text: string | undefined): number | string {
  const value = Number(text ?? '0');
  return Number.isSafeInteger(value) ? value : (text ?? '0');
}

// ---- Response --------------------------------------------------------------------------------

/**
 * InferResponse → ModelInferResponse. `raw` answers every output in raw_output_contents (and
 * leaves `contents` unset); otherwise outputs carry typed contents.
 */
export function fromInferResponse(response: InferResponse, raw: boolean): OutModelInferResponse {
  const outputs = response.outputs.map((output): OutInferOutputTensor => {
    const tensor: OutInferOutputTensor = { name: output.name, datatype: output.datatype, shape: output.shape };
    if (output.parameters !== undefined) tensor.parameters = fromParameters(output.parameters);
    if (!raw) tensor.contents = encodeContents(output);
    return tensor;
  });
  const message: OutModelInferResponse = {
    model_name: response.modelName,
    model_version: response.modelVersion,
    id: response.id,
    parameters: fromParameters(response.parameters),
    outputs,
  };
  if (raw) message.raw_output_contents = response.outputs.map(encodeRaw);
  return message;
}

/**
 * Parameters → InferParameter map. A JS number carries no int/float distinction: safe integers
 * go out as int64_param, anything else as double_param (so a float that happens to be whole,
 * e.g. `confidence` = 1, arrives as int64_param 1; clients should accept either).
 */
export function fromParameters(parameters: Parameters): OutParameters {
  const out: OutParameters = {};
  for (const [key, value] of Object.entries(parameters)) {
    if (typeof value === 'boolean') out[key] = { bool_param: value };
    else if (typeof value === 'string') out[key] = { string_param: value };
    else if (Number.isSafeInteger(value)) out[key] = { int64_param: value };
    else out[key] = { double_param: value };
  }
  return out;
}

type OutputData = OutputTensor['data'];

function encodeContents(output: OutputTensor): OutTensorContents {
  const { datatype, data } = output;
  if (datatype === 'FP16')
    throw new OfframpError('OFFRAMP_INTERNAL', {
      reason: `output '${output.name}' is FP16, which has no typed contents field`,
    });
  checkOutputData(output);
  const field = CONTENTS_FIELD[datatype];
  return { [field]: contentsValues(data) };
}

function contentsValues(data: OutputData): OutTensorContents[ContentsField] {
  if (Array.isArray(data)) return data.map((s) => Buffer.from(s, 'utf8'));
  if (data instanceof BigInt64Array) return Array.from(data, (v) => v.toString());
  return Array.from(data);
}

/** An output whose array kind disagrees with its datatype is a server bug, not a client error. */
function checkOutputData(output: OutputTensor): void {
  const { datatype, data } = output;
  const ok = Array.isArray(data)
    ? datatype === 'BYTES'
    : datatype !== 'BYTES' && ELEMENT_BYTES[datatype] === data.BYTES_PER_ELEMENT;
  if (!ok)
    throw new OfframpError('OFFRAMP_INTERNAL', {
      reason: `output '${output.name}' is ${datatype} but its data is a ${data.constructor.name}`,
    });
}

function encodeRaw(output: OutputTensor): Buffer {
  checkOutputData(output);
  const { data } = output;
  if (Array.isArray(data)) {
    const parts = data.map((s) => Buffer.from(s, 'utf8'));
    const out = Buffer.alloc(parts.reduce((n, p) => n + 4 + p.length, 0));
    let at = 0;
    for (const part of parts) {
      out.writeUInt32LE(part.length, at);
      part.copy(out, at + 4);
      at += 4 + part.length;
    }
    return out;
  }
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (LITTLE_ENDIAN) return bytes;
  const swapped = Buffer.from(bytes);
  swapBytes(swapped, data.BYTES_PER_ELEMENT);
  return swapped;
}
