/**
 * Agreement-based cascades below the server: the SLO file's cascade section, the tier graphs
 * (src/model/cascade.ts) and the cascade runner (src/engine/executor/cascade-runner.ts), on the
 * bundled Fashion-MNIST backbone, its bundled members and members generated here.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServingConfig } from '../src/config/index.js';
import { OfframpError } from '../src/errors.js';
import { buildTierModels, memberOutput, type TierSpec } from '../src/model/cascade.js';
import { readManifest, type PreparedManifest } from '../src/model/manifest.js';
import { argmaxRows, softmaxRows } from '../src/model/numeric.js';
import { decodeModel } from '../src/model/onnx-model.js';
import { OnnxSession } from '../src/model/onnx-session.js';
import type { HostTensor } from '../src/model/tensor.js';
import { CascadeRunner } from '../src/engine/executor/cascade-runner.js';
import { servingPlan } from '../src/engine/exit-plan.js';
import type { ExitPlan, RowExit } from '../src/engine/backend.js';
import { BUNDLED_DIR, FMNIST_MEMBERS, testImages } from './helpers/bundled.js';
import { exitPlan } from './helpers/exit-plans.js';
import { arbitraryMember } from './helpers/member-models.js';

const CLASSES = 10;
const tierOf = (members: string[]): TierSpec => ({ members, rule: 'vote' });

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'offramp-cascade-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes generated member bytes to the test's folder; returns the path. */
async function memberFile(name: string, bytes: Uint8Array): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, bytes);
  return path;
}

/** Runs a model (file or bytes) on `pixels` once; returns the named outputs' data. */
async function runModel(model: string | Uint8Array, pixels: HostTensor, outputs?: string[]): Promise<Float32Array[]> {
  const session = await OnnxSession.create(model, { intraOpThreads: 1 });
  try {
    const out = await session.run({ pixels }, outputs);
    return (outputs ?? Object.keys(out)).map((name) => out[name]?.data as Float32Array);
  } finally {
    await session.release();
  }
}

/** The largest absolute difference between two arrays of the same length. */
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs((a[i] as number) - (b[i] as number)));
  return worst;
}

describe('the SLO file cascade section', () => {
  /** An SLO file with one model under `tuner` and one tier with the given extra fields. */
  const slo = (tuner: string, tierFields = '', modelFields: string[] = []) =>
    [
      'models:',
      '  - name: a',
      '    path: m/a',
      `    tuner: { kind: ${tuner} }`,
      ...modelFields.map((line) => `    ${line}`),
      '    cascade:',
      '      tiers:',
      `        - { members: [one.onnx, sub/two.onnx, /abs/three.onnx]${tierFields} }`,
    ].join('\n');

  /** The OFFRAMP_CONFIG_INVALID message for `text`. */
  function problem(text: string): string {
    try {
      parseServingConfig(text, 'slo.yaml', { env: {}, baseDir: '/srv' });
    } catch (err) {
      expect(OfframpError.is(err, 'OFFRAMP_CONFIG_INVALID')).toBe(true);
      return (err as Error).message;
    }
    throw new Error('expected the config to be rejected');
  }

  it('refuses a tuned theta under the static tuner, naming the tier', () => {
    expect(problem(slo('static', ', theta: tuned'))).toMatch(
      /^slo\.yaml:\d+: models\[0\]\.cascade\.tiers\[0\]\.theta: "tuned" needs an online tuner \(tuner\.kind guarded or apparate, not static\)$/,
    );
  });

  it('refuses a fixed theta under an online tuner, naming the tier', () => {
    for (const tuner of ['guarded', 'apparate'])
      expect(problem(slo(tuner, ', theta: 1'))).toMatch(
        new RegExp(
          `^slo\\.yaml:\\d+: models\\[0\\]\\.cascade\\.tiers\\[0\\]\\.theta: 1 is fixed, but tuner\\.kind ${tuner}`,
        ),
      );
  });

  it('refuses the patience policy with a cascade', () => {
    expect(problem(slo('static', '', ['exits: { policy: patience }']))).toMatch(
      /models\[0\]\.exits\.policy: "patience" cannot serve a cascade/,
    );
  });

  it('leaves theta out as tuned under an online tuner and 1 under the static tuner', () => {
    const theta = (tuner: string) =>
      parseServingConfig(slo(tuner), 'slo.yaml', { env: {}, baseDir: '/srv' }).models[0]!.cascade!.tiers[0]!.theta;
    expect(theta('guarded')).toBe('tuned');
    expect(theta('apparate')).toBe('tuned');
    expect(theta('static')).toBe(1);
  });

  it("resolves relative member paths against the config file's folder", () => {
    const config = parseServingConfig(slo('static', ', rule: score, theta: 0.9'), '/etc/offramp/slo.yaml', {
      env: {},
    });
    expect(config.models[0]!.cascade).toEqual({
      tiers: [
        {
          members: ['/etc/offramp/one.onnx', '/etc/offramp/sub/two.onnx', '/abs/three.onnx'],
          rule: 'score',
          theta: 0.9,
        },
      ],
      execution: 'merged',
    });
  });
});

