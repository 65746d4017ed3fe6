/**
 * The bundled text model served from raw text, end to end: real sockets, the real tokenizer, the
 * real engine with worker threads. The served answers are checked against the unsplit ONNX model
 * run directly on the tokenizer's ids, so tokenizing, truncating, padding per batch and the
 * transports' BYTES encodings are all checked against one reference.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServingConfig } from '../src/config/index.js';
import { startServer, type RunningServer } from '../src/server.js';
import { loadInferenceService } from '../src/grpc/proto.js';
import { readManifest, type PreparedManifest } from '../src/model/manifest.js';
import { OnnxSession } from '../src/model/onnx-session.js';
import { TextTokenizer } from '../src/model/text-tokenizer.js';
import { padTokenRows, tokenRow } from '../src/model/token-batch.js';
import { softmaxRows } from '../src/model/numeric.js';
import { BackboneRunner } from '../src/engine/executor/backbone-runner.js';
import { TEST_SERVER } from './helpers/bundled.js';

const root = (relative: string): string => fileURLToPath(new URL(`../${relative}`, import.meta.url));
const TEXT_DIR = root('models/spam-bert');
const TEST_TEXTS = root('models/data/spam-assassin/test.jsonl.gz');

interface Email {
  text: string;
  label: string;
}
const emails: Email[] = gunzipSync(readFileSync(TEST_TEXTS))
  .toString('utf8')
  .split('\n')
  .filter((l) => l.length > 0)
  .map((l) => JSON.parse(l) as Email);

let server: RunningServer;
let base: string;
let client: grpc.Client;
let manifest: PreparedManifest;
let tokenizer: TextTokenizer;
let full: OnnxSession;

const ServiceClient = grpc.makeClientConstructor(loadInferenceService(), 'GRPCInferenceService');

function rpc<T>(method: string, request: object): Promise<T> {
  const fn = (
    client as unknown as Record<string, (r: object, cb: (e: grpc.ServiceError | null, v?: unknown) => void) => void>
  )[method]!;
  return new Promise((resolve, reject) =>
    fn.call(client, request, (err, res) => (err ? reject(err) : resolve(res as T))),
  );
}

/** The unsplit model's probabilities for these texts, each run alone (no padding at all). */
async function reference(texts: string[]): Promise<number[][]> {
  const out: number[][] = [];
  for (const text of texts) {
    const feeds = padTokenRows([tokenRow(tokenizer.encode(text).ids)], manifest.model.text!);
    const logits = (await full.run(feeds, [manifest.model.output]))[manifest.model.output]!;
    out.push(Array.from(softmaxRows(logits.data as Float32Array, manifest.model.classes)));
  }
  return out;
}

interface JsonAnswer {
  status: number;
  json: {
    outputs?: { name: string; shape: number[]; data: unknown[] }[];
    parameters?: Record<string, unknown>;
    code?: string;
    error?: string;
  };
}

