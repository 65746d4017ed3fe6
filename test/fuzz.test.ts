/**
 * Bad input never hurts anyone else: a real server on the bundled model, real sockets, fed
 * seeded garbage — byte mutations of valid HTTP JSON bodies, wrong types, huge, negative and
 * overflowing shapes, deep nesting, non-finite numbers, oversized bodies, lying Content-Length
 * and Inference-Header-Content-Length headers, binary tensor bodies with wrong sizes, and gRPC
 * ModelInfer messages of random bytes, truncations and bit flips of a valid one, or wrong
 * contents. Every answer must be a success or a coded client error from the error table — never
 * a 5xx, INTERNAL or UNKNOWN, never a hang — while good requests sent at the same time are all
 * answered with the class a quiet server gives them, the server stays up and its memory bounded.
 *
 * Seeded (FUZZ_SEED, printed with every failure) and bounded: a fixed number of cases, each
 * awaited with a timeout.
 */
import { Agent, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_TABLE, type ErrorCode } from '../src/errors.js';
import { loadInferenceService } from '../src/grpc/proto.js';
import { seededRandom } from '../src/model/numeric.js';
import { startServer, type RunningServer } from '../src/server.js';
import { bundledConfig, testImages } from './helpers/bundled.js';

const FUZZ_SEED = Number(process.env['FUZZ_SEED'] ?? 20261212);
const MAX_BODY_BYTES = 256 * 1024;
/** Longest any one answer may take before the case counts as "no answer". */
const ANSWER_TIMEOUT_MS = 10_000;
/** RSS growth over the whole fuzz run that counts as unbounded (generous: worker threads, GC timing). */
const RSS_GROWTH_LIMIT = 512 * 1024 * 1024;
const GOOD_IMAGES = 8;

let server: RunningServer;
let grpcClient: grpc.Client;
let goodBodies: string[];
/** Class of each good image, from a quiet server. */
let referenceClasses: number[];
let validImage: number[];

interface Answer {
  status: number;
  /** The body's JSON text (of a binary tensor answer: the JSON part). */
  text: string;
}

const agent = new Agent({ keepAlive: true, maxSockets: 8 });