describe('the plan a cascade starts serving with', () => {
  const slo = (tuner: string, tierFields: string, exits = 'max_ramps: 2') =>
    [
      'models:',
      '  - name: m',
      `    path: ${BUNDLED_DIR}`,
      `    exits: { ${exits} }`,
      `    tuner: { kind: ${tuner} }`,
      '    cascade:',
      `      tiers: [ { members: [a.onnx, b.onnx]${tierFields} } ]`,
    ].join('\n');
  let prepared: PreparedManifest;
  beforeAll(async () => {
    prepared = await readManifest(BUNDLED_DIR);
  });
  const planOf = (text: string): ExitPlan =>
    servingPlan(prepared, parseServingConfig(text, 'slo.yaml', { env: {}, baseDir: '/srv' }).models[0]!);

  it('starts a tuned tier at the strict end of its rule under the guarded tuner, and the ramps behind it at "never"', () => {
    const vote = planOf(slo('guarded', ''));
    expect(vote.ramps[0]).toEqual({ id: 0, threshold: 1 });
    expect(vote.ramps.length).toBeGreaterThan(1);
    for (const r of vote.ramps.slice(1)) {
      expect(r.id).toBeGreaterThanOrEqual(1);
      expect(r.threshold).toBeNull();
    }
    expect(planOf(slo('guarded', ', rule: score')).ramps[0]).toEqual({ id: 0, threshold: 0.99 });
    expect(planOf(slo('apparate', '')).ramps[0]).toEqual({ id: 0, threshold: null });
  });

  it("keeps a fixed theta and the backbone's static thresholds under the static tuner, shifted past the tier", () => {
    const plan = planOf(slo('static', ', theta: 0.67'));
    const alone = servingPlan(
      prepared,
      parseServingConfig(
        [
          'models:',
          '  - name: m',
          `    path: ${BUNDLED_DIR}`,
          '    exits: { max_ramps: 2 }',
          '    tuner: { kind: static }',
        ].join('\n'),
        'slo.yaml',
        { env: {}, baseDir: '/srv' },
      ).models[0]!,
    );
    expect(plan.ramps).toEqual([{ id: 0, threshold: 0.67 }, ...alone.ramps.map((r) => ({ ...r, id: r.id + 1 }))]);
  });

  it('runs nothing, not even the tiers, with the tuner off', () => {
    expect(planOf(slo('off', ', theta: 1')).ramps).toEqual([]);
  });
});

