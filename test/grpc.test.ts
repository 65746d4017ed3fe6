/**
 * The gRPC transport against the fake DataPlane of test/helpers (no model), called by a real
 * grpc-js client built from the same grpc_service.proto, over a socket.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { InferRequest, InferResponse, ModelMetadata } from '../src/data-plane/types.js';
import { OfframpError } from '../src/errors.js';
import { loadInferenceService, type WireParameters, type WireTensorContents } from '../src/grpc/proto.js';
import { createGrpcServer, type GrpcServer } from '../src/grpc/server.js';
import { FakeDataPlane } from './helpers/fake-data-plane.js';

// ---- Fake data plane ---------------------------------------------------------------------------

/** Models the fake serves; what each does is in `infer` below. */
const MODEL_NAMES = ['echo', 'int64', 'slow', 'broken'] as const;

const METADATA: ModelMetadata = {
  name: 'echo',
  versions: ['1'],
  platform: 'onnxruntime_onnx',
  inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }],
  outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 4] }],
  parameters: { labels: ['a', 'b'] },
};

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
}
function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** The `slow` model's request reached the data plane / saw its signal abort (with the reason). */
const slowStarted = deferred<void>();
const slowAborted = deferred<unknown>();

async function infer(request: InferRequest): Promise<InferResponse> {
  const base = { id: request.id ?? 'assigned', modelName: request.modelName, modelVersion: '1' };
  const input = request.inputs[0]!;
  switch (request.modelName) {
    case 'echo': {
      // y = 2x, with the request's parameters echoed plus exit information.
      const y = Float32Array.from(input.data as Float32Array, (v) => v * 2);
      return {
        ...base,
        parameters: { ...request.parameters, confidence: 0.75, early: true },
        outputs: [{ name: 'y', datatype: 'FP32', shape: input.shape, data: y }],
      };
    }
    case 'int64':
      return {
        ...base,
        parameters: {},
        outputs: [{ name: 'n', datatype: 'INT64', shape: input.shape, data: input.data as BigInt64Array }],
      };
    case 'slow':
      slowStarted.resolve();
      return new Promise((_resolve, reject) => {
        request.signal?.addEventListener('abort', () => {
          slowAborted.resolve(request.signal?.reason);
          reject(request.signal?.reason as Error);
        });
      });
    default:
      throw new TypeError('backend exploded');
  }
}

// ---- Client --------------------------------------------------------------------------------

interface InferOutput {
  name: string;
  datatype: string;
  shape: string[];
  contents: WireTensorContents | null;
}
interface InferReply {
  model_name: string;
  model_version: string;
  id: string;
  parameters: WireParameters;
  outputs: InferOutput[];
  raw_output_contents: Buffer[];
}

type UnaryCallback = (err: grpc.ServiceError | null, response?: unknown) => void;
type UnaryMethod = (
  request: object,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: UnaryCallback,
) => grpc.ClientUnaryCall;

const ServiceClient = grpc.makeClientConstructor(loadInferenceService(), 'GRPCInferenceService');
const plane = new FakeDataPlane({
  models: MODEL_NAMES.map((name) => ({ metadata: { ...METADATA, name } })),
  extensions: ['binary_tensor_data'],
  infer,
});
let handle: GrpcServer;
let client: grpc.Client;

function start(method: string, request: object, callback: UnaryCallback): grpc.ClientUnaryCall {
  const fn = (client as unknown as Record<string, UnaryMethod>)[method]!;
  return fn.call(client, request, new grpc.Metadata(), {}, callback);
}

function rpc<T>(method: string, request: object): Promise<T> {
  return new Promise((resolve, reject) =>
    start(method, request, (err, res) => (err ? reject(err) : resolve(res as T))),
  );
}

async function rpcError(method: string, request: object): Promise<grpc.ServiceError> {
  const result = await rpc<unknown>(method, request).then(
    () => undefined,
    (err: grpc.ServiceError) => err,
  );
  if (result === undefined) throw new Error(`${method} succeeded but was expected to fail`);
  return result;
}

function offrampCode(err: grpc.ServiceError): unknown {
  return err.metadata.get('offramp-code')[0];
}

function fp32Input(values: number[], shape: (number | string)[] = [1, values.length]) {
  return { name: 'x', datatype: 'FP32', shape, contents: { fp32_contents: values } };
}

beforeAll(async () => {
  handle = createGrpcServer({ dataPlane: plane, maxMessageBytes: 1 << 20 });
  const port = await handle.start('127.0.0.1', 0);
  client = new ServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await handle?.stop(1000);
});

beforeEach(() => {
  plane.requests = [];
});

// ---- Tests ---------------------------------------------------------------------------------