async function post(model: string, body: unknown, headers: Record<string, string> = {}): Promise<JsonAnswer> {
  const res = await fetch(`${base}/v2/models/${model}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: body instanceof Uint8Array ? body : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as JsonAnswer['json'] };
}

const output = (a: JsonAnswer, name: string): unknown[] => a.json.outputs?.find((o) => o.name === name)?.data ?? [];

function expectClose(got: unknown[], want: number[][]): void {
  const flat = want.flat();
  expect(got).toHaveLength(flat.length);
  got.forEach((v, i) => expect(Math.abs((v as number) - (flat[i] as number))).toBeLessThan(1e-4));
}

/** BYTES elements in the v2 wire layout: a 4-byte little-endian length, then the bytes. */
function lengthPrefixed(elements: Uint8Array[]): Buffer {
  return Buffer.concat(
    elements.flatMap((b) => {
      const length = Buffer.alloc(4);
      length.writeUInt32LE(b.length);
      return [length, Buffer.from(b)];
    }),
  );
}

const text = (data: string[], shape = [data.length]) => ({ name: 'text', datatype: 'BYTES', shape, data });

beforeAll(async () => {
  manifest = await readManifest(TEXT_DIR);
  tokenizer = await TextTokenizer.load(`${TEXT_DIR}/${manifest.model.text!.tokenizer}`, manifest.model.text!.maxLength);
  full = await OnnxSession.create(`${TEXT_DIR}/${manifest.model.file}`, { intraOpThreads: 1 });
  const config = parseServingConfig(
    [
      `server: { ${TEST_SERVER} }`,
      'models:',
      // Vanilla: every answer comes from the full model, so it must equal the reference exactly.
      '  - name: spam-full',
      `    path: ${JSON.stringify(TEXT_DIR)}`,
      '    tuner: { kind: off }',
      '    slo: { latency_ms: 5000 }',
      '    batching: { max_batch_size: 8 }',
      // With the calibrated thresholds: answers may come from the ramps at the encoder layers.
      '  - name: spam',
      `    path: ${JSON.stringify(TEXT_DIR)}`,
      '    tuner: { kind: static }',
      '    exits: { mode: release, max_ramps: 3 }',
      '    slo: { latency_ms: 5000 }',
    ].join('\n'),
    'text-serving.test.yaml',
  );
  server = await startServer(config, { version: 'test' });
  base = `http://127.0.0.1:${server.httpPort}`;
  client = new ServiceClient(`127.0.0.1:${server.grpcPort}`, grpc.credentials.createInsecure());
}, 120_000);

afterAll(async () => {
  client?.close();
  await server?.close();
  await full?.release();
});