function post(path: string, body: Buffer | string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ANSWER_TIMEOUT_MS} ms`)), ANSWER_TIMEOUT_MS);
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port: server.httpPort,
        path,
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          clearTimeout(timer);
          const body = Buffer.concat(chunks);
          const jsonBytes = Number(res.headers['inference-header-content-length'] ?? body.length);
          resolve({ status: res.statusCode ?? 0, text: body.subarray(0, jsonBytes).toString('utf8') });
        });
      },
    );
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end(body);
  });
}

const INFER = '/v2/models/fmnist/infer';

/** Why an HTTP answer is not a success or a coded client error, or null when it is. */
function httpProblem(answer: Answer): string | null {
  if (answer.status === 200) {
    // A request the server takes must get a real answer: input it cannot compute on is a 400.
    const confidence = (JSON.parse(answer.text) as { parameters?: { confidence?: unknown } }).parameters?.confidence;
    return Number.isFinite(confidence) ? null : `200 with confidence ${String(confidence)}`;
  }
  let code: unknown;
  try {
    code = (JSON.parse(answer.text) as { code?: unknown }).code;
  } catch {
    return `status ${answer.status} with a body that is not JSON: ${answer.text.slice(0, 200)}`;
  }
  if (typeof code !== 'string' || !(code in ERROR_TABLE)) return `status ${answer.status} without a known code`;
  const spec = ERROR_TABLE[code as ErrorCode];
  if (spec.httpStatus !== answer.status) return `${code} answered ${answer.status}, the table says ${spec.httpStatus}`;
  if (answer.status < 400 || answer.status >= 500) return `${code} is not a client error (${answer.status})`;
  return null;
}

function classOf(answer: Answer): number {
  const json = JSON.parse(answer.text) as { outputs: { name: string; data: number[] }[] };
  return json.outputs.find((o) => o.name === 'class')!.data[0]!;
}

/** Sends good requests, one at a time per lane, until `stop` says so; returns [image, class] per answer. */
async function goodTraffic(stop: () => boolean, lanes = 2): Promise<{ image: number; answer: Answer }[]> {
  const results: { image: number; answer: Answer }[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      while (!stop()) {
        const image = next++ % GOOD_IMAGES;
        results.push({ image, answer: await post(INFER, goodBodies[image]!) });
      }
    }),
  );
  return results;
}

/** Runs `cases` one after another beside good traffic; returns the problems found and checks the good answers. */
async function fuzzBesideGoodTraffic(cases: { name: string; run: () => Promise<string | null> }[]): Promise<void> {
  const rssBefore = process.memoryUsage().rss;
  let done = false;
  const good = goodTraffic(() => done);
  const problems: string[] = [];
  try {
    for (const c of cases) {
      const problem = await c.run().catch((err: unknown) => `threw ${String(err)}`);
      if (problem !== null) problems.push(`${c.name}: ${problem}`);
    }
  } finally {
    done = true;
  }
  const goodAnswers = await good;
  expect(problems, `FUZZ_SEED=${FUZZ_SEED}`).toEqual([]);
  expect(goodAnswers.length).toBeGreaterThan(0);
  for (const { image, answer } of goodAnswers) {
    expect(answer.status, `FUZZ_SEED=${FUZZ_SEED} good image ${image}: ${answer.text.slice(0, 200)}`).toBe(200);
    expect(classOf(answer), `FUZZ_SEED=${FUZZ_SEED} good image ${image}`).toBe(referenceClasses[image]);
  }
  // Still up, still right.
  const after = await post(INFER, goodBodies[0]!);
  expect(classOf(after)).toBe(referenceClasses[0]);
  expect(process.memoryUsage().rss - rssBefore, `FUZZ_SEED=${FUZZ_SEED} RSS growth`).toBeLessThan(RSS_GROWTH_LIMIT);
}

beforeAll(async () => {
  // Vanilla serving (no ramps): a good request's class cannot depend on which other rows share its batch.
  const config = bundledConfig(
    'fuzz.test.yaml',
    ['tuner: { kind: off }', 'slo: { latency_ms: 5000 }'],
    `http_port: 0, grpc_port: 0, host: 127.0.0.1, workers: 1, intra_op_threads: 1, max_body_bytes: ${MAX_BODY_BYTES}`,
  );
  server = await startServer(config, { version: 'test' });
  const ServiceClient = grpc.makeClientConstructor(loadInferenceService(), 'GRPCInferenceService');
  grpcClient = new ServiceClient(`127.0.0.1:${server.grpcPort}`, grpc.credentials.createInsecure());
  const images = await testImages(GOOD_IMAGES, 100);
  const rows = Array.from({ length: GOOD_IMAGES }, (_, i) =>
    Array.from((images.data as Float32Array).subarray(i * 784, (i + 1) * 784), (v) => Math.round(v * 255)),
  );
  validImage = rows[0]!;
  goodBodies = rows.map((data) =>
    JSON.stringify({ inputs: [{ name: 'pixels', shape: [1, 1, 28, 28], datatype: 'UINT8', data }] }),
  );
  referenceClasses = [];
  for (const body of goodBodies) referenceClasses.push(classOf(await post(INFER, body)));
}, 60_000);

afterAll(async () => {
  agent.destroy();
  grpcClient?.close();
  await server?.close();
});

/** Structurally wrong bodies: every field of a valid request given the wrong type, size or shape. */
function structuralBodies(): { name: string; body: string }[] {
  const input = (overrides: Record<string, unknown>) => ({
    name: 'pixels',
    shape: [1, 1, 28, 28],
    datatype: 'UINT8',
    data: validImage,
    ...overrides,
  });
  const body = (value: unknown) => JSON.stringify(value);
  const cases: [string, unknown][] = [
    ['body is a number', 42],
    ['body is null', null],
    ['body is an array', [1, 2]],
    ['inputs is a string', { inputs: 'pixels' }],
    ['inputs is empty', { inputs: [] }],
    ['inputs holds null', { inputs: [null] }],
    ['two inputs', { inputs: [input({}), input({})] }],
    ['unknown input', { inputs: [input({ name: 'x' })] }],
    ['name is a number', { inputs: [input({ name: 7 })] }],
    ['datatype unknown', { inputs: [input({ datatype: 'FP128' })] }],
    ['datatype BYTES', { inputs: [input({ datatype: 'BYTES' })] }],
    ['datatype BOOL', { inputs: [input({ datatype: 'BOOL', data: validImage.map((v) => v > 100) })] }],
    ['datatype INT64', { inputs: [input({ datatype: 'INT64' })] }],
    ['datatype is an object', { inputs: [input({ datatype: {} })] }],
    ['shape is a string', { inputs: [input({ shape: '1,1,28,28' })] }],
    ['shape with a string', { inputs: [input({ shape: [1, 1, '28', 28] })] }],
    ['shape with a float', { inputs: [input({ shape: [1, 1, 28.5, 28] })] }],
    ['negative batch', { inputs: [input({ shape: [-1, 1, 28, 28] })] }],
    ['zero batch', { inputs: [input({ shape: [0, 1, 28, 28], data: [] })] }],
    ['huge batch', { inputs: [input({ shape: [1e9, 1, 28, 28] })] }],
    ['batch 2^53', { inputs: [input({ shape: [2 ** 53, 1, 28, 28] })] }],
    ['batch beyond 2^64', { inputs: [input({ shape: [1.8446744073709552e19, 1, 28, 28] })] }],
    ['huge inner dims', { inputs: [input({ shape: [1, 1e6, 1e6, 1e6] })] }],
    ['negative inner dim', { inputs: [input({ shape: [1, -1, 28, 28] })] }],
    ['too many dims', { inputs: [input({ shape: [1, 1, 1, 28, 28] })] }],
    ['no dims', { inputs: [input({ shape: [] })] }],
    ['data missing', { inputs: [{ name: 'pixels', shape: [1, 1, 28, 28], datatype: 'UINT8' }] }],
    ['data is a string', { inputs: [input({ data: 'abc' })] }],
    ['data is an object', { inputs: [input({ data: { 0: 1 } })] }],
    ['data too short', { inputs: [input({ data: validImage.slice(1) })] }],
    ['data too long', { inputs: [input({ data: [...validImage, 1] })] }],
    ['data with null', { inputs: [input({ data: [null, ...validImage.slice(1)] })] }],
    ['data with strings', { inputs: [input({ data: validImage.map(String) })] }],
    ['data with nested objects', { inputs: [input({ data: [{}, ...validImage.slice(1)] })] }],
    ['pixels out of range', { inputs: [input({ data: validImage.map(() => 256) })] }],
    ['negative pixels', { inputs: [input({ data: validImage.map(() => -1) })] }],
    ['fractional pixels', { inputs: [input({ data: validImage.map(() => 0.5) })] }],
    ['FP32 out of float range', { inputs: [input({ datatype: 'FP32', data: validImage.map(() => 1e300) })] }],
    ['ragged nesting', { inputs: [input({ data: [validImage.slice(0, 10), validImage.slice(10)] })] }],
    ['nested per shape', { inputs: [input({ data: [[[validImage.slice(0, 392), validImage.slice(392)]]] })] }],
    ['parameters is an array', { parameters: [1], inputs: [input({})] }],
    ['priority negative', { parameters: { priority: -1 }, inputs: [input({})] }],
    ['priority fractional', { parameters: { priority: 1.5 }, inputs: [input({})] }],
    ['priority a string', { parameters: { priority: 'high' }, inputs: [input({})] }],
    ['priority huge', { parameters: { priority: 1e308 }, inputs: [input({})] }],
    ['timeout zero', { parameters: { timeout: 0 }, inputs: [input({})] }],
    ['timeout huge', { parameters: { timeout: 1e308 }, inputs: [input({})] }],
    ['timeout an object', { parameters: { timeout: { us: 1 } }, inputs: [input({})] }],
    ['input parameters a string', { inputs: [input({ parameters: 'x' })] }],
    [
      'binary_data_size without binary',
      { inputs: [input({ parameters: { binary_data_size: 784 }, data: undefined })] },
    ],
    ['binary_data_size negative', { inputs: [input({ parameters: { binary_data_size: -1 }, data: undefined })] }],
    ['outputs is a string', { outputs: 'class', inputs: [input({})] }],
    ['unknown output', { outputs: [{ name: 'logits' }], inputs: [input({})] }],
    ['output name a number', { outputs: [{ name: 3 }], inputs: [input({})] }],
    [
      'binary_data_output a string',
      { outputs: [{ name: 'class', parameters: { binary_data: 'yes' } }], inputs: [input({})] },
    ],
    ['id is an object', { id: { a: 1 }, inputs: [input({})] }],
    ['__proto__ keys', JSON.parse('{"__proto__": {"inputs": 1}, "inputs": [{"__proto__": {"x": 1}}]}')],
  ];
  const out = cases.map(([name, value]) => ({ name, body: body(value) }));
  const pixels = validImage.join(',');
  const raw: [string, string][] = [
    ['empty body', ''],
    ['whitespace body', '   \n'],
    [
      'NaN token',
      `{"inputs":[{"name":"pixels","shape":[1,1,28,28],"datatype":"FP32","data":[NaN${pixels.slice(1)}]}]}`,
    ],
    [
      'Infinity token',
      `{"inputs":[{"name":"pixels","shape":[1,1,28,28],"datatype":"FP32","data":[Infinity${pixels.slice(1)}]}]}`,
    ],
    [
      '1e999 (parses to Infinity)',
      `{"inputs":[{"name":"pixels","shape":[1,1,28,28],"datatype":"FP32","data":[1e999,${pixels.slice(2)}]}]}`,
    ],
    [
      '-1e999 in the shape',
      `{"inputs":[{"name":"pixels","shape":[-1e999,1,28,28],"datatype":"FP32","data":[${pixels}]}]}`,
    ],
    ['100k open brackets', '['.repeat(100_000)],
    ['100k nested arrays', `${'['.repeat(100_000)}${']'.repeat(100_000)}`],
    [
      '100k nested data',
      `{"inputs":[{"name":"pixels","shape":[1,1,28,28],"datatype":"UINT8","data":${'['.repeat(100_000)}1${']'.repeat(100_000)}}]}`,
    ],
    ['100k nested objects', `${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}`],
    ['lone surrogate in a name', '{"inputs":[{"name":"\\ud800","shape":[1],"datatype":"FP32","data":[1]}]}'],
    ['NUL bytes', '\u0000\u0000{"inputs":[]}'],
    ['trailing garbage', `${goodBodies?.[0] ?? '{}'}xyz`],
  ];
  return [...out, ...raw.map(([name, body]) => ({ name, body }))];
}

/** `count` seeded byte-level mutations of `base`: flips, inserts, deletions, truncations, splices. */
function mutations(base: Buffer, count: number, random: () => number): { name: string; body: Buffer }[] {
  const pick = (n: number) => Math.floor(random() * n);
  const out: { name: string; body: Buffer }[] = [];
  for (let i = 0; i < count; i++) {
    const bytes = Buffer.from(base);
    const kind = pick(5);
    let body: Buffer;
    let name: string;
    if (kind === 0) {
      const at = pick(bytes.length);
      bytes[at] = pick(256);
      body = bytes;
      name = `byte ${at} set`;
    } else if (kind === 1) {
      const at = pick(bytes.length);
      body = Buffer.concat([bytes.subarray(0, at), Buffer.from([pick(256)]), bytes.subarray(at)]);
      name = `byte inserted at ${at}`;
    } else if (kind === 2) {
      const at = pick(bytes.length);
      body = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1 + pick(16))]);
      name = `bytes deleted at ${at}`;
    } else if (kind === 3) {
      const at = pick(bytes.length);
      body = bytes.subarray(0, at);
      name = `truncated to ${at}`;
    } else {
      const tokens = ['-1', '1e309', 'null', '"x"', '[]', '{}', 'true', '99999999999999999999', '-0', '1.5'];
      const token = tokens[pick(tokens.length)]!;
      const digits = [...bytes.toString('latin1').matchAll(/\d+/g)];
      const m = digits[pick(digits.length)]!;
      body = Buffer.concat([bytes.subarray(0, m.index), Buffer.from(token), bytes.subarray(m.index + m[0].length)]);
      name = `number at ${m.index} replaced by ${token}`;
    }
    out.push({ name, body });
  }
  return out;
}

describe('fuzzed HTTP JSON bodies', () => {
  it('are each answered 200 or a coded 4xx while good requests beside them are answered right', async () => {
    const random = seededRandom(FUZZ_SEED);
    const cases = [
      ...structuralBodies().map(({ name, body }) => ({
        name,
        run: async () => httpProblem(await post(INFER, body)),
      })),
      ...mutations(Buffer.from(goodBodies[1]!), 250, random).map(({ name, body }) => ({
        name,
        run: async () => httpProblem(await post(INFER, body)),
      })),
      {
        name: 'body over max_body_bytes',
        run: async () => {
          const answer = await post(INFER, `{"inputs":[],"pad":"${'x'.repeat(MAX_BODY_BYTES)}"}`);
          return answer.status === 413 ? httpProblem(answer) : `status ${answer.status}, expected 413`;
        },
      },
    ];
    await fuzzBesideGoodTraffic(cases);
  }, 120_000);
});

/** A valid binary tensor body for the UINT8 image, with its JSON header's length. */
function binaryBody(
  params: Record<string, unknown> = { binary_data_size: 784 },
  blob: Buffer = Buffer.from(validImage),
  input: Record<string, unknown> = {},
): { body: Buffer; jsonBytes: number } {
  const json = Buffer.from(
    JSON.stringify({
      inputs: [{ name: 'pixels', shape: [1, 1, 28, 28], datatype: 'UINT8', parameters: params, ...input }],
      outputs: [{ name: 'class', parameters: { binary_data: true } }],
    }),
  );
  return { body: Buffer.concat([json, blob]), jsonBytes: json.length };
}

const BINARY = 'application/octet-stream';

function postBinary(body: Buffer, headerValue: string | string[]): Promise<Answer> {
  return post(INFER, body, { 'content-type': BINARY, 'inference-header-content-length': headerValue as string });
}

describe('fuzzed binary tensor bodies', () => {
  it('are each answered 200 or a coded 4xx while good requests beside them are answered right', async () => {
    const random = seededRandom(FUZZ_SEED + 1);
    const valid = binaryBody();
    const pixels = Buffer.from(validImage);
    const headerCases: [string, Buffer, string | string[]][] = [
      ['header -1', valid.body, '-1'],
      ['header not a number', valid.body, 'abc'],
      ['header fractional', valid.body, String(valid.jsonBytes + 0.5)],
      ['header empty', valid.body, ''],
      ['header past the body', valid.body, String(valid.body.length + 1)],
      ['header 2^64', valid.body, '18446744073709551616'],
      ['header 0', valid.body, '0'],
      ['header too short by one', valid.body, String(valid.jsonBytes - 1)],
      ['header too long by one', valid.body, String(valid.jsonBytes + 1)],
      ['header repeated', valid.body, [String(valid.jsonBytes), String(valid.jsonBytes)]],
    ];
    const sizeCases: [string, Record<string, unknown>, Buffer, Record<string, unknown>?][] = [
      ['blob one byte short', { binary_data_size: 784 }, pixels.subarray(1)],
      ['blob one byte extra', { binary_data_size: 784 }, Buffer.concat([pixels, Buffer.from([0])])],
      ['size 783 for 784 bytes', { binary_data_size: 783 }, pixels],
      ['size 0', { binary_data_size: 0 }, pixels],
      ['size negative', { binary_data_size: -784 }, pixels],
      ['size fractional', { binary_data_size: 783.5 }, pixels],
      ['size a string', { binary_data_size: '784' }, pixels],
      ['size 2^53', { binary_data_size: 2 ** 53 }, pixels],
      ['size 1e300', { binary_data_size: 1e300 }, pixels],
      ['FP32 with 784 bytes', { binary_data_size: 784 }, pixels, { datatype: 'FP32' }],
      ['FP32 of NaN bytes', { binary_data_size: 3136 }, Buffer.alloc(3136, 0xff), { datatype: 'FP32' }],
      [
        'FP32 of Infinity',
        { binary_data_size: 3136 },
        Buffer.from(new Float32Array(784).fill(Infinity).buffer),
        { datatype: 'FP32' },
      ],
      [
        'FP64 of huge values',
        { binary_data_size: 6272 },
        Buffer.from(new Float64Array(784).fill(1e300).buffer),
        { datatype: 'FP64' },
      ],
      ['INT64 bytes', { binary_data_size: 6272 }, Buffer.alloc(6272, 0x7f), { datatype: 'INT64' }],
      [
        'BYTES with a length past the end',
        { binary_data_size: 8 },
        Buffer.from([0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4]),
        { datatype: 'BYTES', shape: [1] },
      ],
      ['shape of two rows', { binary_data_size: 784 }, pixels, { shape: [2, 1, 28, 28] }],
      ['huge shape', { binary_data_size: 784 }, pixels, { shape: [1e9, 1, 28, 28] }],
      ['data as well', { binary_data_size: 784 }, pixels, { data: validImage }],
    ];
    const cases = [
      ...headerCases.map(([name, body, header]) => ({
        name,
        run: async () => httpProblem(await postBinary(body, header)),
      })),
      ...sizeCases.map(([name, params, blob, input]) => {
        const { body, jsonBytes } = binaryBody(params, blob, input);
        return { name, run: async () => httpProblem(await postBinary(body, String(jsonBytes))) };
      }),
      ...mutations(valid.body, 200, random).map(({ name, body }) => ({
        name,
        run: async () => httpProblem(await postBinary(body, String(Math.min(valid.jsonBytes, body.length)))),
      })),
    ];
    // The valid body itself, so the mutations above start from something that works.
    expect((await postBinary(valid.body, String(valid.jsonBytes))).status).toBe(200);
    await fuzzBesideGoodTraffic(cases);
  }, 120_000);
});

/**
 * Sends raw bytes on a fresh connection and collects what comes back until the server closes it
 * or `quietMs` pass without data. Every status in the answer must be 200 or a coded 4xx.
 */
function rawExchange(bytes: string, expectAnswer: boolean, quietMs = 300): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = connect(server.httpPort, '127.0.0.1');
    let received = '';
    let timer: NodeJS.Timeout | undefined;
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      const statuses = [...received.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
      if (expectAnswer && statuses.length === 0) resolve(`no answer: ${JSON.stringify(received.slice(0, 200))}`);
      else if (statuses.some((s) => s >= 500 || (s !== 200 && s < 400))) resolve(`statuses ${statuses.join(', ')}`);
      else if (statuses.some((s) => s >= 400) && !/"code":"OFFRAMP_/.test(received)) resolve('an error without a code');
      else resolve(null);
    };
    const quiet = () => {
      clearTimeout(timer);
      timer = setTimeout(finish, quietMs);
    };
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      received += chunk;
      quiet();
    });
    socket.on('close', finish);
    socket.on('error', () => undefined);
    socket.write(bytes, quiet);
  });
}

describe('lying HTTP framing', () => {
  it('is answered with a coded 400 or the connection is closed, and good requests beside it are answered right', async () => {
    const body = goodBodies[2]!;
    const head = (extra: string) =>
      `POST ${INFER} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n${extra}\r\n`;
    const cases: [string, string, boolean][] = [
      ['content-length not a number', head('content-length: abc\r\n') + body, true],
      ['content-length negative', head('content-length: -5\r\n') + body, true],
      ['content-length twice, differing', head(`content-length: 5\r\ncontent-length: ${body.length}\r\n`) + body, true],
      ['content-length short of the body', head(`content-length: ${body.length - 10}\r\n`) + body, true],
      // The server waits for the rest; the client gives up (no answer is due).
      ['content-length past the body', head(`content-length: ${body.length + 10}\r\n`) + body, false],
      ['content-length 2^64', head('content-length: 18446744073709551616\r\n') + body, true],
      ['chunked with a bad chunk size', head('transfer-encoding: chunked\r\n') + `zz\r\n${body}\r\n0\r\n\r\n`, true],
      [
        'chunked and content-length',
        head(`transfer-encoding: chunked\r\ncontent-length: ${body.length}\r\n`) + body,
        true,
      ],
      [
        'chunked body',
        head('transfer-encoding: chunked\r\n') + `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
        true,
      ],
      ['header line without a colon', head('no colon here\r\n') + body, true],
    ];
    await fuzzBesideGoodTraffic(
      cases.map(([name, bytes, expectAnswer]) => ({ name, run: () => rawExchange(bytes, expectAnswer) })),
    );
  }, 60_000);
});

