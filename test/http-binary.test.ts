/**
 * The binary tensor data extension over HTTP: the framing and tensor-bytes codec as pure
 * functions, the transport with fastify.inject() against the fake DataPlane, and one end-to-end
 * run over a real socket against the bundled model served by the real engine.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { decodeTensorBytes, encodeTensorBytes } from '../src/data-plane/tensor-bytes.js';
import type { InferRequest, InferResponse, OutputTensor } from '../src/data-plane/types.js';
import { OfframpError } from '../src/errors.js';
import { splitBody } from '../src/http/binary-tensors.js';
import { startServer, type RunningServer } from '../src/server.js';
import { bundledConfig, testImages } from './helpers/bundled.js';
import { FakeDataPlane, type FakeModel } from './helpers/fake-data-plane.js';
import { closeHttpHarnesses, httpHarness, type HttpHarness } from './helpers/http-harness.js';

const MODEL = 'tiny';
const TINY_MODEL: FakeModel = {
  metadata: {
    name: MODEL,
    versions: ['1'],
    platform: 'onnxruntime_onnx',
    inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 2, 2] }],
    outputs: [{ name: 'scores', datatype: 'FP32', shape: [-1, 4] }],
  },
};

/** Answers from the first input's values, so a test sees that binary and JSON inputs arrive alike. */
function answer(request: InferRequest): InferResponse {
  const values = Array.from(request.inputs[0]?.data ?? [], Number);
  return {
    id: request.id ?? 'generated-id',
    modelName: request.modelName,
    modelVersion: '1',
    parameters: { early: true },
    outputs: [
      { name: 'scores', datatype: 'FP32', shape: [1, values.length], data: Float32Array.from(values, (v) => v / 3) },
      { name: 'class', datatype: 'INT64', shape: [1], data: new BigInt64Array([BigInt(values.length)]) },
      { name: 'label', datatype: 'BYTES', shape: [2], data: ['Ankle boot', 'ünïcode'], parameters: { per_row: true } },
      { name: 'exit_ramp', datatype: 'INT32', shape: [1], data: new Int32Array([-1]) },
    ],
  };
}

function harness(maxBodyBytes = 64 * 1024): HttpHarness {
  const plane = new FakeDataPlane({ models: [TINY_MODEL], infer: (request) => Promise.resolve(answer(request)) });
  return httpHarness(plane, { maxBodyBytes });
}

afterEach(closeHttpHarnesses);

const bytesOf = (a: ArrayBufferView): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** BYTES elements in the wire layout: a 4-byte little-endian length, then the bytes. */
function bytesElements(strings: string[]): Buffer {
  return Buffer.concat(
    strings.flatMap((s) => {
      const b = Buffer.from(s, 'utf8');
      const length = Buffer.alloc(4);
      length.writeUInt32LE(b.length);
      return [length, b];
    }),
  );
}

/** A body in the extension's framing: the JSON, then the blobs; and its headers. */
function framed(json: unknown, blobs: Uint8Array[], contentType = 'application/octet-stream') {
  const head = Buffer.from(JSON.stringify(json));
  return {
    payload: Buffer.concat([head, ...blobs]),
    headers: { 'content-type': contentType, 'inference-header-content-length': String(head.length) },
  };
}

function post(app: FastifyInstance, body: { payload: Buffer | string; headers: Record<string, string> }) {
  return app.inject({ method: 'POST', url: `/v2/models/${MODEL}/infer`, headers: body.headers, payload: body.payload });
}

function postJson(app: FastifyInstance, json: unknown) {
  return post(app, { payload: JSON.stringify(json), headers: { 'content-type': 'application/json' } });
}

interface OutputJson {
  name: string;
  datatype: string;
  shape: number[];
  data?: unknown[];
  parameters?: Record<string, unknown>;
}
interface ResponseJson {
  outputs: OutputJson[];
  [key: string]: unknown;
}

/**
 * A response in either framing as all-JSON: binary outputs decoded (as a client would) into
 * `data`, their `binary_data_size` dropped; checks the framing headers on the way.
 */
