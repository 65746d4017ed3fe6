/**
 * KServe v2 JSON ⇄ the internal request/response types (src/data-plane/types.ts).
 *
 * This is the HTTP boundary's validation (once, here; inner layers trust it): it checks the
 * *structure* of the JSON and the JSON-specific element types (BYTES are strings, BOOL are
 * booleans, numeric types are numbers, integer types are integers), naming the offending field.
 * Model-specific checks — known datatype, input names, shapes, element counts — are the data
 * plane's. Inputs and outputs sent as raw bytes (the binary tensor data extension) are framed by
 * binary-tensors.ts.
 */

import { encodeTensorBytes } from '../data-plane/tensor-bytes.js';
import {
  DATATYPES,
  type InferRequest,
  type InferResponse,
  type OutputTensor,
  type Parameters,
  type RequestedOutput,
  type TensorValues,
} from '../data-plane/types.js';
import { OfframpError } from '../errors.js';
import {
  BINARY_DATA_SIZE,
  attachBinaryData,
  binaryDataSize,
  hasBinaryDataSize,
  type InputHead,
  type ParsedInput,
} from './binary-tensors.js';

/** Deeper nesting than any tensor has; bounds the work a hostile body can cause. */
export const MAX_DATA_DEPTH = 64;

// Derived from the one datatype list: which JSON `data` values each datatype accepts.
const INTEGER_DATATYPES: ReadonlySet<string> = new Set(DATATYPES.filter((d) => /^U?INT\d+$/.test(d)));
const FLOAT_DATATYPES: ReadonlySet<string> = new Set(DATATYPES.filter((d) => d.startsWith('FP')));

/** The part of an InferRequest the body carries (the URL gives the model, the connection the signal). */
export type InferBody = Pick<InferRequest, 'id' | 'parameters' | 'inputs' | 'outputs'>;

/** KServe v2 inference response JSON. */
export interface InferResponseJson {
  model_name: string;
  model_version?: string;
  id: string;
  parameters: Parameters;
  outputs: OutputTensorJson[];
}

export interface OutputTensorJson {
  name: string;
  datatype: string;
  shape: number[];
  /** Absent when the output is sent as bytes after the JSON (then `parameters.binary_data_size` is set). */
  data?: number[] | string[];
  parameters?: Parameters;
}

function invalid(reason: string): OfframpError<'OFFRAMP_INVALID_REQUEST'> {
  return new OfframpError('OFFRAMP_INVALID_REQUEST', { reason });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string')
    return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  if (typeof value === 'object') return 'an object';
  // What is left is a scalar (number, boolean, bigint, undefined, symbol) or a function.
  const scalar = value as number | boolean | bigint | symbol | undefined;
  return `${typeof value} ${String(scalar)}`;
}

const NO_BYTES = new Uint8Array(0);

/**
 * Validates a parsed JSON body as a KServe v2 inference request and attaches the binary inputs'
 * data from `binary`, the bytes that followed the JSON (none for an all-JSON body). Throws
 * OFFRAMP_INVALID_REQUEST naming the field, or the binary extension's codes.
 */
export function parseInferBody(body: unknown, binary: Uint8Array = NO_BYTES): InferBody {
  if (!isRecord(body)) throw invalid(`the body must be a JSON object, got ${describe(body)}`);

  let id: string | undefined;
  if (body.id !== undefined) {
    if (typeof body.id !== 'string') throw invalid(`'id' must be a string, got ${describe(body.id)}`);
    id = body.id;
  }

  const parameters = body.parameters === undefined ? {} : parseParameters(body.parameters, 'parameters');

  if (body.inputs === undefined) throw invalid("'inputs' is missing (a list of input tensors)");
  if (!Array.isArray(body.inputs))
    throw invalid(`'inputs' must be a list of input tensors, got ${describe(body.inputs)}`);
  const inputs = attachBinaryData(
    body.inputs.map((input: unknown, i) => parseInput(input, `inputs[${i}]`)),
    binary,
  );

  let outputs: RequestedOutput[] | undefined;
  if (body.outputs !== undefined) {
    if (!Array.isArray(body.outputs)) throw invalid(`'outputs' must be a list, got ${describe(body.outputs)}`);
    outputs = body.outputs.map((output: unknown, i) => parseRequestedOutput(output, `outputs[${i}]`));
  }

  const parsed: InferBody = { parameters, inputs };
  if (id !== undefined) parsed.id = id;
  if (outputs !== undefined) parsed.outputs = outputs;
  return parsed;
}

