import { describe, expect, it } from 'vitest';
import { probeFigures, searchCapacity } from '../bench/lib/capacity.js';
import { spreadSample } from '../bench/lib/serving-overhead.js';
import { TEST_TEXTS, textRequest, textSloMs, workloadFor } from '../bench/lib/workload.js';
import { textLabels } from '../src/model/text-rows.js';
import { phaseFigures } from '../bench/lib/stats.js';
import type { OpenLoopResult } from '../bench/load/load-types.js';
import { encodeBinaryBody, requestBody } from '../bench/load/request-body.js';
import type { BenchResults, RunRow } from '../bench/lib/results.js';
import { oracleFraction, readmeTable, spread } from '../bench/report/table.js';
import { bestMember, cascadePolicies, cascadeTaskFor } from '../bench/lib/cascades.js';
import { cascadeOracleResult } from '../bench/lib/oracle.js';
import { servedVariants, servingConfig } from '../bench/lib/policies.js';
import { parseServingConfig } from '../src/config/index.js';
import { splitBody } from '../src/http/binary-tensors.js';
import { parseInferBody } from '../src/http/infer-json.js';
import { readManifest } from '../src/model/manifest.js';
import { readTextRecords } from '../src/model/text-rows.js';
import { BUNDLED_DIR } from './helpers/bundled.js';

describe('bench request bodies', () => {
  const pixels = Array.from({ length: 784 }, (_, i) => (i * 7) % 256);
  const json = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 1, 28, 28], datatype: 'UINT8', data: pixels }] });

  it('encodes the KServe v2 binary tensor extension: JSON header, then the raw bytes', () => {
    const { body, headerLength } = encodeBinaryBody(json);
    const header = JSON.parse(body.subarray(0, headerLength).toString('utf8')) as unknown;
    expect(header).toEqual({
      inputs: [{ name: 'input', shape: [1, 1, 28, 28], datatype: 'UINT8', parameters: { binary_data_size: 784 } }],
    });
    expect(body.length).toBe(headerLength + 784);
    expect([...body.subarray(headerLength)]).toEqual(pixels);
  });

  it('sends the header length and an octet-stream type with binary bodies, the JSON as is otherwise', () => {
    const binary = requestBody(json, 'binary');
    const length = Number(binary.headers['inference-header-content-length']);
    expect(binary.headers['content-type']).toBe('application/octet-stream');
    expect(binary.headers['content-length']).toBe(binary.body.length);
    expect(binary.body[length - 1]).toBe('}'.charCodeAt(0));
    const plain = requestBody(json, 'json');
    expect(plain.body.toString('utf8')).toBe(json);
    expect(plain.headers).toEqual({ 'content-type': 'application/json', 'content-length': json.length });
  });

  it('encodes FP32 as four little-endian bytes per element', () => {
    const fp32 = JSON.stringify({ inputs: [{ name: 'x', shape: [1, 2], datatype: 'FP32', data: [0.5, -2] }] });
    const { body, headerLength } = encodeBinaryBody(fp32);
    const header = JSON.parse(body.subarray(0, headerLength).toString('utf8')) as {
      inputs: { parameters: { binary_data_size: number } }[];
    };
    expect(header.inputs[0]?.parameters.binary_data_size).toBe(8);
    expect([body.readFloatLE(headerLength), body.readFloatLE(headerLength + 4)]).toEqual([0.5, -2]);
    expect(body.length).toBe(headerLength + 8);
  });

  it('refuses what it cannot encode byte for byte', () => {
    const int64 = JSON.stringify({ inputs: [{ name: 'x', shape: [1, 2], datatype: 'INT64', data: [5, 1] }] });
    expect(() => encodeBinaryBody(int64)).toThrow(/not UINT8, FP32 or BYTES/);
    const short = JSON.stringify({ inputs: [{ name: 'x', shape: [1, 3], datatype: 'UINT8', data: [1, 2] }] });
    expect(() => encodeBinaryBody(short)).toThrow(/2 values/);
  });
});

