/**
 * KServe v2 gRPC messages ↔ the data plane's request/response types (one data plane, thin
 * transports: docs/architecture.md): decoding and encoding only. What the data plane checks
 * (datatype against the model, shape, element count of typed contents) is left to it; what only
 * this transport can check (the structure of the message, integer ranges of the wire types) is
 * checked here, as coded errors; raw contents go through the codec HTTP's binary tensors use too
 * (src/data-plane/tensor-bytes.ts).
 */
import {
  checkOutputData,
  decodeTensorBytes,
  decodeTextElement,
  encodeTensorBytes,
  isDatatype,
  unknownDatatype,
} from '../data-plane/tensor-bytes.js';
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

/** Value range of the narrow integer types, which travel in 32-bit protobuf fields. */
const INT_RANGE: Readonly<Partial<Record<Datatype, readonly [number, number]>>> = {
  INT8: [-128, 127],
  INT16: [-32768, 32767],
  UINT8: [0, 255],
  UINT16: [0, 65535],
};

function invalid(reason: string): OfframpError {
  return new OfframpError('OFFRAMP_INVALID_REQUEST', { reason });
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
        throw new OfframpError('OFFRAMP_DATA_GIVEN_TWICE', {
          input: tensor.name,
          how: 'typed contents and raw_input_contents',
        });
      }
      data = decodeTensorBytes(tensor.name, tensor.datatype, shape, raw[i]!);
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
      return c.bytes_contents.map((b, i) => decodeTextElement(name, i, b));
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
  if (raw) message.raw_output_contents = response.outputs.map(encodeTensorBytes);
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