interface InferReply {
  parameters?: Record<string, { double_param?: number; int64_param?: unknown }>;
}

interface GrpcAnswer {
  err: grpc.ServiceError | null;
  /** The decoded ModelInferResponse when OK. */
  response?: InferReply | undefined;
}

/** Sends `bytes` as a ModelInfer message as they are (identity serializer), decodes an OK answer. */
function rawModelInfer(bytes: Buffer): Promise<GrpcAnswer> {
  const identity = (b: Buffer) => b;
  const decode = loadInferenceService()['ModelInfer']!.responseDeserialize;
  return new Promise((resolve) => {
    grpcClient.makeUnaryRequest(
      '/inference.GRPCInferenceService/ModelInfer',
      identity,
      (b: Buffer) => decode(b) as InferReply,
      bytes,
      { deadline: Date.now() + ANSWER_TIMEOUT_MS },
      (err: grpc.ServiceError | null, response?: InferReply) => resolve({ err, response }),
    );
  });
}

/** Why a gRPC answer is not OK or a coded client error, or null when it is. */
function grpcProblem({ err, response }: GrpcAnswer): string | null {
  if (err === null) {
    const confidence = response?.parameters?.['confidence'];
    const value = confidence?.double_param ?? Number(confidence?.int64_param);
    return Number.isFinite(value) ? null : `OK with confidence ${JSON.stringify(confidence)}`;
  }
  const code = err.metadata.get('offramp-code')[0];
  if (typeof code !== 'string' || !(code in ERROR_TABLE))
    return `${grpc.status[err.code]} without a known offramp-code: ${err.details}`;
  const spec = ERROR_TABLE[code as ErrorCode];
  if (spec.grpcStatus !== Number(err.code)) return `${code} answered ${grpc.status[err.code]}`;
  if (spec.httpStatus < 400 || spec.httpStatus >= 500) return `${code} is not a client error: ${err.details}`;
  return null;
}

