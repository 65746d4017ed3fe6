/**
 * The wire format of one infer request, as the load generators send it. The bodies file holds
 * KServe v2 JSON bodies (one per line); with `binary` each is re-encoded once, at load, in the
 * KServe v2 binary tensor data extension as Triton implements it:
 *
 *   body    = JSON header, then each input's raw bytes in input order
 *   header  {"inputs":[{"name","shape","datatype":"UINT8","parameters":{"binary_data_size":N}}]}
 *   HTTP    Inference-Header-Content-Length: <byte length of the JSON header>
 *           Content-Type: application/octet-stream
 *
 * UINT8 inputs (the bench's pixels 0..255) are one byte per element; FP32 inputs (the
 * serving-overhead bench's scaled rows) four, little-endian; BYTES inputs (a text model's emails)
 * each element's UTF-8 bytes after its 4-byte little-endian length, the layout the server's
 * src/data-plane/tensor-bytes.ts decodes. `binary_data_size` is in bytes.
 */
import { encodeBytesElements } from '../../src/data-plane/tensor-bytes.js';

export type BodyFormat = 'binary' | 'json';
export const BODY_FORMATS: readonly BodyFormat[] = ['binary', 'json'];

export function isBodyFormat(x: unknown): x is BodyFormat {
  return BODY_FORMATS.includes(x as BodyFormat);
}

/** A request ready to send: the bytes and the headers that describe them. */
export interface RequestBody {
  body: Buffer;
  headers: Record<string, string | number>;
}

/** One input tensor of a KServe v2 JSON request, as the bench writes it: numbers, or texts for BYTES. */
export interface RequestInput {
  name: string;
  shape: number[];
  datatype: string;
  data: number[] | string[];
}

/** Raw little-endian, row-major bytes of a JSON `data` array, per datatype the bench sends. */
const RAW_ENCODERS: Readonly<Record<string, (data: readonly (number | string)[]) => Buffer>> = {
  UINT8: (data) => Buffer.from(Uint8Array.from(data as readonly number[])),
  FP32: (data) => {
    const out = Buffer.alloc(data.length * 4);
    data.forEach((x, i) => out.writeFloatLE(x as number, i * 4));
    return out;
  },
  BYTES: (data) => encodeBytesElements(data.map(String)),
};

/** One KServe v2 JSON body → the binary extension's body and its header length. */
export function encodeBinaryBody(json: string): { body: Buffer; headerLength: number } {
  const request = JSON.parse(json) as { inputs?: RequestInput[] };
  const inputs = request.inputs ?? [];
  if (inputs.length === 0) throw new Error('encodeBinaryBody: the request has no inputs');
  const raw: Buffer[] = [];
  const headerInputs = inputs.map((input) => {
    const encode = RAW_ENCODERS[input.datatype];
    if (!encode) throw new Error(`encodeBinaryBody: ${input.name} is ${input.datatype}, not UINT8, FP32 or BYTES`);
    const elements = input.shape.reduce((a, b) => a * b, 1);
    if (input.data.length !== elements)
      throw new Error(
        `encodeBinaryBody: ${input.name} has ${input.data.length} values for shape [${input.shape.join(', ')}]`,
      );
    const bytes = encode(input.data);
    raw.push(bytes);
    return {
      name: input.name,
      shape: input.shape,
      datatype: input.datatype,
      parameters: { binary_data_size: bytes.length },
    };
  });
  const header = Buffer.from(JSON.stringify({ inputs: headerInputs }), 'utf8');
  return { body: Buffer.concat([header, ...raw]), headerLength: header.length };
}

/** One JSON body (a line of the bodies file) in the chosen format. */
export function requestBody(json: string, format: BodyFormat): RequestBody {
  if (format === 'json') {
    const body = Buffer.from(json, 'utf8');
    return { body, headers: { 'content-type': 'application/json', 'content-length': body.length } };
  }
  const { body, headerLength } = encodeBinaryBody(json);
  return {
    body,
    headers: {
      'content-type': 'application/octet-stream',
      'content-length': body.length,
      'inference-header-content-length': headerLength,
    },
  };
}

/** Reads a bodies file (one JSON body per line) into ready-to-send requests. */
export function loadBodies(text: string, format: BodyFormat): RequestBody[] {
  return text
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => requestBody(line, format));
}