describe('bench text workload', () => {
  /** The server's own reading of a body as the load generator sends it (src/http: split, parse, decode). */
  function serverReads(line: string, format: 'json' | 'binary') {
    const { body, headers } = requestBody(line, format);
    const header = headers['inference-header-content-length'];
    const { json, binary } = splitBody(body, header === undefined ? undefined : String(header));
    return parseInferBody(JSON.parse(json.toString('utf8')), binary).inputs;
  }

  it('sends each email so that the server decodes the same text, in JSON and in binary framing', async () => {
    const records = await readTextRecords(TEST_TEXTS);
    // Real emails, among them one with characters beyond ASCII (multi-byte UTF-8 in the binary framing).
    const wide = records.find((r) => [...r.text].some((c) => c.charCodeAt(0) > 127));
    expect(wide).toBeDefined();
    for (const { text } of [records[0]!, records[1]!, wide!]) {
      const line = JSON.stringify({ inputs: [textRequest({ textInput: 'text' }, text)] });
      for (const format of ['json', 'binary'] as const) {
        const inputs = serverReads(line, format);
        expect(inputs).toHaveLength(1);
        expect(inputs[0]).toMatchObject({ name: 'text', datatype: 'BYTES', shape: [1] });
        expect(inputs[0]?.data).toEqual([text]);
      }
      const { body, headerLength } = encodeBinaryBody(line);
      const head = JSON.parse(body.subarray(0, headerLength).toString('utf8')) as {
        inputs: { parameters: { binary_data_size: number } }[];
      };
      expect(head.inputs[0]?.parameters.binary_data_size).toBe(4 + Buffer.byteLength(text, 'utf8'));
    }
  });

  it("maps the records' labels through the model's label names and refuses one it does not have", async () => {
    const records = await readTextRecords(TEST_TEXTS);
    const labels = textLabels(records, ['ham', 'spam'], TEST_TEXTS);
    expect(labels).toHaveLength(1182);
    records.forEach((r, i) => expect(labels[i]).toBe(r.label === 'spam' ? 1 : 0));
    expect(labels.filter((l) => l === 1)).toHaveLength(records.filter((r) => r.label === 'spam').length);
    expect(() => textLabels([{ text: 'x', label: 'phish' }], ['ham', 'spam'], 'f.jsonl')).toThrow(
      /f\.jsonl record 1: label "phish" is not one of the model's labels \(ham, spam\)/,
    );
    expect(() => textLabels([{ text: 'x' }], ['ham', 'spam'], 'f.jsonl')).toThrow(/record 1: label null/);
  });

  it('picks the workload from the manifest: images for the image model, the test emails for a text model', async () => {
    const image = await readManifest(BUNDLED_DIR);
    const images = workloadFor(image, BUNDLED_DIR);
    expect(images.kind).toBe('image');
    expect(images.slo.ms).toBe(50);
    expect(images.recordArgs).toEqual([
      '--data',
      'models/data/fashion-mnist/test-images.npy.gz',
      '--labels',
      'models/data/fashion-mnist/test-labels.npy.gz',
    ]);
    // The image manifest given the bundled text backbone's tokenizer and labels: what a prepared text model has.
    const text = {
      ...image,
      name: 'spam-bert',
      model: {
        ...image.model,
        labels: ['ham', 'spam'],
        text: {
          tokenizer: 'spam-bert.tokenizer.json',
          maxLength: 256,
          padId: 0,
          inputs: { ids: 'input_ids', mask: 'attention_mask' },
          textInput: 'text',
        },
      },
      profile: { ...image.profile, fullModelMs: [23.4, ...image.profile.fullModelMs.slice(1)] },
    };
    const emails = workloadFor(text, 'models');
    expect(emails.kind).toBe('text');
    expect(emails.recordArgs).toEqual(['--data', TEST_TEXTS]);
    expect(emails.slo.ms).toBe(120); // 5 × 23.4 ms, rounded up to 10 ms
    expect(textSloMs(text)).toBe(120);
    const { inputs, labels } = await emails.testItems();
    expect(inputs).toHaveLength(1182);
    expect(labels).toHaveLength(1182);
    expect(inputs[0]).toMatchObject({ name: 'text', datatype: 'BYTES', shape: [1] });
    const rows = await emails.overheadRows(8);
    expect(rows.rows.rows).toBe(8);
    expect(rows.request(9)).toEqual(inputs[1]);
    const feeds = rows.rows.feeds([0, 1]);
    expect(Object.keys(feeds).sort()).toEqual(['attention_mask', 'input_ids']);
  });

  it('spreads the per-request sample evenly over the data', () => {
    expect(spreadSample(1182, 4)).toEqual([0, 295, 591, 886]);
    expect(spreadSample(3, 64)).toEqual([0, 1, 2]);
  });
});

