/**
 * The KServe v2 binary tensor data extension over HTTP, as NVIDIA Triton implements it: the framing
 * only (pure functions, no fastify); the element bytes are src/data-plane/tensor-bytes.ts's, which
 * gRPC's raw contents use too.
 *
 * Request: the body is the JSON inference request followed by raw tensor bytes, and the header
 * `Inference-Header-Content-Length` gives the JSON part's length (absent: the whole body is JSON).
 * An input sent as bytes has `"parameters": {"binary_data_size": N}` and no `data`; the blobs
 * follow the JSON in input order, with nothing between them and nothing after the last.
 *
 * Response: an output goes back as bytes when its entry in the request's `outputs` has
 * `"parameters": {"binary_data": true}`, or when the request has
 * `"parameters": {"binary_data_output": true}` and the output's entry does not say otherwise (a
 * request without `outputs` gets every output in the request-level choice). Such an output has
 * `"parameters": {"binary_data_size": N}` and no `data`; the body is the JSON followed by the blobs
 * in output order, and carries `Inference-Header-Content-Length` and
 * `Content-Type: application/octet-stream`, as Triton's does. A response with no binary output is
 * plain JSON.
 */
import { decodeTensorBytes, shapeText, tensorByteSize } from '../data-plane/tensor-bytes.js';
import type { InputTensor, Parameters, RequestedOutput, TensorValues } from '../data-plane/types.js';
import { OfframpError } from '../errors.js';

/** The extension's name in the server metadata (GET /v2), as Triton reports it. */
export const BINARY_TENSOR_DATA_EXTENSION = 'binary_tensor_data';
/** The header giving the JSON part's length, lower-case as node hands request headers over. */
export const INFERENCE_HEADER = 'inference-header-content-length';
/** The content type of a response that carries binary outputs (Triton's). */
export const BINARY_CONTENT_TYPE = 'application/octet-stream';

/** The request parameter asking for every output as bytes, and the per-output one. */
const BINARY_DATA_OUTPUT = 'binary_data_output';
const BINARY_DATA = 'binary_data';
/** An input's (and a binary output's) blob length in bytes. */
export const BINARY_DATA_SIZE = 'binary_data_size';

const EMPTY = Buffer.alloc(0);

/** Longest header value echoed back in an error message. */
const MAX_ECHO = 40;

export interface SplitBody {
  /** The JSON part. */
  json: Buffer;
  /** Everything after it: the blobs of the binary inputs. */
  binary: Buffer;
}

/**
 * Splits a body at `Inference-Header-Content-Length` (`header` as node gives it; absent: all
 * JSON). The parts are views onto `body`, not copies.
 */
export function splitBody(body: Buffer, header: string | string[] | undefined): SplitBody {
  if (header === undefined) return { json: body, binary: EMPTY };
  // Node joins a repeated custom header with ", ", which then fails the digits test below.
  const text = Array.isArray(header) ? header.join(', ') : header;
  const length = /^\s*\d+\s*$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(length) || length > body.length) {
    const shown = text.length > MAX_ECHO ? `${text.slice(0, MAX_ECHO)}…` : text;
    throw new OfframpError('OFFRAMP_INFERENCE_HEADER_LENGTH', { got: JSON.stringify(shown), bodyBytes: body.length });
  }
  return { json: body.subarray(0, length), binary: body.subarray(length) };
}

/** An input tensor as the JSON describes it, before its data is attached. */
export type InputHead = Omit<InputTensor, 'data'>;

/** An input as the JSON gives it: its data inline, or the length of its blob in the binary part. */
export type ParsedInput = { head: InputHead; data: TensorValues } | { head: InputHead; binaryDataSize: number };

/** Whether an input's parameters declare it binary (then it must have no `data`). */
export function hasBinaryDataSize(parameters: Parameters | undefined): parameters is Parameters {
  return parameters !== undefined && Object.hasOwn(parameters, BINARY_DATA_SIZE);
}