function decodeResponse(res: { headers: Record<string, unknown>; rawPayload: Buffer }): ResponseJson {
  const header = res.headers['inference-header-content-length'];
  const { json, binary } = splitBody(res.rawPayload, typeof header === 'string' ? header : undefined);
  const body = JSON.parse(json.toString('utf8')) as ResponseJson;
  let at = 0;
  for (const output of body.outputs) {
    const size = output.parameters?.['binary_data_size'];
    if (typeof size !== 'number') continue;
    const values = decodeTensorBytes(output.name, output.datatype, output.shape, binary.subarray(at, at + size));
    at += size;
    output.data =
      values instanceof BigInt64Array
        ? Array.from(values, Number)
        : values instanceof Float32Array
          ? Array.from(values, (v) => Number(v.toPrecision(9)))
          : Array.from(values as ArrayLike<unknown>);
    const { binary_data_size: _size, ...rest } = output.parameters!;
    if (Object.keys(rest).length > 0) output.parameters = rest;
    else delete output.parameters;
  }
  expect(at).toBe(binary.length);
  return body;
}

const X = [0.5, -1.25, 3, 0.125]; // exact in float32, so JSON and bytes carry the same values
const JSON_REQUEST = { id: 'r', inputs: [{ name: 'x', shape: [1, 2, 2], datatype: 'FP32', data: X }] };
const BINARY_X = { name: 'x', shape: [1, 2, 2], datatype: 'FP32', parameters: { binary_data_size: 16 } };

describe('tensor bytes codec (shared by gRPC raw contents and HTTP binary tensors)', () => {
  it('decodes an aligned FP32 blob as a view and an unaligned one as a copy, with equal values', () => {
    const backing = Buffer.from(new ArrayBuffer(21)); // starts at offset 0 of its own buffer
    bytesOf(new Float32Array(X)).copy(backing, 4);
    bytesOf(new Float32Array(X)).copy(backing, 1);
    const unaligned = decodeTensorBytes('x', 'FP32', [4], backing.subarray(1, 17));
    expect(unaligned).toEqual(new Float32Array(X));
    expect((unaligned as Float32Array).buffer).not.toBe(backing.buffer);
    bytesOf(new Float32Array(X)).copy(backing, 4);
    const aligned = decodeTensorBytes('x', 'FP32', [4], backing.subarray(4, 20));
    expect(aligned).toEqual(new Float32Array(X));
    expect((aligned as Float32Array).buffer).toBe(backing.buffer);
  });

  it('decodes BOOL as one byte per element and BYTES as length-prefixed UTF-8', () => {
    expect(decodeTensorBytes('b', 'BOOL', [3], new Uint8Array([1, 0, 1]))).toEqual([true, false, true]);
    expect(decodeTensorBytes('s', 'BYTES', [2], bytesElements(['a', 'ünï']))).toEqual(['a', 'ünï']);
  });

  it('encodes what it decodes, for every output kind', () => {
    const outputs: OutputTensor[] = answer({ modelName: MODEL, parameters: {}, inputs: [] }).outputs;
    for (const output of [...outputs, { ...outputs[0]!, data: new Float32Array([1.5, -2]), shape: [2] }]) {
      const again = decodeTensorBytes(output.name, output.datatype, output.shape, encodeTensorBytes(output));
      expect(again, output.name).toEqual(output.data);
    }
  });

  it('rejects BYTES whose lengths overrun, and a byte count that is not whole elements, with codes', () => {
    const overrun = Buffer.concat([bytesElements(['ok']), Buffer.from([9, 0, 0, 0, 65])]);
    const codeOf = (f: () => unknown): string | undefined => {
      try {
        f();
      } catch (err) {
        return OfframpError.is(err) ? err.code : 'not an OfframpError';
      }
      return undefined;
    };
    expect(codeOf(() => decodeTensorBytes('s', 'BYTES', [2], overrun))).toBe('OFFRAMP_MALFORMED_TENSOR_BYTES');
    expect(codeOf(() => decodeTensorBytes('s', 'BYTES', [2], Buffer.from([1, 0])))).toBe(
      'OFFRAMP_MALFORMED_TENSOR_BYTES',
    );
    expect(codeOf(() => decodeTensorBytes('x', 'FP32', [4], Buffer.alloc(15)))).toBe('OFFRAMP_MALFORMED_TENSOR_BYTES');
    expect(codeOf(() => decodeTensorBytes('x', 'FP32', [4], Buffer.alloc(12)))).toBe('OFFRAMP_ELEMENT_COUNT_MISMATCH');
  });
});