describe('tier graphs', () => {
  let pixels: HostTensor;
  beforeAll(async () => {
    pixels = await testImages(48, 100);
  });

  it("a merged tier's member_i is member i run alone, softmaxed", async () => {
    const [merged] = await buildTierModels(tierOf(FMNIST_MEMBERS), ['pixels'], 'merged');
    const outputs = FMNIST_MEMBERS.map((_, i) => memberOutput(i));
    const tier = await runModel(merged!, pixels, outputs);
    for (const [i, path] of FMNIST_MEMBERS.entries()) {
      const [logits] = await runModel(path, pixels, ['logits']);
      expect(maxDiff(tier[i]!, softmaxRows(logits!, CLASSES))).toBeLessThanOrEqual(1e-5);
    }
  });

  it('separate tier models give what the merged one gives', async () => {
    const [merged] = await buildTierModels(tierOf(FMNIST_MEMBERS), ['pixels'], 'merged');
    const separate = await buildTierModels(tierOf(FMNIST_MEMBERS), ['pixels'], 'separate');
    expect(separate).toHaveLength(FMNIST_MEMBERS.length);
    const together = await runModel(
      merged!,
      pixels,
      FMNIST_MEMBERS.map((_, i) => memberOutput(i)),
    );
    for (const [i, model] of separate.entries()) {
      const [alone] = await runModel(model, pixels, [memberOutput(i)]);
      expect(maxDiff(alone!, together[i]!)).toBeLessThanOrEqual(1e-6);
    }
  });

  it('refuses to merge members of different opsets, and says separate serves them', async () => {
    const old = await memberFile('opset13.onnx', arbitraryMember(1, { opset: 13 }));
    const members = [FMNIST_MEMBERS[0]!, old];
    await expect(buildTierModels(tierOf(members), ['pixels'], 'merged')).rejects.toThrow(
      `cascade members of one tier use different ONNX opsets (${FMNIST_MEMBERS[0]}: 17, ${old}: 13); ` +
        'export them at one opset, or set cascade.execution: separate',
    );
    const separate = await buildTierModels(tierOf(members), ['pixels'], 'separate');
    const [probs] = await runModel(separate[1]!, pixels, [memberOutput(1)]);
    expect(probs).toHaveLength(48 * CLASSES);
  });

  it('refuses a member reading an input the served model does not have', async () => {
    const stranger = await memberFile('image-input.onnx', arbitraryMember(2, { input: 'image' }));
    for (const execution of ['merged', 'separate'] as const)
      await expect(buildTierModels(tierOf([FMNIST_MEMBERS[1]!, stranger]), ['pixels'], execution)).rejects.toThrow(
        `cascade member ${stranger} reads input 'image', which the served model does not have (its inputs: pixels)`,
      );
  });

  it('does not softmax a member whose output already is a Softmax', async () => {
    const softmaxed = await memberFile('softmax.onnx', arbitraryMember(3, { softmax: true }));
    const [merged] = await buildTierModels(tierOf([softmaxed, FMNIST_MEMBERS[2]!]), ['pixels'], 'merged');
    const softmaxNodes = decodeModel(merged!).graph!.node!.filter((n) => n.opType === 'Softmax');
    // One Softmax is the generated member's own, one is appended to the CNN's logits.
    expect(softmaxNodes).toHaveLength(2);
    const [own] = await runModel(softmaxed, pixels, ['probabilities']);
    const [tier] = await runModel(merged!, pixels, [memberOutput(0)]);
    expect(maxDiff(tier!, own!)).toBeLessThanOrEqual(1e-6);
    // A second softmax of probabilities in [0, 1] over 10 classes would cap every one at e/(e+9).
    expect(Math.max(...own!)).toBeGreaterThan(Math.E / (Math.E + 9));
  });
});