/**
 * The `binary_data_size` of an input that declares one: an integer ≥ 0 that, for a fixed-size
 * datatype, equals the shape's element count × the element size (BYTES elements vary in length:
 * their count is checked when they are decoded). Throws OFFRAMP_BAD_PARAMETER,
 * OFFRAMP_BINARY_SIZE_MISMATCH or (unknown datatype) OFFRAMP_WRONG_DATATYPE.
 */
export function binaryDataSize(head: InputHead): number {
  const value = head.parameters?.[BINARY_DATA_SIZE];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
    throw new OfframpError('OFFRAMP_BAD_PARAMETER', {
      parameter: BINARY_DATA_SIZE,
      got: JSON.stringify(value),
      expected: `a whole number of bytes ≥ 0 (the length of input '${head.name}' after the JSON)`,
    });
  const expected = tensorByteSize(head.name, head.datatype, head.shape);
  if (expected !== undefined && expected !== value)
    throw new OfframpError('OFFRAMP_BINARY_SIZE_MISMATCH', {
      input: head.name,
      got: value,
      datatype: head.datatype,
      shape: shapeText(head.shape),
      expected,
    });
  return value;
}

/**
 * The inputs with their data: inline data as given, binary inputs decoded from their slice of
 * `binary`, which their sizes must cover exactly (OFFRAMP_BINARY_DATA_LENGTH otherwise). Typed
 * data is a view onto `binary` where its alignment allows (tensor-bytes.ts).
 */
export function attachBinaryData(inputs: readonly ParsedInput[], binary: Uint8Array): InputTensor[] {
  const declared = inputs.reduce((sum, p) => sum + ('binaryDataSize' in p ? p.binaryDataSize : 0), 0);
  if (declared !== binary.byteLength)
    throw new OfframpError('OFFRAMP_BINARY_DATA_LENGTH', { actual: binary.byteLength, declared });
  let at = 0;
  return inputs.map((p): InputTensor => {
    if ('data' in p) return { ...p.head, data: p.data };
    const bytes = binary.subarray(at, at + p.binaryDataSize);
    at += p.binaryDataSize;
    return { ...p.head, data: decodeTensorBytes(p.head.name, p.head.datatype, p.head.shape, bytes) };
  });
}

/** A boolean parameter, absent = undefined; anything but true/false is OFFRAMP_BAD_PARAMETER. */
function booleanParameter(parameters: Parameters | undefined, name: string, what: string): boolean | undefined {
  const value = parameters?.[name];
  if (value === undefined || typeof value === 'boolean') return value;
  throw new OfframpError('OFFRAMP_BAD_PARAMETER', {
    parameter: name,
    got: JSON.stringify(value),
    expected: `true or false (${what})`,
  });
}

/**
 * Which outputs go back as bytes (see the module comment). Checks the parameters' types up front,
 * so a bad one is answered before the model runs.
 */
export function binaryOutputChoice(
  parameters: Parameters,
  outputs: readonly RequestedOutput[] | undefined,
): (output: string) => boolean {
  const all = booleanParameter(parameters, BINARY_DATA_OUTPUT, 'whether every output comes back as bytes') ?? false;
  const perOutput = new Map<string, boolean>();
  for (const output of outputs ?? []) {
    const choice = booleanParameter(
      output.parameters,
      BINARY_DATA,
      `whether output '${output.name}' comes back as bytes`,
    );
    if (choice !== undefined) perOutput.set(output.name, choice);
  }
  return (output) => perOutput.get(output) ?? all;
}

export interface FramedResponse {
  body: Buffer;
  /** The JSON part's length: the response's Inference-Header-Content-Length. */
  jsonBytes: number;
}

/** The JSON response followed by the binary outputs' blobs, in output order. */
export function frameResponse(json: unknown, blobs: readonly Uint8Array[]): FramedResponse {
  const head = Buffer.from(JSON.stringify(json), 'utf8');
  return { body: Buffer.concat([head, ...blobs]), jsonBytes: head.length };
}