describe('binary inputs over HTTP', () => {
  it('an FP32 input sent as bytes reaches the data plane and answers exactly as the JSON one', async () => {
    const { app, plane } = harness();
    const viaJson = await postJson(app, JSON_REQUEST);
    const viaBinary = await post(app, framed({ id: 'r', inputs: [BINARY_X] }, [bytesOf(new Float32Array(X))]));
    expect(viaBinary.statusCode).toBe(200);
    expect(viaBinary.json()).toEqual(viaJson.json());
    // No binary output asked for: a plain JSON answer without the framing header.
    expect(viaBinary.headers['content-type']).toMatch(/^application\/json/);
    expect(viaBinary.headers['inference-header-content-length']).toBeUndefined();
    const [fromJson, fromBinary] = plane.requests;
    expect(Array.from(fromBinary!.inputs[0]!.data as Float32Array)).toEqual(Array.from(new Float32Array(X)));
    // binary_data_size is framing: the data plane sees no trace of it.
    expect({ ...fromBinary, signal: undefined, inputs: undefined }).toEqual({
      ...fromJson,
      signal: undefined,
      inputs: undefined,
    });
    expect(fromBinary!.inputs[0]!.parameters).toBeUndefined();
  });

  it('reads an FP32 blob in place when the JSON part is padded to 8 bytes, and copies it otherwise', async () => {
    const { app, plane } = harness();
    const blob = bytesOf(new Float32Array(X));
    for (const padTo of [0, 1]) {
      const json = JSON.stringify({ inputs: [BINARY_X] });
      // fastify gathers the body into a buffer that starts on a multiple of 8.
      const head = Buffer.from(json + ' '.repeat(((8 - (json.length % 8)) % 8) + padTo));
      const res = await post(app, {
        payload: Buffer.concat([head, blob]),
        headers: { 'inference-header-content-length': String(head.length) },
      });
      expect(res.statusCode).toBe(200);
    }
    const [inPlace, copied] = plane.requests.map((r) => r.inputs[0]!.data as Float32Array);
    expect(Array.from(inPlace!)).toEqual(X);
    expect(Array.from(copied!)).toEqual(X);
    // A view onto the whole body has a buffer larger than its 16 bytes; a copy has its own.
    expect(inPlace!.buffer.byteLength).toBeGreaterThan(16);
    expect(copied!.buffer.byteLength).toBe(16);
  });

  it('a UINT8 input sent as bytes answers as the JSON one', async () => {
    const { app, plane } = harness();
    const pixels = [0, 17, 128, 255];
    const input = { name: 'x', shape: [1, 2, 2], datatype: 'UINT8' };
    const viaJson = await postJson(app, { inputs: [{ ...input, data: pixels }] });
    const viaBinary = await post(
      app,
      framed({ inputs: [{ ...input, parameters: { binary_data_size: 4 } }] }, [Uint8Array.from(pixels)]),
    );
    expect(viaBinary.statusCode).toBe(200);
    expect(viaBinary.json()).toEqual(viaJson.json());
    expect(Array.from(plane.requests[1]!.inputs[0]!.data as Uint8Array)).toEqual(pixels);
  });

  it('mixes JSON and binary inputs, blobs in input order, and keeps other input parameters', async () => {
    const { app, plane } = harness();
    const body = {
      inputs: [
        { name: 'flags', shape: [3], datatype: 'BOOL', parameters: { binary_data_size: 3 } },
        { name: 'x', shape: [1, 2, 2], datatype: 'FP32', data: X },
        { name: 'words', shape: [2], datatype: 'BYTES', parameters: { binary_data_size: 15, tag: 'w' } },
        { name: 'ids', shape: [2], datatype: 'INT64', parameters: { binary_data_size: 16 } },
      ],
    };
    const blobs = [Uint8Array.from([1, 0, 1]), bytesElements(['bag', 'coat']), bytesOf(new BigInt64Array([7n, -2n]))];
    const res = await post(app, framed(body, blobs, 'application/json'));
    expect(res.statusCode).toBe(200);
    const inputs = plane.requests[0]!.inputs;
    expect(inputs.map((i) => i.name)).toEqual(['flags', 'x', 'words', 'ids']);
    expect(inputs[0]!.data).toEqual([true, false, true]);
    expect(inputs[1]!.data).toEqual(X);
    expect(inputs[2]!.data).toEqual(['bag', 'coat']);
    expect(inputs[2]!.parameters).toEqual({ tag: 'w' });
    expect(inputs[3]!.data).toEqual(new BigInt64Array([7n, -2n]));
  });

  it('still takes a body without the header as all JSON, whatever its content type', async () => {
    const { app } = harness();
    const res = await post(app, {
      payload: Buffer.from(JSON.stringify(JSON_REQUEST)),
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ id: 'r', outputs: [{ name: 'scores' }, {}, {}, {}] });
  });
});