describe('the cascade runner on the bundled members and backbone', () => {
  const ROWS = 64;
  const T = 1;
  let manifest: PreparedManifest;
  let runner: CascadeRunner;
  let input: { pixels: HostTensor };
  /** Each bundled member's argmax per row of `input`, computed by running the member file alone. */
  let memberVotes: Int32Array[];

  const plan = exitPlan;

  async function run(p: ExitPlan, r: CascadeRunner = runner) {
    const exits: RowExit[] = [];
    const result = await r.run(input, p, (e) => exits.push(...e));
    return { result, exits };
  }

  beforeAll(async () => {
    manifest = await readManifest(BUNDLED_DIR);
    runner = await CascadeRunner.load(BUNDLED_DIR, manifest, [tierOf(FMNIST_MEMBERS)], 'merged', 1, { seed: 5 });
    input = { pixels: await testImages(ROWS, 300) };
    memberVotes = [];
    for (const path of FMNIST_MEMBERS)
      memberVotes.push(argmaxRows((await runModel(path, input.pixels, ['logits']))[0]!, CLASSES));
  });
  afterAll(async () => {
    await runner?.release();
  });

  it('at θ = 1 answers at the tier exactly the rows all members vote alike, with that vote', async () => {
    const { result, exits } = await run(plan([{ id: 0, threshold: 1 }]));
    const unanimous = Array.from({ length: ROWS }, (_, row) =>
      memberVotes.every((v) => v[row] === memberVotes[0]![row]),
    );
    expect(exits.map((e) => e.row).sort((a, b) => a - b)).toEqual(unanimous.flatMap((all, row) => (all ? [row] : [])));
    // Some rows of each kind, or the test shows nothing.
    expect(exits.length).toBeGreaterThan(0);
    expect(exits.length).toBeLessThan(ROWS);
    for (const e of exits) {
      expect(e.ramp).toBe(0);
      expect(e.votes).toEqual(memberVotes.map((v) => v[e.row]));
      expect(e.agreement).toBe(1);
      expect(e.argmax).toBe(e.votes![0]);
      expect(result.exitRamp[e.row]).toBe(0);
    }
    // Release mode: every row reaches the backbone, whatever the tier answered.
    expect([...result.finalRows]).toEqual(Array.from({ length: ROWS }, (_, i) => i));
    expect(result.readings.map((r) => r.ramp)).toEqual([0]);
  });

  it('in drop mode, rows the tier answered skip the backbone unless drawn as probes, which carry both readings', async () => {
    const { result, exits } = await run(plan([{ id: 0, threshold: 1 }], 'drop', 0.25));
    const answered = new Set(exits.map((e) => e.row));
    const final = new Set(result.finalRows);
    const probes = [...result.probe].flatMap((p, row) => (p === 1 ? [row] : []));
    expect(probes.length).toBeGreaterThan(0);
    expect(probes.length).toBeLessThan(ROWS);
    const tierRows = new Set(result.readings.find((r) => r.ramp === 0)!.rows);
    for (let row = 0; row < ROWS; row++) {
      const probe = result.probe[row] === 1;
      // Every row meets the tier; the backbone sees those it passed on, and the probes.
      expect(tierRows.has(row)).toBe(true);
      expect(final.has(row)).toBe(!answered.has(row) || probe);
    }
    expect(probes.some((row) => answered.has(row))).toBe(true);
    expect([...answered].some((row) => !final.has(row))).toBe(true);
    expect(result.finalProbs).toHaveLength(result.finalRows.length * CLASSES);
  });

  it('answers the same with the members in separate sessions', async () => {
    const separate = await CascadeRunner.load(BUNDLED_DIR, manifest, [tierOf(FMNIST_MEMBERS)], 'separate', 1, {
      seed: 5,
    });
    try {
      const tierPlan = plan([{ id: 0, threshold: 1 }]);
      const merged = await run(tierPlan);
      const alone = await run(tierPlan, separate);
      expect(alone.exits.map((e) => [e.row, e.argmax, e.votes])).toEqual(
        merged.exits.map((e) => [e.row, e.argmax, e.votes]),
      );
    } finally {
      await separate.release();
    }
  });

  it('a plan without the tier runs the backbone only', async () => {
    const { result, exits } = await run(plan([]));
    expect(exits).toEqual([]);
    expect(result.readings).toEqual([]);
    expect([...result.exitRamp].every((e) => e === -1)).toBe(true);
    expect(result.finalRows).toHaveLength(ROWS);
  });

  it('numbers backbone ramp r as exit T + r, beside the tier', async () => {
    const ramp = 2;
    const { result, exits } = await run(
      plan([
        { id: 0, threshold: 1 },
        { id: T + ramp, threshold: 0.5 },
      ]),
    );
    expect(result.readings.map((r) => r.ramp)).toEqual([0, T + ramp]);
    const byRamp = exits.filter((e) => e.ramp === T + ramp);
    expect(byRamp.length).toBeGreaterThan(0);
    expect(new Set(exits.map((e) => e.ramp))).toEqual(new Set([0, T + ramp]));
    // A row the tier answered is not answered again by the ramp.
    const tierRows = new Set(exits.filter((e) => e.ramp === 0).map((e) => e.row));
    expect(byRamp.some((e) => tierRows.has(e.row))).toBe(false);
    for (const e of byRamp) {
      expect(e.votes).toBeUndefined();
      expect(result.exitRamp[e.row]).toBe(T + ramp);
    }
  });

  it('disables a tier whose member gives unreadable probabilities, and still answers every row', async () => {
    // A member with NaN in its bias: onnxruntime runs it, its probabilities are all NaN.
    const broken = await memberFile(
      'nan.onnx',
      arbitraryMember(4, { bias: new Float32Array(CLASSES).fill(Number.NaN) }),
    );
    const faulty = await CascadeRunner.load(
      BUNDLED_DIR,
      manifest,
      [tierOf([FMNIST_MEMBERS[0]!, broken, FMNIST_MEMBERS[2]!])],
      'merged',
      1,
      { seed: 5 },
    );
    try {
      const tierPlan = plan([{ id: 0, threshold: 1 }], 'drop', 0.1);
      const first = await run(tierPlan, faulty);
      expect(first.result.faults).toEqual([
        { kind: 'ramp-disabled', ramp: 0, reason: expect.stringMatching(/non-finite probability/) as unknown },
      ]);
      expect(first.exits).toEqual([]);
      expect(first.result.finalRows).toHaveLength(ROWS);
      // Once disabled, the tier no longer runs, and the fault is not reported again.
      const second = await run(tierPlan, faulty);
      expect(second.result.faults).toBeUndefined();
      expect(second.result.readings).toEqual([]);
      expect(second.result.finalRows).toHaveLength(ROWS);
    } finally {
      await faulty.release();
    }
  });
});