describe('fuzzed gRPC ModelInfer messages', () => {
  it('are each answered OK or a coded client error while good requests beside them are answered right', async () => {
    const random = seededRandom(FUZZ_SEED + 2);
    const pick = (n: number) => Math.floor(random() * n);
    const service = loadInferenceService();
    const encode = (message: object) => service['ModelInfer']!.requestSerialize(message);
    const tensor = (overrides: Record<string, unknown> = {}) => ({
      name: 'pixels',
      datatype: 'UINT8',
      shape: [1, 1, 28, 28],
      ...overrides,
    });
    const valid = encode({ model_name: 'fmnist', inputs: [tensor()], raw_input_contents: [Buffer.from(validImage)] });
    expect(grpcProblem(await rawModelInfer(valid))).toBeNull();
    const wrongContents: [string, object][] = [
      [
        'typed and raw contents',
        {
          inputs: [tensor({ contents: { uint_contents: validImage } })],
          raw_input_contents: [Buffer.from(validImage)],
        },
      ],
      ['uint contents', { inputs: [tensor({ contents: { uint_contents: validImage } })] }],
      ['fp32 contents for UINT8', { inputs: [tensor({ contents: { fp32_contents: validImage } })] }],
      [
        'fp32 contents, FP32, NaN',
        { inputs: [tensor({ datatype: 'FP32', contents: { fp32_contents: validImage.map(() => Number.NaN) } })] },
      ],
      [
        'fp64 contents beyond FP32',
        { inputs: [tensor({ datatype: 'FP64', contents: { fp64_contents: validImage.map(() => 1e300) } })] },
      ],
      ['int64 contents for FP32', { inputs: [tensor({ datatype: 'FP32', contents: { int64_contents: validImage } })] }],
      ['bytes contents', { inputs: [tensor({ datatype: 'BYTES', contents: { bytes_contents: [Buffer.from('x')] } })] }],
      ['no contents', { inputs: [tensor()] }],
      [
        'two raw contents for one input',
        { inputs: [tensor()], raw_input_contents: [Buffer.from(validImage), Buffer.from(validImage)] },
      ],
      ['raw contents one short', { inputs: [tensor()], raw_input_contents: [Buffer.from(validImage).subarray(1)] }],
      ['negative dim', { inputs: [tensor({ shape: [-1, 1, 28, 28] })], raw_input_contents: [Buffer.from(validImage)] }],
      [
        'int64 max dim',
        {
          inputs: [tensor({ shape: ['9223372036854775807', 1, 28, 28] })],
          raw_input_contents: [Buffer.from(validImage)],
        },
      ],
      [
        'int64 min dim',
        {
          inputs: [tensor({ shape: ['-9223372036854775808', 1, 28, 28] })],
          raw_input_contents: [Buffer.from(validImage)],
        },
      ],
      [
        'huge dims',
        { inputs: [tensor({ shape: [1e6, 1e6, 1e6, 1e6] })], raw_input_contents: [Buffer.from(validImage)] },
      ],
      ['no dims', { inputs: [tensor({ shape: [] })], raw_input_contents: [Buffer.from(validImage)] }],
      ['unknown datatype', { inputs: [tensor({ datatype: 'FP8' })], raw_input_contents: [Buffer.from(validImage)] }],
      ['no inputs', { inputs: [] }],
      [
        'priority negative',
        {
          parameters: { priority: { int64_param: '-1' } },
          inputs: [tensor()],
          raw_input_contents: [Buffer.from(validImage)],
        },
      ],
      [
        'timeout a string',
        {
          parameters: { timeout: { string_param: 'soon' } },
          inputs: [tensor()],
          raw_input_contents: [Buffer.from(validImage)],
        },
      ],
      [
        'timeout int64 max',
        {
          parameters: { timeout: { int64_param: '9223372036854775807' } },
          inputs: [tensor()],
          raw_input_contents: [Buffer.from(validImage)],
        },
      ],
      [
        'unknown output',
        { outputs: [{ name: 'logits' }], inputs: [tensor()], raw_input_contents: [Buffer.from(validImage)] },
      ],
      ['unknown model', { model_name: 'nope', inputs: [tensor()], raw_input_contents: [Buffer.from(validImage)] }],
      ['unknown version', { model_version: '9', inputs: [tensor()], raw_input_contents: [Buffer.from(validImage)] }],
    ];
    const cases: { name: string; run: () => Promise<string | null> }[] = wrongContents.map(([name, message]) => ({
      name,
      run: async () => grpcProblem(await rawModelInfer(encode({ model_name: 'fmnist', ...message }))),
    }));
    for (let i = 0; i < 100; i++) {
      const bytes = Buffer.alloc(pick(2000));
      for (let j = 0; j < bytes.length; j++) bytes[j] = pick(256);
      cases.push({ name: `${bytes.length} random bytes`, run: async () => grpcProblem(await rawModelInfer(bytes)) });
    }
    for (let i = 0; i < 100; i++) {
      const at = pick(valid.length);
      cases.push({
        name: `truncated to ${at}`,
        run: async () => grpcProblem(await rawModelInfer(valid.subarray(0, at))),
      });
    }
    for (const { name, body } of mutations(valid, 150, random)) {
      cases.push({ name, run: async () => grpcProblem(await rawModelInfer(body)) });
    }
    cases.push({
      name: 'message over max_body_bytes',
      run: async () => {
        const { err } = await rawModelInfer(Buffer.alloc(MAX_BODY_BYTES + 1));
        // grpc-js refuses it before any handler runs: its own status, without an offramp code.
        return err?.code === grpc.status.RESOURCE_EXHAUSTED ? null : `answered ${String(err?.code)}`;
      },
    });
    await fuzzBesideGoodTraffic(cases);
  }, 120_000);
});