/** n requests: the first `answered` answered 200 at latencies 1, 2, 3, … ms, the rest 504. */
function result(n: number, answered: number): OpenLoopResult {
  const ok = (i: number): boolean => i < answered;
  return {
    latencyMs: Array.from({ length: n }, (_, i) => (ok(i) ? i + 1 : 50)),
    sendLagMs: new Array<number>(n).fill(0),
    status: Array.from({ length: n }, (_, i) => (ok(i) ? 200 : 504)),
    predicted: new Array<number>(n).fill(0),
    exitRamp: new Array<number | null>(n).fill(-1),
    tier: new Array<number | null>(n).fill(null),
    errorCode: Array.from({ length: n }, (_, i) => (ok(i) ? null : 'OFFRAMP_TIMED_OUT_IN_QUEUE')),
    elapsedS: 1,
  };
}

describe('bench figures over every offered request', () => {
  const traces = Array.from({ length: 100 }, () => ({ final: 0, earliestAgreeingRamp: -1 }));
  const figures = (n: number, answered: number, sloMs = 50) =>
    phaseFigures(result(n, answered), new Array<number>(n).fill(0), traces, new Int32Array(100), 2, sloMs);

  it('counts a rejected request as a miss in the percentiles, not as a drop-out', () => {
    const f = figures(100, 96);
    expect(f.p50_ms).toBe(50);
    expect(f.p95_ms).toBe(95);
    expect(f.p99_ms).toBeNull(); // the 99th request of 100 was a 504
    expect(f.answered_p99_ms).toBe(96);
    expect(f.errors.total).toBe(4);
  });

  it('measures SLO attainment over offered requests', () => {
    const f = figures(100, 96, 10);
    expect(f.slo_attainment).toBeCloseTo(0.1);
    expect(f.goodput_rps).toBe(10);
    expect(f.cdf.at(-1)?.[1]).toBeLessThan(1); // the CDF stops at the answered share
  });
});

describe('bench SLO capacity search', () => {
  it('bisects to the highest probed rate whose p95 meets the SLO', async () => {
    // A server whose p95 is 10 ms up to 700/s and a miss above it.
    const probe = (rate: number) => Promise.resolve({ p95_ms: rate <= 700 ? 10 : null });
    const { rps, tried } = await searchCapacity(1000, 5, probe, 50);
    expect(tried.map((t) => t.rate_rps)).toEqual([500, 750, 625, 687.5, 718.75]);
    expect(rps).toBe(687.5);
  });

  it('reports 0 when no probe met the SLO', async () => {
    const { rps } = await searchCapacity(1000, 3, () => Promise.resolve({ p95_ms: 80 }), 50);
    expect(rps).toBe(0);
  });

  it('judges a probe on the p95 of every offered request', () => {
    expect(probeFigures(result(100, 96), 500, 50)).toMatchObject({
      p95_ms: 95,
      passed: false,
      errors_by_status: { 504: 4 },
    });
    expect(probeFigures(result(100, 100), 500, 100)).toMatchObject({ p95_ms: 95, passed: true, slo_attainment: 1 });
  });
});

