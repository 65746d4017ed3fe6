/**
 * A ramp that fails costs that ramp, never an answer. Each case copies the bundled prepared model
 * into a temporary directory and damages one head for real (deleted, garbage bytes, NaN weights,
 * or a graph that fails past one row), then serves it with the real server (worker threads,
 * onnxruntime, sockets) or runs it through BackboneRunner. In every case the answers equal the
 * full model's on real test images, and the ramp is reported disabled with its reason.
 *
 * The plans put the damaged ramp 3 alone at threshold 0: a sound head would answer every row
 * there, so any row answered by the final layer was answered because the ramp was left out.
 */
import { cp, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServingConfig } from '../src/config/index.js';
import type { ExecutorFault, ExitPlan } from '../src/engine/backend.js';
import { BackboneRunner } from '../src/engine/executor/backbone-runner.js';
import { readManifest, type PreparedManifest } from '../src/model/manifest.js';
import { argmaxRows } from '../src/model/numeric.js';
import { ElemType, onnx, readModel, writeModel } from '../src/model/onnx-model.js';
import { OnnxSession } from '../src/model/onnx-session.js';
import type { HostTensor } from '../src/model/tensor.js';
import { startServer, type RunningServer } from '../src/server.js';
import { BUNDLED_DIR, BUNDLED_ONNX, TEST_SERVER, testImages } from './helpers/bundled.js';

const RAMP = 3;
const HEAD = `heads/head-${RAMP}.onnx`;
const ADMIN_TOKEN = 'fault-test-token';

let root: string;
let manifest: PreparedManifest;
let images: HostTensor;
/** The full model's class for each test image: what every answer must be. */
let expected: number[];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'offramp-ramp-faults-'));
  manifest = await readManifest(BUNDLED_DIR);
  images = await testImages(8, 100);
  const whole = await OnnxSession.create(BUNDLED_ONNX, { intraOpThreads: 1 });
  const logits = (await whole.run({ pixels: images }))['logits']!.data as Float32Array;
  await whole.release();
  expected = [...argmaxRows(logits, manifest.model.classes)];
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A copy of the bundled prepared model in the temporary directory, damaged by `damage`. */
async function damagedCopy(name: string, damage: (dir: string) => Promise<void>): Promise<string> {
  const dir = join(root, name);
  await cp(BUNDLED_DIR, dir, { recursive: true });
  await damage(dir);
  return dir;
}

/** Every float weight of the ONNX model at `path` set to NaN: it still loads, and scores NaN. */
async function nanWeights(path: string): Promise<void> {
  const model = await readModel(path);
  for (const t of model.graph?.initializer ?? []) {
    if (t.dataType !== ElemType.FLOAT) continue;
    const count = t.rawData && t.rawData.length > 0 ? t.rawData.length / 4 : (t.floatData?.length ?? 0);
    t.rawData = new Uint8Array(new Float32Array(count).fill(Number.NaN).buffer);
    t.floatData = [];
  }
  await writeModel(path, model);
}

/**
 * Rewrites the head at `path` to be sound on one row and to fail on more, so that it passes the
 * one-row check at load and fails only at run time: `throws` reshapes its probabilities to one
 * row (onnxruntime raises for a batch of several); `nan` adds √(1 − rows), which is 0 for one row
 * and NaN beyond.
 */