function parseParameters(value: unknown, where: string): Parameters {
  if (!isRecord(value)) throw invalid(`'${where}' must be an object, got ${describe(value)}`);
  const entries = Object.entries(value);
  for (const [key, v] of entries) {
    if (typeof v !== 'string' && typeof v !== 'boolean' && !(typeof v === 'number' && Number.isFinite(v))) {
      throw invalid(`'${where}.${key}' must be a string, number or boolean, got ${describe(v)}`);
    }
  }
  // fromEntries defines own properties, so a key named "__proto__" stays a plain key.
  return Object.fromEntries(entries) as Parameters;
}

function parseName(value: Record<string, unknown>, where: string): string {
  if (value.name === undefined) throw invalid(`'${where}.name' is missing`);
  if (typeof value.name !== 'string' || value.name === '')
    throw invalid(`'${where}.name' must be a non-empty string, got ${describe(value.name)}`);
  return value.name;
}

function parseInput(value: unknown, where: string): ParsedInput {
  if (!isRecord(value)) throw invalid(`'${where}' must be an object, got ${describe(value)}`);
  const name = parseName(value, where);

  if (value.datatype === undefined) throw invalid(`'${where}.datatype' is missing`);
  if (typeof value.datatype !== 'string')
    throw invalid(`'${where}.datatype' must be a string, got ${describe(value.datatype)}`);
  const datatype = value.datatype;

  if (value.shape === undefined) throw invalid(`'${where}.shape' is missing`);
  if (!Array.isArray(value.shape))
    throw invalid(`'${where}.shape' must be a list of dimensions, got ${describe(value.shape)}`);
  const shape = value.shape.map((d: unknown, i) => {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0)
      throw invalid(`'${where}.shape[${i}]' must be an integer ≥ 0, got ${describe(d)}`);
    return d;
  });

  const head: InputHead = { name, datatype, shape };
  const parameters =
    value.parameters === undefined ? undefined : parseParameters(value.parameters, `${where}.parameters`);
  if (hasBinaryDataSize(parameters)) {
    if (value.data !== undefined)
      throw new OfframpError('OFFRAMP_DATA_GIVEN_TWICE', { input: name, how: `'data' and '${BINARY_DATA_SIZE}'` });
    const size = binaryDataSize({ ...head, parameters });
    // The size is framing, not a property of the tensor: the data plane sees the same request either way.
    const { [BINARY_DATA_SIZE]: _framing, ...rest } = parameters;
    if (Object.keys(rest).length > 0) head.parameters = rest;
    return { head, binaryDataSize: size };
  }

  if (value.data === undefined) throw invalid(`'${where}.data' is missing (or send it as bytes: ${BINARY_DATA_SIZE})`);
  if (!Array.isArray(value.data))
    throw invalid(`'${where}.data' must be a list (flat or nested, row-major), got ${describe(value.data)}`);
  const data = toTensorValues(flatten(value.data, `${where}.data`), datatype, `${where}.data`);
  if (parameters !== undefined) head.parameters = parameters;
  return { head, data };
}

function parseRequestedOutput(value: unknown, where: string): RequestedOutput {
  if (!isRecord(value)) throw invalid(`'${where}' must be an object, got ${describe(value)}`);
  const output: RequestedOutput = { name: parseName(value, where) };
  if (value.parameters !== undefined) output.parameters = parseParameters(value.parameters, `${where}.parameters`);
  return output;
}

/** Nested arrays → one row-major list. Iterative, so deep nesting cannot overflow the stack. */
function flatten(data: unknown[], where: string): unknown[] {
  if (!data.some(Array.isArray)) return data; // the common case: already flat, no copy
  const out: unknown[] = [];
  const stack: { items: unknown[]; next: number }[] = [{ items: data, next: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.next >= top.items.length) {
      stack.pop();
      continue;
    }
    const item = top.items[top.next++];
    if (Array.isArray(item)) {
      if (stack.length >= MAX_DATA_DEPTH) throw invalid(`'${where}' is nested deeper than ${MAX_DATA_DEPTH} levels`);
      stack.push({ items: item, next: 0 });
    } else {
      out.push(item);
    }
  }
  return out;
}