describe('the bundled text model (spam-bert) served from raw text', () => {
  it('offers text (BYTES) and the token inputs in its metadata, and labels spam/ham', async () => {
    const meta = (await (await fetch(`${base}/v2/models/spam`)).json()) as {
      inputs: { name: string; datatype: string; shape: number[] }[];
      outputs: { name: string }[];
      parameters: { labels: string[] };
    };
    expect(meta.inputs).toEqual([
      { name: 'text', datatype: 'BYTES', shape: [-1] },
      { name: 'input_ids', datatype: 'INT64', shape: [-1, -1] },
      { name: 'attention_mask', datatype: 'INT64', shape: [-1, -1] },
    ]);
    expect(meta.outputs.map((o) => o.name)).toContain('label');
    expect(meta.parameters.labels).toEqual(['ham', 'spam']);
  });

  it('classifies texts over HTTP JSON as the unsplit model does on the same ids, one batch padded to its longest', async () => {
    const texts = [
      emails[0]!.text.slice(0, 300),
      emails[1]!.text,
      'win a free prize now, click here',
      'hi bob, lunch?',
    ];
    const answer = await post('spam-full', { inputs: [text(texts)] });
    expect(answer.status).toBe(200);
    expectClose(output(answer, 'probabilities'), await reference(texts));
    const want = (await reference(texts)).map((p) => manifest.model.labels![p[1]! > p[0]! ? 1 : 0]);
    expect(output(answer, 'label')).toEqual(want);
    expect(answer.json.parameters).toMatchObject({ rows: 4, truncated_rows: 0, max_tokens: 256 });
  });

  it('accepts shape [N,1], and says how many rows were cut to the maximum length', async () => {
    const long = emails.map((e) => e.text).find((t) => t.length > 2900)!;
    const answer = await post('spam-full', { inputs: [text([long, 'short note'], [2, 1])] });
    expect(answer.status).toBe(200);
    expect(answer.json.parameters).toMatchObject({ truncated_rows: 1, max_tokens: 256 });
    expectClose(output(answer, 'probabilities'), await reference([long, 'short note']));
  });

  it('accepts pre-tokenized input_ids + attention_mask (padded by the client) with the same answer', async () => {
    const texts = ['meeting moved to 3pm', 'cheap meds online, no prescription needed!!!'];
    const rows = texts.map((t) => Array.from(tokenizer.encode(t).ids, Number));
    const width = Math.max(...rows.map((r) => r.length)) + 3;
    const ids = rows.flatMap((r) => [...r, ...new Array<number>(width - r.length).fill(0)]);
    const mask = rows.flatMap((r) => [
      ...new Array<number>(r.length).fill(1),
      ...new Array<number>(width - r.length).fill(0),
    ]);
    const answer = await post('spam-full', {
      inputs: [
        { name: 'input_ids', datatype: 'INT64', shape: [2, width], data: ids },
        { name: 'attention_mask', datatype: 'INT32', shape: [2, width], data: mask },
      ],
    });
    expect(answer.status).toBe(200);
    expectClose(output(answer, 'probabilities'), await reference(texts));
  });

  it('takes text as HTTP binary tensor data (length-prefixed UTF-8 elements)', async () => {
    const texts = ['Grüße aus Köln — ünïcödé text', 'free money!!!'];
    const blob = lengthPrefixed(texts.map((t) => Buffer.from(t, 'utf8')));
    const head = Buffer.from(
      JSON.stringify({
        inputs: [{ name: 'text', datatype: 'BYTES', shape: [2], parameters: { binary_data_size: blob.length } }],
      }),
    );
    const answer = await post('spam-full', Buffer.concat([head, blob]), {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(head.length),
    });
    expect(answer.status).toBe(200);
    expectClose(output(answer, 'probabilities'), await reference(texts));
  });

  it('takes text over gRPC as bytes_contents and as raw_input_contents', async () => {
    const texts = ['see you at the station', 'URGENT: your account is suspended, verify now'];
    const want = await reference(texts);
    type Reply = { outputs: { name: string; contents?: { fp32_contents: number[] } }[]; raw_output_contents: Buffer[] };
    const typed = await rpc<Reply>('ModelInfer', {
      model_name: 'spam-full',
      inputs: [
        { name: 'text', datatype: 'BYTES', shape: [2], contents: { bytes_contents: texts.map((t) => Buffer.from(t)) } },
      ],
    });
    const probsAt = typed.outputs.findIndex((o) => o.name === 'probabilities');
    const fromTyped = typed.outputs[probsAt]?.contents?.fp32_contents.length
      ? typed.outputs[probsAt].contents.fp32_contents
      : Array.from(new Float32Array(new Uint8Array(typed.raw_output_contents[probsAt]!).buffer));
    expectClose(fromTyped, want);
    const raw = await rpc<Reply>('ModelInfer', {
      model_name: 'spam-full',
      inputs: [{ name: 'text', datatype: 'BYTES', shape: [2] }],
      raw_input_contents: [lengthPrefixed(texts.map((t) => Buffer.from(t)))],
    });
    const probs = new Float32Array(new Uint8Array(raw.raw_output_contents[probsAt]!).buffer);
    expectClose(Array.from(probs), want);
  });

  it('answers with exit parameters when the ramps at the encoder layers are active', async () => {
    const texts = emails.slice(0, 16).map((e) => e.text);
    const answer = await post('spam', { inputs: [text(texts)] });
    expect(answer.status).toBe(200);
    expect(output(answer, 'exit_ramp')).toHaveLength(16);
    expect(answer.json.parameters).toMatchObject({ rows: 16 });
    expect(typeof answer.json.parameters?.['early']).toBe('boolean');
  });

  it('refuses bad text inputs with codes, and the good requests beside them are answered', async () => {
    const notUtf8 = lengthPrefixed([Buffer.from([0xc3, 0x28, 0xff])]);
    const head = Buffer.from(
      JSON.stringify({
        inputs: [{ name: 'text', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: notUtf8.length } }],
      }),
    );
    const ids = (shape: number[], data: number[]) => ({ name: 'input_ids', datatype: 'INT64', shape, data });
    const mask = (shape: number[], data: number[]) => ({ name: 'attention_mask', datatype: 'INT64', shape, data });
    const bad: [string, Promise<JsonAnswer>][] = [
      [
        'OFFRAMP_INVALID_TEXT',
        post('spam', Buffer.concat([head, notUtf8]), {
          'content-type': 'application/octet-stream',
          'inference-header-content-length': String(head.length),
        }),
      ],
      ['OFFRAMP_INVALID_TEXT', post('spam', { inputs: [text(['fine', '   '])] })],
      ['OFFRAMP_WRONG_DATATYPE', post('spam', { inputs: [{ name: 'text', datatype: 'FP32', shape: [1], data: [1] }] })],
      ['OFFRAMP_WRONG_SHAPE', post('spam', { inputs: [text(['a', 'b'], [1, 2])] })],
      ['OFFRAMP_INVALID_TOKENS', post('spam', { inputs: [ids([1, 3], [2, 9, 3]), mask([1, 2], [1, 1])] })],
      ['OFFRAMP_INVALID_TOKENS', post('spam', { inputs: [ids([1, 3], [2, 999_999, 3]), mask([1, 3], [1, 1, 1])] })],
      ['OFFRAMP_INVALID_TOKENS', post('spam', { inputs: [ids([1, 3], [2, 9, 3]), mask([1, 3], [1, 2, 1])] })],
      ['OFFRAMP_INVALID_TOKENS', post('spam', { inputs: [ids([1, 2], [2, 3]), mask([1, 2], [0, 0])] })],
      ['OFFRAMP_MISSING_INPUT', post('spam', { inputs: [ids([1, 3], [2, 9, 3])] })],
      [
        'OFFRAMP_INVALID_REQUEST',
        post('spam', { inputs: [text(['a']), ids([1, 3], [2, 9, 3]), mask([1, 3], [1, 1, 1])] }),
      ],
      [
        'OFFRAMP_UNKNOWN_INPUT',
        post('spam', { inputs: [{ name: 'pixels', datatype: 'FP32', shape: [1], data: [0] }] }),
      ],
    ];
    const good = emails.slice(20, 28).map((e) => post('spam', { inputs: [text([e.text])] }));
    const [badAnswers, goodAnswers] = await Promise.all([Promise.all(bad.map(([, p]) => p)), Promise.all(good)]);
    expect(badAnswers.map((a) => [a.status, a.json.code])).toEqual(bad.map(([code]) => [400, code]));
    expect(goodAnswers.map((a) => a.status)).toEqual(new Array(8).fill(200));
    const gone = await rpc('ModelInfer', {
      model_name: 'spam',
      inputs: [
        { name: 'text', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.from([0xff, 0xfe])] } },
      ],
    }).catch((err: grpc.ServiceError) => err);
    expect((gone as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((gone as grpc.ServiceError).details).toContain('not valid UTF-8');
  });
});