async function failPastOneRow(path: string, fault: 'throws' | 'nan'): Promise<void> {
  const model = await readModel(path);
  const graph = model.graph as onnx.GraphProto;
  const last = graph.node.find((n) => (n.output ?? []).includes('probs')) as onnx.NodeProto;
  const raw = 'fault/probs';
  last.output = last.output.map((o) => (o === 'probs' ? raw : o));
  const classes = manifest.model.classes;
  if (fault === 'throws') {
    graph.initializer.push(
      onnx.TensorProto.create({ name: 'fault/one-row', dataType: ElemType.INT64, dims: [2], int64Data: [1, classes] }),
    );
    graph.node.push(onnx.NodeProto.create({ opType: 'Reshape', input: [raw, 'fault/one-row'], output: ['probs'] }));
  } else {
    graph.initializer.push(
      onnx.TensorProto.create({ name: 'fault/zero', dataType: ElemType.INT64, dims: [], int64Data: [0] }),
      onnx.TensorProto.create({ name: 'fault/one', dataType: ElemType.FLOAT, dims: [], floatData: [1] }),
    );
    const toFloat = onnx.AttributeProto.create({
      name: 'to',
      type: onnx.AttributeProto.AttributeType.INT,
      i: ElemType.FLOAT,
    });
    graph.node.push(
      onnx.NodeProto.create({ opType: 'Shape', input: [raw], output: ['fault/shape'] }),
      onnx.NodeProto.create({ opType: 'Gather', input: ['fault/shape', 'fault/zero'], output: ['fault/rows'] }),
      onnx.NodeProto.create({ opType: 'Cast', input: ['fault/rows'], output: ['fault/rows-f'], attribute: [toFloat] }),
      onnx.NodeProto.create({ opType: 'Sub', input: ['fault/one', 'fault/rows-f'], output: ['fault/slack'] }),
      onnx.NodeProto.create({ opType: 'Sqrt', input: ['fault/slack'], output: ['fault/root'] }),
      onnx.NodeProto.create({ opType: 'Add', input: [raw, 'fault/root'], output: ['probs'] }),
    );
  }
  await writeModel(path, model);
}

/** Serves `dir` as `fmnist` with ramp 3 alone in the plan, at threshold 0; collects the log. */
async function serve(dir: string): Promise<{ server: RunningServer; base: string; log: string[] }> {
  const config = parseServingConfig(
    [
      `server: { ${TEST_SERVER}, admin_token: ${ADMIN_TOKEN} }`,
      'models:',
      '  - name: fmnist',
      `    path: ${JSON.stringify(dir)}`,
      '    tuner: { kind: static }',
      `    exits: { thresholds: { ${RAMP}: 0 } }`,
      '    batching: { max_batch_size: 8, max_queue_delay_ms: 5 }',
    ].join('\n'),
    'ramp-faults.test.yaml',
  );
  const log: string[] = [];
  const server = await startServer(config, { version: 'test', log: (line) => log.push(line) });
  return { server, base: `http://127.0.0.1:${server.httpPort}`, log };
}

interface Answer {
  classes: number[];
  exitRamps: number[];
}