describe('gRPC health and metadata', () => {
  it('answers ServerLive, ServerReady and ModelReady from the data plane', async () => {
    expect(await rpc('ServerLive', {})).toEqual({ live: true });
    expect(await rpc('ServerReady', {})).toEqual({ ready: true });
    expect(await rpc('ModelReady', { name: 'echo' })).toEqual({ ready: true });
  });

  it('answers ServerMetadata', async () => {
    expect(await rpc('ServerMetadata', {})).toEqual({
      name: 'offramp',
      version: '0.1.0',
      extensions: ['binary_tensor_data'],
    });
  });

  it('answers ModelMetadata with int64 shapes, -1 included', async () => {
    expect(await rpc('ModelMetadata', { name: 'echo', version: '1' })).toEqual({
      name: 'echo',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'x', datatype: 'FP32', shape: ['-1', '4'] }],
      outputs: [{ name: 'y', datatype: 'FP32', shape: ['-1', '4'] }],
    });
  });

  it('answers NOT_FOUND with the offramp code for an unknown model', async () => {
    const err = await rpcError('ModelReady', { name: 'nope' });
    expect(err.code).toBe(grpc.status.NOT_FOUND);
    expect(offrampCode(err)).toBe('OFFRAMP_MODEL_NOT_FOUND');
  });
});