/**
 * Checks the element types JSON can get wrong and types the list. An unknown datatype is passed
 * through (the data plane reports it as a coded error), provided its elements are of one kind.
 */
function toTensorValues(flat: unknown[], datatype: string, where: string): TensorValues {
  const bad = (i: number, expected: string): OfframpError =>
    invalid(`'${where}' element ${i} is ${describe(flat[i])}; ${datatype} data must be ${expected}`);

  if (datatype === 'BYTES') {
    for (let i = 0; i < flat.length; i++) if (typeof flat[i] !== 'string') throw bad(i, 'strings');
    return flat as string[];
  }
  if (datatype === 'BOOL') {
    for (let i = 0; i < flat.length; i++) if (typeof flat[i] !== 'boolean') throw bad(i, 'true/false');
    return flat as boolean[];
  }
  if (INTEGER_DATATYPES.has(datatype)) {
    for (let i = 0; i < flat.length; i++) {
      const v = flat[i];
      if (typeof v !== 'number' || !Number.isInteger(v)) throw bad(i, 'integers');
    }
    return flat as number[];
  }
  if (FLOAT_DATATYPES.has(datatype)) {
    for (let i = 0; i < flat.length; i++) if (typeof flat[i] !== 'number') throw bad(i, 'numbers');
    return flat as number[];
  }
  // Unknown datatype: the data plane rejects it by name; here only keep the list homogeneous.
  const kind = flat.length === 0 ? 'number' : typeof flat[0];
  if (kind !== 'number' && kind !== 'string' && kind !== 'boolean')
    throw invalid(`'${where}' element 0 is ${describe(flat[0])}; tensor data must be numbers, strings or booleans`);
  for (let i = 1; i < flat.length; i++) {
    if (typeof flat[i] !== kind)
      throw invalid(
        `'${where}' element ${i} is ${describe(flat[i])} but element 0 is a ${kind}; tensor data must be of one kind`,
      );
  }
  return flat as number[] | string[] | boolean[];
}

export interface FormattedResponse {
  json: InferResponseJson;
  /** The binary outputs' bytes, in output order; empty when every output is in the JSON. */
  blobs: Buffer[];
}

/**
 * The internal response as KServe v2 JSON: typed arrays become JSON arrays (BigInt64 → numbers),
 * except for the outputs `binary` picks, whose bytes go to `blobs` (binary-tensors.ts frames them).
 */
export function formatInferResponse(
  response: InferResponse,
  binary: (output: string) => boolean = () => false,
): FormattedResponse {
  const blobs: Buffer[] = [];
  const outputs = response.outputs.map((output): OutputTensorJson => {
    const json: OutputTensorJson = { name: output.name, datatype: output.datatype, shape: output.shape };
    if (binary(output.name)) {
      const bytes = encodeTensorBytes(output);
      blobs.push(bytes);
      json.parameters = { ...output.parameters, [BINARY_DATA_SIZE]: bytes.length };
    } else {
      json.data = tensorDataToJson(output.data);
      if (output.parameters !== undefined) json.parameters = output.parameters;
    }
    return json;
  });
  const json: InferResponseJson = {
    model_name: response.modelName,
    // KServe: a server without versions leaves model_version out.
    ...(response.modelVersion === '' ? {} : { model_version: response.modelVersion }),
    id: response.id,
    parameters: response.parameters,
    outputs,
  };
  return { json, blobs };
}

function tensorDataToJson(data: OutputTensor['data']): number[] | string[] {
  if (Array.isArray(data)) return data;
  // INT64 values beyond 2^53 lose precision as JSON numbers; class indices and counts never get there.
  if (data instanceof BigInt64Array) return Array.from(data, Number);
  // Nine significant digits round-trip any float32 exactly, without the noise of its double value
  // (0.1f is 0.100000001, not 0.10000000149011612).
  if (data instanceof Float32Array) return Array.from(data, (v) => Number(v.toPrecision(9)));
  return Array.from(data);
}