describe('bench report arithmetic', () => {
  it("gives the share of the oracle's cut a policy reaches", () => {
    expect(oracleFraction(9, 10, 6)).toBe(0.25);
    expect(oracleFraction(11, 10, 6)).toBe(-0.25);
    expect(oracleFraction(Number.POSITIVE_INFINITY, 10, 6)).toBe(Number.NEGATIVE_INFINITY);
    expect(oracleFraction(9, 10, 10)).toBeNaN(); // the oracle cuts nothing
  });

  it('shows a spread over rounds, with misses', () => {
    const ms = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : 'miss');
    expect(spread([2, 1], ms)).toBe('1.0–2.0');
    expect(spread([1, 3, 2], ms)).toBe('2.0 (1.0–3.0)');
    expect(spread([1, Number.POSITIVE_INFINITY], ms)).toBe('1.0–miss');
    expect(spread([4, 4], ms)).toBe('4.0');
    expect(spread([Number.NaN], ms)).toBe('–');
  });
});

describe('bench README table', () => {
  it('names the model on every row and gives ratios against vanilla of the same round', () => {
    const row = (label: string, round: number, p50: number, accuracy: number): Partial<RunRow> => ({
      label,
      round,
      computed: false,
      pattern: 'poisson',
      load_fraction: 0.6,
      p50_ms: p50,
      p99_ms: p50 * 2,
      disagreement: label === 'vanilla' ? 0 : 0.004,
      accuracy,
      early_fraction: label === 'vanilla' ? 0 : 0.7,
      cpu_ms_per_answer: label === 'vanilla' ? 4 : 1,
    });
    const capacity = (rps: number) => ({ capacity: { rps } });
    const results = {
      model: { name: 'spam-bert' },
      plan: { phases: [{ pattern: 'poisson', loadFraction: 0.6, seconds: 15 }] },
      policies: [{ label: 'vanilla' }, { label: 'guarded-drop' }],
      runs: [
        row('vanilla', 1, 40, 0.98),
        row('vanilla', 2, 50, 0.98),
        row('guarded-drop', 1, 20, 0.975),
        row('guarded-drop', 2, 20, 0.977),
      ],
      served: [
        { label: 'vanilla', round: 1, ...capacity(40) },
        { label: 'vanilla', round: 2, ...capacity(50) },
        { label: 'guarded-drop', round: 1, ...capacity(80) },
        { label: 'guarded-drop', round: 2, ...capacity(125) },
      ],
    } as unknown as BenchResults;
    const table = readmeTable(results);
    expect(table.header.slice(0, 3)).toEqual(['model', 'policy', 'p50 ×vanilla at 60 %']);
    expect(table.rows).toEqual([
      ['spam-bert', 'vanilla (ms)', '40.0–50.0', '80.0–100.0', '40–50/s', '4.00 ms', '0.00 %', '98.00 %', '0 %'],
      ['spam-bert', 'guarded-drop', '0.40–0.50', '0.40–0.50', '2.00–2.50', '0.25', '0.40 %', '97.50 %–97.70 %', '70 %'],
    ]);
  });
});