describe('gRPC ModelInfer', () => {
  it('decodes fp32_contents and answers typed contents with the id echoed', async () => {
    const reply = await rpc<InferReply>('ModelInfer', {
      model_name: 'echo',
      id: 'req-1',
      inputs: [fp32Input([1, 2, 3, 4])],
    });
    const seen = plane.requests[0]!;
    expect(seen.modelName).toBe('echo');
    expect(seen.modelVersion).toBeUndefined();
    expect(seen.inputs[0]!.data).toEqual(new Float32Array([1, 2, 3, 4]));
    expect(reply.id).toBe('req-1');
    expect(reply.model_version).toBe('1');
    expect(reply.raw_output_contents).toEqual([]);
    expect(reply.outputs[0]!.contents!.fp32_contents).toEqual([2, 4, 6, 8]);
  });

  it('decodes raw_input_contents and answers in raw_output_contents', async () => {
    const x = new Float32Array([0.5, -1.25, 3, 1e-3, 7, 8, 9, 10]);
    const raw = Buffer.from(x.buffer);
    const reply = await rpc<InferReply>('ModelInfer', {
      model_name: 'echo',
      inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 4] }],
      raw_input_contents: [raw],
    });
    expect(plane.requests[0]!.inputs[0]!.data).toEqual(x);
    expect(reply.outputs[0]!.contents).toBeNull();
    expect(reply.raw_output_contents).toHaveLength(1);
    const bytes = reply.raw_output_contents[0]!;
    const y = new Float32Array(new Uint8Array(bytes).buffer);
    expect(y).toEqual(Float32Array.from(x, (v) => v * 2));
  });

  it('round-trips int64 shapes and int64 values beyond 2^53 exactly', async () => {
    const big = '9007199254740993'; // 2^53 + 1: a double would round it
    const reply = await rpc<InferReply>('ModelInfer', {
      model_name: 'int64',
      inputs: [{ name: 'n', datatype: 'INT64', shape: ['1', '2'], contents: { int64_contents: [big, '-5'] } }],
    });
    const seen = plane.requests[0]!.inputs[0]!;
    expect(seen.shape).toEqual([1, 2]);
    expect(seen.data).toEqual(new BigInt64Array([9007199254740993n, -5n]));
    expect(reply.outputs[0]!.shape).toEqual(['1', '2']);
    expect(reply.outputs[0]!.contents!.int64_contents).toEqual([big, '-5']);
  });

  it('round-trips parameters: int64 priority, a string and a bool', async () => {
    const reply = await rpc<InferReply>('ModelInfer', {
      model_name: 'echo',
      parameters: { priority: { int64_param: 3 }, tag: { string_param: 'blue' }, trace: { bool_param: true } },
      inputs: [fp32Input([1, 2, 3, 4])],
    });
    expect(plane.requests[0]!.parameters).toEqual({ priority: 3, tag: 'blue', trace: true });
    expect(reply.parameters).toEqual({
      priority: { int64_param: '3', parameter_choice: 'int64_param' },
      tag: { string_param: 'blue', parameter_choice: 'string_param' },
      trace: { bool_param: true, parameter_choice: 'bool_param' },
      early: { bool_param: true, parameter_choice: 'bool_param' },
      confidence: { double_param: 0.75, parameter_choice: 'double_param' },
    });
  });

  it('answers NOT_FOUND with the offramp code for an unknown model', async () => {
    const err = await rpcError('ModelInfer', { model_name: 'nope', inputs: [fp32Input([1, 2, 3, 4])] });
    expect(err.code).toBe(grpc.status.NOT_FOUND);
    expect(offrampCode(err)).toBe('OFFRAMP_MODEL_NOT_FOUND');
    expect(err.details).toContain("'nope'");
  });

  it('rejects raw contents whose byte length is not a whole number of elements', async () => {
    const err = await rpcError('ModelInfer', {
      model_name: 'echo',
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4] }],
      raw_input_contents: [Buffer.alloc(15)],
    });
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(offrampCode(err)).toBe('OFFRAMP_MALFORMED_TENSOR_BYTES');
    expect(plane.requests).toHaveLength(0);
  });

  it('rejects raw contents whose element count does not match the shape', async () => {
    const err = await rpcError('ModelInfer', {
      model_name: 'echo',
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4] }],
      raw_input_contents: [Buffer.alloc(12)],
    });
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(offrampCode(err)).toBe('OFFRAMP_ELEMENT_COUNT_MISMATCH');
  });

  it('rejects a request that mixes typed contents and raw_input_contents', async () => {
    const err = await rpcError('ModelInfer', {
      model_name: 'echo',
      inputs: [fp32Input([1, 2, 3, 4])],
      raw_input_contents: [Buffer.from(new Float32Array([1, 2, 3, 4]).buffer)],
    });
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(offrampCode(err)).toBe('OFFRAMP_DATA_GIVEN_TWICE');
    expect(err.details).toContain('raw_input_contents');
    expect(plane.requests).toHaveLength(0);
  });

  it('rejects structurally invalid requests: no model_name, a negative dimension', async () => {
    const noModel = await rpcError('ModelInfer', { inputs: [fp32Input([1, 2, 3, 4])] });
    expect(noModel.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(offrampCode(noModel)).toBe('OFFRAMP_INVALID_REQUEST');
    const negative = await rpcError('ModelInfer', { model_name: 'echo', inputs: [fp32Input([1, 2, 3, 4], [-1, 4])] });
    expect(negative.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(offrampCode(negative)).toBe('OFFRAMP_INVALID_REQUEST');
  });

  it('reports a non-offramp failure of the data plane as INTERNAL / OFFRAMP_INTERNAL', async () => {
    const err = await rpcError('ModelInfer', { model_name: 'broken', inputs: [fp32Input([1, 2, 3, 4])] });
    expect(err.code).toBe(grpc.status.INTERNAL);
    expect(offrampCode(err)).toBe('OFFRAMP_INTERNAL');
    expect(err.details).toContain('backend exploded');
  });

  it('aborts the request signal the data plane sees when the client cancels the call', async () => {
    const finished = deferred<grpc.ServiceError | null>();
    const call = start('ModelInfer', { model_name: 'slow', inputs: [fp32Input([1, 2, 3, 4])] }, (err) =>
      finished.resolve(err),
    );
    await slowStarted.promise;
    call.cancel();
    const reason = await slowAborted.promise;
    expect(OfframpError.is(reason, 'OFFRAMP_CANCELLED')).toBe(true);
    expect((await finished.promise)?.code).toBe(grpc.status.CANCELLED);
  });

  it('answers a refusal of the data plane (RESOURCE_EXHAUSTED) before converting the tensors', async () => {
    plane.admissionImpl = () => new OfframpError('OFFRAMP_QUEUE_FULL', { model: 'echo', limit: 1 });
    try {
      // Mixed typed and raw contents would be INVALID_ARGUMENT once converted: admission comes first.
      const err = await rpcError('ModelInfer', {
        model_name: 'echo',
        inputs: [fp32Input([1, 2, 3, 4])],
        raw_input_contents: [Buffer.alloc(16)],
      });
      expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(offrampCode(err)).toBe('OFFRAMP_QUEUE_FULL');
      expect(plane.requests).toHaveLength(0);
    } finally {
      plane.admissionImpl = () => null;
    }
    const reply = await rpc<InferReply>('ModelInfer', { model_name: 'echo', inputs: [fp32Input([1, 2, 3, 4])] });
    expect(reply.outputs[0]!.contents!.fp32_contents).toEqual([2, 4, 6, 8]);
  });

  it('answers garbage bytes with INVALID_ARGUMENT / OFFRAMP_MALFORMED_PROTOBUF and keeps serving', async () => {
    // Field 7 (raw_input_contents, length-delimited) claims 100 bytes; one follows. (A truncated
    // *string* field would not do: protobufjs clamps it to the bytes that are there.)
    const garbage = Buffer.from([0x3a, 0x64, 0x61]);
    const identity = (b: Buffer) => b;
    const err = await new Promise<grpc.ServiceError | null>((resolve) => {
      client.makeUnaryRequest('/inference.GRPCInferenceService/ModelInfer', identity, identity, garbage, (e) =>
        resolve(e),
      );
    });
    expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(offrampCode(err!)).toBe('OFFRAMP_MALFORMED_PROTOBUF');
    expect(plane.requests).toHaveLength(0);
    const reply = await rpc<InferReply>('ModelInfer', { model_name: 'echo', inputs: [fp32Input([1, 2, 3, 4])] });
    expect(reply.outputs[0]!.contents!.fp32_contents).toEqual([2, 4, 6, 8]);
  });
});