describe('per-batch padding', () => {
  it('a row gets the same answer alone as padded beside a longer row, at every ramp and at the end', async () => {
    const runner = await BackboneRunner.load(TEXT_DIR, manifest, 1, { seed: 3 });
    try {
      const short = tokenRow(tokenizer.encode('lunch at noon?').ids);
      const long = tokenRow(tokenizer.encode(emails[2]!.text).ids);
      const plan = {
        policy: 'confidence' as const,
        patience: 1,
        mode: 'release' as const,
        feedbackFraction: 1,
        ramps: manifest.ramps.map((r) => ({ id: r.id, threshold: null })),
      };
      const alone = await runner.run(padTokenRows([short], manifest.model.text!), plan, () => undefined);
      const padded = await runner.run(padTokenRows([short, long], manifest.model.text!), plan, () => undefined);
      const c = manifest.model.classes;
      Array.from(alone.finalProbs).forEach((p, i) => expect(Math.abs(p - padded.finalProbs[i]!)).toBeLessThan(1e-4));
      expect(padded.finalProbs).toHaveLength(2 * c);
      alone.readings.forEach((reading, k) => {
        expect(padded.readings[k]!.confidence[0]).toBeCloseTo(reading.confidence[0]!, 4);
        expect(padded.readings[k]!.argmax[0]).toBe(reading.argmax[0]);
      });
      expect(alone.readings.length).toBe(manifest.ramps.length);
    } finally {
      await runner.release();
    }
  });
});