describe('bench cascades (--cascade)', () => {
  it('serves vanilla, guarded-drop and the four cascades, each with an SLO file the server accepts', async () => {
    const task = cascadeTaskFor('fmnist-resnet');
    const single = await bestMember(task);
    // The image members' report: the CNN agrees most with the backbone (92.2 %).
    expect(single.name).toBe('cnn');
    const variants = servedVariants('binary', cascadePolicies(task, single));
    expect(variants.map((v) => v.label)).toEqual([
      'vanilla',
      'guarded-drop',
      'abc-fixed',
      'abc-tuned',
      'single-small',
      'abc-ramps',
    ]);
    for (const v of variants) {
      const text = JSON.stringify(servingConfig(BUNDLED_DIR, 'fmnist-resnet', v.policy, 50));
      const model = parseServingConfig(text, `${v.label}.yaml`).models[0];
      expect(model?.cascade?.tiers.length ?? 0, v.label).toBe(v.policy.cascade ? 1 : 0);
      if (v.label === 'abc-fixed') expect(model?.cascade?.tiers[0]).toMatchObject({ rule: 'vote', theta: 1 });
      if (v.label === 'single-small') expect(model?.cascade?.tiers[0]?.members).toHaveLength(1);
      // The cascades but abc-ramps serve the backbone whole; abc-ramps and the ramp policies keep the default.
      const whole = ['abc-fixed', 'abc-tuned', 'single-small'].includes(v.label);
      expect(model?.exits.maxRamps, v.label).toBe(whole ? 0 : 3);
    }
  });

  it("counts answers per tier and keeps ramp exits in the backbone's numbering", () => {
    // One tier (exit 0); the backbone's ramp r is exit 1 + r. Four answers: tier, ramp 1, full model, full model.
    const r: OpenLoopResult = {
      latencyMs: [1, 2, 3, 4],
      sendLagMs: [0, 0, 0, 0],
      status: [200, 200, 200, 200],
      predicted: [0, 0, 0, 1],
      exitRamp: [0, 2, -1, -1],
      tier: [0, 1, 1, 1],
      errorCode: [null, null, null, null],
      elapsedS: 1,
    };
    const traces = Array.from({ length: 4 }, () => ({ final: 0, earliestAgreeingRamp: -1 }));
    const f = phaseFigures(r, [0, 1, 2, 3], traces, new Int32Array(4), 3, 50, 1);
    expect(f.tier_shares).toEqual({ '0': 0.25, model: 0.75 });
    expect(f.exits).toEqual({ '0': 0, '1': 0.25, '2': 0, final: 0.5 });
    expect(f.early_fraction).toBe(0.5);
    expect(f.answers_without_tier).toBe(0);
    expect(f.disagreement).toBe(0.25);
  });

  it("computes the cascade oracle: the tier's cost where its plurality is the full model's answer, tier + model elsewhere", async () => {
    const manifest = await readManifest(BUNDLED_DIR);
    const vanilla: OpenLoopResult = {
      latencyMs: [100, 100, 100],
      sendLagMs: [0, 0, 0],
      status: [200, 200, 504],
      predicted: [3, 3, -1],
      exitRamp: [-1, -1, null],
      tier: [null, null, null],
      errorCode: [null, null, 'OFFRAMP_TIMED_OUT_IN_QUEUE'],
      elapsedS: 1,
    };
    const traces = [3, 3, 3].map((final) => ({ final, earliestAgreeingRamp: -1 }));
    const tier = [
      { votes: [3, 3, 1], plurality: 3, agreement: 2 / 3 },
      { votes: [1, 1, 3], plurality: 1, agreement: 2 / 3 },
      { votes: [3, 3, 3], plurality: 3, agreement: 1 },
    ];
    const { result, computeShare } = cascadeOracleResult(vanilla, [0, 1, 2], traces, tier, 0.1, manifest, 1);
    // At batch 1 the oracle reads the profile made non-decreasing in batch size: its smallest value.
    const fullMs = Math.min(...manifest.profile.fullModelMs);
    expect(result.latencyMs[0]).toBeCloseTo(100 - 0.9 * fullMs);
    expect(result.latencyMs[1]).toBeCloseTo(100 + 0.1 * fullMs);
    expect(result.status[2]).toBe(504); // a miss stays a miss
    expect(result.tier.slice(0, 2)).toEqual([0, 1]);
    expect(result.predicted.slice(0, 2)).toEqual([3, 3]);
    expect(computeShare).toBeCloseTo((0.1 + 1.1) / 2);
  });
});