/** The 8 test images as one request (one batch of 8 rows). */
async function inferAll(base: string): Promise<Answer> {
  const res = await fetch(`${base}/v2/models/fmnist/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      inputs: [{ name: 'pixels', shape: images.dims, datatype: 'FP32', data: Array.from(images.data as Float32Array) }],
      outputs: [{ name: 'class' }, { name: 'exit_ramp' }],
    }),
  });
  const json = (await res.json()) as { outputs?: { name: string; data: number[] }[]; error?: string };
  expect(res.status, JSON.stringify(json)).toBe(200);
  const output = (name: string): number[] => json.outputs?.find((o) => o.name === name)?.data ?? [];
  return { classes: output('class'), exitRamps: output('exit_ramp') };
}

interface RampReport {
  id: number;
  active: boolean;
  disabled: string | null;
}

async function exitsRamp(base: string): Promise<RampReport> {
  const report = (await (await fetch(`${base}/v2/models/fmnist/exits`)).json()) as { ramps: RampReport[] };
  return report.ramps.find((r) => r.id === RAMP) as RampReport;
}

async function metadataRamp(base: string): Promise<{ disabled: boolean; disabled_reason?: string }> {
  const metadata = (await (await fetch(`${base}/v2/models/fmnist`)).json()) as {
    parameters: { ramps: { id: number; disabled: boolean; disabled_reason?: string }[] };
  };
  return metadata.parameters.ramps.find((r) => r.id === RAMP) as { disabled: boolean; disabled_reason?: string };
}

async function disabledGauge(base: string): Promise<string | undefined> {
  const text = await (await fetch(`${base}/metrics`)).text();
  return text.split('\n').find((l) => l.startsWith(`offramp_ramp_disabled{model="fmnist",ramp="${RAMP}"}`));
}

describe('a head that fails at load disables its ramp; the model serves without it', () => {
  const cases: { name: string; damage: (dir: string) => Promise<void>; reason: string }[] = [
    { name: 'deleted', damage: (dir) => unlink(join(dir, HEAD)), reason: `head file ${HEAD} is missing` },
    {
      name: 'garbage',
      damage: (dir) => writeFile(join(dir, HEAD), 'this is not an ONNX model\n'.repeat(40)),
      reason: `head file ${HEAD} is not a valid ONNX model (`,
    },
    {
      name: 'nan-weights',
      damage: (dir) => nanWeights(join(dir, HEAD)),
      reason: `head file ${HEAD} failed a one-row test run: it returned a non-finite probability (NaN)`,
    },
  ];
  for (const c of cases) {
    it(`head file ${c.name}: starts, answers as the full model, reports the ramp disabled`, async () => {
      const dir = await damagedCopy(c.name, c.damage);
      const { server, base, log } = await serve(dir);
      try {
        expect(log).toContainEqual(expect.stringContaining(`model fmnist: ramp ${RAMP} disabled: ${c.reason}`));
        const ramp = await exitsRamp(base);
        expect(ramp.active).toBe(false);
        expect(ramp.disabled).toContain(c.reason);
        const meta = await metadataRamp(base);
        expect(meta.disabled).toBe(true);
        expect(meta.disabled_reason).toContain(c.reason);
        expect(await disabledGauge(base)).toMatch(/ 1$/);

        const answer = await inferAll(base);
        expect(answer.classes).toEqual(expected);
        expect(answer.exitRamps).toEqual(expected.map(() => -1));

        // A pin cannot bring it back.
        const pin = await fetch(`${base}/v2/models/fmnist/admin/thresholds`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}` },
          body: JSON.stringify({ thresholds: { [RAMP]: 0.5 } }),
        });
        expect(pin.status).toBe(409);
        expect(((await pin.json()) as { code: string }).code).toBe('OFFRAMP_RAMP_DISABLED');
        expect((await exitsRamp(base)).active).toBe(false);
      } finally {
        await server.close();
      }
    });
  }
});

describe('a head that fails on a batch is disabled from that batch on; the batch is answered as the full model', () => {
  const cases: { fault: 'throws' | 'nan'; reason: string }[] = [
    { fault: 'throws', reason: 'its head failed on a batch of 8 row(s) (' },
    { fault: 'nan', reason: 'its head on a batch of 8 row(s): it returned a non-finite probability (NaN)' },
  ];
  for (const c of cases) {
    it(`a head that ${c.fault === 'throws' ? 'throws' : 'scores NaN'} past one row`, async () => {
      const dir = await damagedCopy(`runtime-${c.fault}`, (d) => failPastOneRow(join(d, HEAD), c.fault));
      const { server, base, log } = await serve(dir);
      try {
        // Sound on one row: it passed the load check and is in the plan.
        expect(await exitsRamp(base)).toMatchObject({ active: true, disabled: null });
        const first = await inferAll(base);
        expect(first.classes).toEqual(expected);
        expect(first.exitRamps).toEqual(expected.map(() => -1));
        const ramp = await exitsRamp(base);
        expect(ramp.active).toBe(false);
        expect(ramp.disabled).toContain(c.reason);
        expect(log.filter((l) => l.startsWith(`model fmnist: ramp ${RAMP} disabled: ${c.reason}`))).toHaveLength(1);
        expect(await disabledGauge(base)).toMatch(/ 1$/);
        // Later batches run without it, and the ramp is not disabled (nor logged) again.
        expect(await inferAll(base)).toEqual(first);
        expect(log.filter((l) => l.includes(`ramp ${RAMP} disabled`))).toHaveLength(1);
      } finally {
        await server.close();
      }
    });
  }
});