describe('binary outputs over HTTP', () => {
  it('sends the outputs marked binary_data as bytes after the JSON; they decode to the JSON values', async () => {
    const { app } = harness();
    const viaJson = (await postJson(app, JSON_REQUEST)).json<ResponseJson>();
    const res = await postJson(app, {
      ...JSON_REQUEST,
      outputs: [
        { name: 'scores', parameters: { binary_data: true } },
        { name: 'label', parameters: { binary_data: true } },
        { name: 'class' },
      ],
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/octet-stream');
    const jsonBytes = Number(res.headers['inference-header-content-length']);
    const head = JSON.parse(res.rawPayload.subarray(0, jsonBytes).toString('utf8')) as ResponseJson;
    const byName = new Map(head.outputs.map((o) => [o.name, o]));
    expect(byName.get('scores')).toEqual({
      name: 'scores',
      datatype: 'FP32',
      shape: [1, 4],
      parameters: { binary_data_size: 16 },
    });
    expect(byName.get('label')?.parameters).toEqual({ per_row: true, binary_data_size: 4 + 10 + 4 + 9 });
    expect(byName.get('class')?.data).toEqual([4]);
    expect(decodeResponse(res)).toEqual(viaJson);
  });

  it('binary_data_output sends every output as bytes, save one whose binary_data is false', async () => {
    const { app } = harness();
    const viaJson = (await postJson(app, JSON_REQUEST)).json<ResponseJson>();
    const all = await postJson(app, { ...JSON_REQUEST, parameters: { binary_data_output: true } });
    expect(all.statusCode).toBe(200);
    const head = JSON.parse(
      all.rawPayload.subarray(0, Number(all.headers['inference-header-content-length'])).toString('utf8'),
    ) as ResponseJson;
    expect(head.outputs.every((o) => o.data === undefined)).toBe(true);
    expect(decodeResponse(all)).toEqual(viaJson);

    const butOne = await post(
      app,
      framed(
        {
          inputs: [BINARY_X],
          parameters: { binary_data_output: true },
          outputs: [{ name: 'scores' }, { name: 'class', parameters: { binary_data: false } }],
        },
        [bytesOf(new Float32Array(X))],
      ),
    );
    expect(butOne.statusCode).toBe(200);
    const outputs = decodeResponse(butOne).outputs;
    // The fake data plane answers every output whatever was asked; the choice follows each name.
    expect(outputs.find((o) => o.name === 'scores')?.data).toEqual(viaJson.outputs[0]!.data);
    const head2 = JSON.parse(
      butOne.rawPayload.subarray(0, Number(butOne.headers['inference-header-content-length'])).toString('utf8'),
    ) as ResponseJson;
    expect(head2.outputs.find((o) => o.name === 'class')?.data).toEqual([4]);
    expect(head2.outputs.find((o) => o.name === 'label')?.parameters?.['binary_data_size']).toBe(27);
  });
});

describe('malformed binary requests', () => {
  const blob = bytesOf(new Float32Array(X));
  const withHeader = (payload: Buffer, header: string) => ({
    payload,
    headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': header },
  });
  const jsonHead = Buffer.from(JSON.stringify({ inputs: [BINARY_X] }));

  const cases: { name: string; body: { payload: Buffer; headers: Record<string, string> }; code: string }[] = [
    {
      name: 'a header that is not an integer',
      body: withHeader(Buffer.concat([jsonHead, blob]), 'abc'),
      code: 'OFFRAMP_INFERENCE_HEADER_LENGTH',
    },
    {
      name: 'a negative header',
      body: withHeader(Buffer.concat([jsonHead, blob]), '-1'),
      code: 'OFFRAMP_INFERENCE_HEADER_LENGTH',
    },
    {
      name: 'a header larger than the body',
      body: withHeader(Buffer.concat([jsonHead, blob]), String(jsonHead.length + 17)),
      code: 'OFFRAMP_INFERENCE_HEADER_LENGTH',
    },
    {
      name: 'a header that cuts the JSON short',
      body: withHeader(Buffer.concat([jsonHead, blob]), String(jsonHead.length - 3)),
      code: 'OFFRAMP_MALFORMED_JSON',
    },
    {
      name: 'binary_data_size not matching shape × element size',
      body: framed({ inputs: [{ ...BINARY_X, parameters: { binary_data_size: 12 } }] }, [blob.subarray(0, 12)]),
      code: 'OFFRAMP_BINARY_SIZE_MISMATCH',
    },
    {
      name: 'bytes left over after the last blob',
      body: framed({ inputs: [BINARY_X] }, [blob, Buffer.from([0])]),
      code: 'OFFRAMP_BINARY_DATA_LENGTH',
    },
    {
      name: 'fewer bytes than the blobs declare',
      body: framed({ inputs: [BINARY_X] }, [blob.subarray(0, 8)]),
      code: 'OFFRAMP_BINARY_DATA_LENGTH',
    },
    {
      name: 'binary_data_size without the header',
      body: { payload: jsonHead, headers: { 'content-type': 'application/json' } },
      code: 'OFFRAMP_BINARY_DATA_LENGTH',
    },
    {
      name: 'an input with both data and binary_data_size',
      body: framed({ inputs: [{ ...BINARY_X, data: X }] }, [blob]),
      code: 'OFFRAMP_DATA_GIVEN_TWICE',
    },
    {
      name: 'binary_data_size that is not a whole number',
      body: framed({ inputs: [{ ...BINARY_X, parameters: { binary_data_size: '16' } }] }, [blob]),
      code: 'OFFRAMP_BAD_PARAMETER',
    },
    {
      name: 'BYTES element lengths overrunning the blob',
      body: framed({ inputs: [{ name: 'x', shape: [1], datatype: 'BYTES', parameters: { binary_data_size: 6 } }] }, [
        Buffer.from([9, 0, 0, 0, 65, 66]),
      ]),
      code: 'OFFRAMP_MALFORMED_TENSOR_BYTES',
    },
    {
      name: 'BYTES elements fewer than the shape says',
      body: framed({ inputs: [{ name: 'x', shape: [2], datatype: 'BYTES', parameters: { binary_data_size: 5 } }] }, [
        bytesElements(['a']),
      ]),
      code: 'OFFRAMP_ELEMENT_COUNT_MISMATCH',
    },
    {
      name: 'an unknown datatype sent as bytes',
      body: framed({ inputs: [{ ...BINARY_X, datatype: 'FP8' }] }, [blob]),
      code: 'OFFRAMP_WRONG_DATATYPE',
    },
    {
      name: 'binary_data that is not a boolean',
      body: framed({ inputs: [BINARY_X], outputs: [{ name: 'scores', parameters: { binary_data: 1 } }] }, [blob]),
      code: 'OFFRAMP_BAD_PARAMETER',
    },
    {
      name: 'binary_data_output that is not a boolean',
      body: framed({ inputs: [BINARY_X], parameters: { binary_data_output: 'yes' } }, [blob]),
      code: 'OFFRAMP_BAD_PARAMETER',
    },
  ];

  it.each(cases)('answers $name with 400 $code, names the input, and keeps serving', async ({ body, code }) => {
    const { app, plane } = harness();
    const res = await post(app, body);
    expect(res.statusCode).toBe(400);
    const error = res.json<{ error: string; code: string }>();
    expect(error.code).toBe(code);
    if (
      code !== 'OFFRAMP_INFERENCE_HEADER_LENGTH' &&
      code !== 'OFFRAMP_MALFORMED_JSON' &&
      code !== 'OFFRAMP_BINARY_DATA_LENGTH'
    )
      expect(error.error).toMatch(/'x'|binary_data/);
    expect(plane.requests).toHaveLength(0);
    const next = await post(app, framed({ inputs: [BINARY_X] }, [blob]));
    expect(next.statusCode).toBe(200);
  });

  it('answers a binary body over server.max_body_bytes with 413', async () => {
    const { app } = harness(1024);
    const big = new Float32Array(300);
    const res = await post(
      app,
      framed({ inputs: [{ name: 'x', shape: [1, 300], datatype: 'FP32', parameters: { binary_data_size: 1200 } }] }, [
        bytesOf(big),
      ]),
    );
    expect(res.statusCode).toBe(413);
    expect(res.json()).toMatchObject({ code: 'OFFRAMP_BODY_TOO_LARGE' });
  });
});

describe('binary tensors end to end, on the bundled model', () => {
  let server: RunningServer;
  let base: string;

  beforeAll(async () => {
    const config = bundledConfig('http-binary.test.yaml', [
      'tuner: { kind: static }',
      'batching: { max_batch_size: 8, max_queue_delay_ms: 1 }',
    ]);
    server = await startServer(config, { version: 'test' });
    base = `http://127.0.0.1:${server.httpPort}`;
  });

  afterAll(async () => {
    await server?.close();
  });

  async function send(body: Buffer, headers: Record<string, string>) {
    const res = await fetch(`${base}/v2/models/fmnist/infer`, { method: 'POST', headers, body });
    const raw = Buffer.from(await res.arrayBuffer());
    const responseHeaders = Object.fromEntries(res.headers.entries());
    return { status: res.status, headers: responseHeaders, rawPayload: raw };
  }

  it('reports the extension, and answers UINT8 bytes with binary outputs as it answers JSON', async () => {
    const metadata = (await (await fetch(`${base}/v2`)).json()) as { extensions: string[] };
    expect(metadata.extensions).toContain('binary_tensor_data');

    const image = await testImages(2, 0);
    const pixels = Uint8Array.from(image.data as Float32Array, (v) => Math.round(v * 255));
    const input = { name: 'pixels', shape: [2, 1, 28, 28], datatype: 'UINT8' };
    const viaJson = await send(Buffer.from(JSON.stringify({ inputs: [{ ...input, data: Array.from(pixels) }] })), {
      'content-type': 'application/json',
    });
    expect(viaJson.status).toBe(200);
    const request = framed(
      {
        inputs: [{ ...input, parameters: { binary_data_size: pixels.length } }],
        parameters: { binary_data_output: true },
      },
      [pixels],
    );
    const viaBinary = await send(request.payload, request.headers);
    expect(viaBinary.status).toBe(200);
    expect(viaBinary.headers['content-type']).toBe('application/octet-stream');
    const fromJson = JSON.parse(viaJson.rawPayload.toString('utf8')) as ResponseJson;
    const fromBinary = decodeResponse(viaBinary);
    const get = (r: ResponseJson, name: string) => r.outputs.find((o) => o.name === name)?.data;
    // Test image 0 of Fashion-MNIST is an ankle boot.
    expect(get(fromBinary, 'label')?.[0]).toBe('Ankle boot');
    expect(get(fromBinary, 'label')).toEqual(get(fromJson, 'label'));
    expect(get(fromBinary, 'class')).toEqual(get(fromJson, 'class'));
    const probs = get(fromBinary, 'probabilities') as number[];
    const jsonProbs = get(fromJson, 'probabilities') as number[];
    expect(probs).toHaveLength(20);
    probs.forEach((p, i) => expect(p).toBeCloseTo(jsonProbs[i]!, 5));
  });

  it('answers binary_data on an output the model does not have with 400 OFFRAMP_UNKNOWN_OUTPUT', async () => {
    const pixels = new Uint8Array(784);
    const request = framed(
      {
        inputs: [{ name: 'pixels', shape: [1, 1, 28, 28], datatype: 'UINT8', parameters: { binary_data_size: 784 } }],
        outputs: [{ name: 'logits', parameters: { binary_data: true } }],
      },
      [pixels],
    );
    const res = await send(request.payload, request.headers);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.rawPayload.toString('utf8'))).toMatchObject({ code: 'OFFRAMP_UNKNOWN_OUTPUT' });
  });
});