describe('BackboneRunner on re-split segments that fail', () => {
  const plan: ExitPlan = {
    policy: 'confidence',
    patience: 2,
    mode: 'release',
    feedbackFraction: 0,
    ramps: [{ id: RAMP, threshold: 0 }],
  };
  const classesOf = (probs: Float32Array): number[] => [...argmaxRows(probs, manifest.model.classes)];

  it('a fused head whose segment throws: the batch falls back to the prepared segments, the ramp is disabled', async () => {
    const dir = await damagedCopy('fused-throws', (d) => failPastOneRow(join(d, HEAD), 'throws'));
    const runner = await BackboneRunner.load(dir, manifest, 1, { seed: 3 });
    try {
      const one = { ...images, dims: [1, ...images.dims.slice(1)], data: (images.data as Float32Array).slice(0, 784) };
      // One-row batches until the re-split chain (two segments, the head fused into the first) is in use.
      let ends: number[] = [];
      for (let i = 0; i < 200 && ends.length !== 2; i++) {
        ends = [];
        await runner.run(
          { pixels: one },
          plan,
          () => undefined,
          (k) => ends.push(k),
        );
        if (ends.length !== 2) await new Promise((r) => setTimeout(r, 10));
      }
      expect(ends).toEqual([RAMP, manifest.segments.length - 1]);

      const exits: number[] = [];
      ends = [];
      const result = await runner.run(
        { pixels: images },
        plan,
        (e) => exits.push(...e.map((x) => x.row)),
        (k) => ends.push(k),
      );
      expect(exits).toEqual([]);
      expect([...result.finalRows]).toEqual(expected.map((_, i) => i));
      expect(classesOf(result.finalProbs)).toEqual(expected);
      expect(result.readings).toEqual([]);
      // The fused segment ran, failed, and the batch ran again on every prepared segment.
      expect(ends).toEqual(manifest.segments.map((_, k) => k));
      expect(result.faults?.map((f) => ({ ...f, reason: f.reason.split(' (')[0] }))).toEqual([
        {
          kind: 'ramp-disabled',
          ramp: RAMP,
          reason: 'the re-split segment its head is fused into failed on a batch of 8 row(s)',
        },
      ]);
      expect(runner.disabledRamps.has(RAMP)).toBe(true);

      // From then on the plan runs without it: with no other ramp, the unsplit model.
      const later = await runner.run({ pixels: images }, plan, () => undefined);
      expect(later.readings).toEqual([]);
      expect(later.faults).toBeUndefined();
      expect(classesOf(later.finalProbs)).toEqual(expected);
    } finally {
      await runner.release();
    }
  });

  it('a re-split that fails to build is reported once; batches keep running on the prepared segments', async () => {
    // The model file no longer names ramp 3's tensor as the manifest does: it computes the same,
    // loads and runs, but cannot be re-split at that ramp.
    const dir = await damagedCopy('resplit-fails', async (d) => {
      const path = join(d, manifest.model.file);
      const model = await readModel(path);
      const tensor = manifest.ramps[RAMP]!.tensor;
      const rename = (n: string): string => (n === tensor ? `${tensor}/renamed` : n);
      for (const node of model.graph?.node ?? []) {
        node.input = (node.input ?? []).map(rename);
        node.output = (node.output ?? []).map(rename);
      }
      for (const info of model.graph?.valueInfo ?? []) info.name = rename(info.name ?? '');
      await writeModel(path, model);
    });
    const runner = await BackboneRunner.load(dir, manifest, 1, { seed: 3 });
    const never: ExitPlan = { ...plan, ramps: [{ id: RAMP, threshold: null }] };
    try {
      const faults: ExecutorFault[] = [];
      for (let i = 0; i < 20; i++) {
        const ends: number[] = [];
        const result = await runner.run(
          { pixels: images },
          never,
          () => undefined,
          (k) => ends.push(k),
        );
        expect(ends).toEqual(manifest.segments.map((_, k) => k));
        expect(classesOf(result.finalProbs)).toEqual(expected);
        expect(result.readings.map((r) => r.ramp)).toEqual([RAMP]);
        faults.push(...(result.faults ?? []));
        await new Promise((r) => setTimeout(r, 5));
      }
      expect(faults.map((f) => f.kind)).toEqual(['resplit-failed']);
      expect(faults[0]).toMatchObject({ ramps: [RAMP] });
      expect(runner.disabledRamps.size).toBe(0);
    } finally {
      await runner.release();
    }
  });
});
