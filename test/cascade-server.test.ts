/**
 * A cascade served end to end: the bundled Fashion-MNIST members in front of the bundled backbone,
 * through the real server (HTTP and gRPC on real sockets, executor worker threads), its /exits
 * and /metrics; the guarded tuner choosing a tier's threshold from live traffic; and a start
 * that fails on a missing member (the real CLI).
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../src/server.js';
import { loadInferenceService } from '../src/grpc/proto.js';
import type { ExitsReport } from '../src/data-plane/types.js';
import { BUNDLED_DIR, FMNIST_MEMBERS, TEST_SERVER, bundledConfig, testImages } from './helpers/bundled.js';
import { postInfer, pixelsInput, type InferAnswer } from './helpers/infer.js';
import { serveToExit } from './helpers/serve-process.js';

const MEMBERS = `[${FMNIST_MEMBERS.map((p) => JSON.stringify(p)).join(', ')}]`;

/** `count` test images from `offset` as one request. */
async function infer(base: string, count: number, offset: number): Promise<InferAnswer> {
  return postInfer(base, 'fmnist', [pixelsInput(await testImages(count, offset))]);
}

async function exitsOf(base: string): Promise<ExitsReport> {
  return (await (await fetch(`${base}/v2/models/fmnist/exits`)).json()) as ExitsReport;
}

describe('a Fashion-MNIST cascade served at θ = 1 (tuner static)', () => {
  let server: RunningServer;
  let base: string;
  let client: grpc.Client;
  const ServiceClient = grpc.makeClientConstructor(loadInferenceService(), 'GRPCInferenceService');
  /** One single-row request per test image 0..ROWS−1, as answered. */
  const ROWS = 40;
  const answers: InferAnswer[] = [];

  beforeAll(async () => {
    const config = bundledConfig('cascade-server.test.yaml', [
      'tuner: { kind: static }',
      'batching: { max_batch_size: 8, max_queue_delay_ms: 5 }',
      `cascade: { tiers: [ { members: ${MEMBERS}, rule: vote, theta: 1 } ] }`,
    ]);
    server = await startServer(config, { version: 'test' });
    base = `http://127.0.0.1:${server.httpPort}`;
    client = new ServiceClient(`127.0.0.1:${server.grpcPort}`, grpc.credentials.createInsecure());
    for (let i = 0; i < ROWS; i++) answers.push(await infer(base, 1, i));
  });

  afterAll(async () => {
    client?.close();
    await server?.close();
  });

  it('answers with the tier that answered, the votes as labels and the agreement', () => {
    expect(answers.every((a) => a.status === 200)).toBe(true);
    const byTier = answers.filter((a) => a.parameters['tier'] === 0);
    const byModel = answers.filter((a) => a.parameters['tier'] === 1);
    // Test images both ways, or the test shows nothing.
    expect(byTier.length).toBeGreaterThan(0);
    expect(byModel.length).toBeGreaterThan(0);
    expect(byTier.length + byModel.length).toBe(ROWS);
    for (const a of answers) expect(a.parameters['tiers']).toBe(2);
    for (const a of byTier) {
      const label = a.outputs['label']![0] as string;
      expect(a.parameters['votes']).toBe([label, label, label].join(','));
      expect(a.parameters['agreement']).toBe(1);
      expect(a.parameters['early']).toBe(true);
      expect(a.outputs['exit_ramp']).toEqual([0]);
    }
    for (const a of byModel) {
      // The served model answered (its final layer, or its ramp r as exit 1 + r): no votes to show.
      expect(a.parameters['votes']).toBeUndefined();
      expect(a.parameters['agreement']).toBeUndefined();
      const exit = a.outputs['exit_ramp']![0] as number;
      expect(exit === -1 || exit >= 1).toBe(true);
    }
  });

  it('answers gRPC ModelInfer with the same parameters', async () => {
    // The first test image the tier answered over HTTP: the tier answers it over gRPC too.
    const row = answers.findIndex((a) => a.parameters['tier'] === 0);
    const image = await testImages(1, row);
    const reply = await new Promise<{ parameters: Record<string, Record<string, unknown>> }>((resolve, reject) =>
      (
        client as unknown as Record<string, (r: object, cb: (e: grpc.ServiceError | null, v?: unknown) => void) => void>
      )['ModelInfer']!.call(
        client,
        {
          model_name: 'fmnist',
          inputs: [{ name: 'pixels', datatype: 'FP32', shape: [1, 1, 28, 28] }],
          raw_input_contents: [Buffer.from((image.data as Float32Array).buffer)],
        },
        (err, res) => (err ? reject(err) : resolve(res as { parameters: Record<string, Record<string, unknown>> })),
      ),
    );
    const expected = answers[row]!.parameters;
    expect(reply.parameters['tier']).toMatchObject({ int64_param: '0' });
    expect(reply.parameters['tiers']).toMatchObject({ int64_param: '2' });
    expect(reply.parameters['votes']).toMatchObject({ string_param: expected['votes'] });
    // The gRPC converter sends a whole number as int64_param, a fraction (2/3) as double_param.
    const agreement = reply.parameters['agreement']!;
    expect(Number(agreement['int64_param'] ?? agreement['double_param'])).toBe(1);
  });

  it('shows the cascade and each exit kind in /exits', async () => {
    const exits = await exitsOf(base);
    expect(exits.cascade).toEqual({
      execution: 'merged',
      tiers: [{ exit: 0, members: FMNIST_MEMBERS, rule: 'vote', theta: 1, costMs: expect.any(Number) as unknown }],
    });
    expect(exits.cascade!.tiers[0]!.costMs).toBeGreaterThan(0);
    const [tier, ...ramps] = exits.ramps;
    expect(tier).toMatchObject({ id: 0, kind: 'tier', active: true, threshold: 1 });
    expect(ramps.length).toBeGreaterThan(0);
    ramps.forEach((r, i) => expect(r).toMatchObject({ id: 1 + i, kind: 'ramp' }));
  });

  it('counts rows per tier and decision in /metrics, which promtool accepts', async () => {
    const metrics = await (await fetch(`${base}/metrics`)).text();
    const count = (decision: string) =>
      Number(
        metrics.match(
          new RegExp(
            `^offramp_cascade_tier_rows_total\\{model="fmnist",tier="0",decision="${decision}"\\} (\\d+)$`,
            'm',
          ),
        )?.[1] ?? Number.NaN,
      );
    // Drop mode (the default): every row meets the tier once; a probe it answered counts as answered.
    const answered = answers.filter((a) => a.parameters['tier'] === 0).length;
    expect(count('answered')).toBeGreaterThanOrEqual(answered);
    expect(count('answered') + count('deferred')).toBeGreaterThanOrEqual(ROWS);
    // promtool comes from Debian's `prometheus` package (.ci/run installs it); missing, the test fails.
    const check = spawnSync('promtool', ['check', 'metrics'], { input: metrics, encoding: 'utf8' });
    if (check.error) throw new Error(`promtool not runnable (apt-get install prometheus): ${check.error.message}`);
    expect(check.stdout + check.stderr).toBe('');
    expect(check.status).toBe(0);
  });
});

describe('a Fashion-MNIST cascade with θ tuned by the guarded tuner', () => {
  let server: RunningServer;
  let base: string;

  beforeAll(async () => {
    // Release mode: every row is feedback. A loose budget and a short window, so the guard can
    // allow an exit after a few hundred rows; the backbone's ramps off, so only the tier is tuned.
    const config = bundledConfig('cascade-tuned.test.yaml', [
      'accuracy: { budget: 0.1, window: 100 }',
      'exits: { mode: release, max_ramps: 0 }',
      'tuner: { kind: guarded, start: never, interval_batches: 4 }',
      'batching: { max_batch_size: 16, max_queue_delay_ms: 5 }',
      `cascade: { tiers: [ { members: ${MEMBERS}, rule: vote, theta: tuned } ] }`,
    ]);
    server = await startServer(config, { version: 'test' });
    base = `http://127.0.0.1:${server.httpPort}`;
  });

  afterAll(async () => {
    await server?.close();
  });

  it("moves the tier's threshold off its start (never) once traffic shows the members agree with the model", async () => {
    const before = await exitsOf(base);
    expect(before.cascade!.tiers[0]!.theta).toBe('tuned');
    expect(before.ramps.filter((r) => r.active).map((r) => [r.id, r.kind, r.threshold])).toEqual([[0, 'tier', null]]);
    let threshold: number | null = null;
    // Rounds of 16-row requests until the tuner sets a threshold (a bound on rows, never on time).
    for (let offset = 0; offset < 3200 && threshold === null; offset += 16) {
      const answer = await infer(base, 16, offset);
      expect(answer.status).toBe(200);
      threshold = (await exitsOf(base)).ramps[0]!.threshold;
    }
    expect(threshold).not.toBeNull();
    expect(threshold).toBeGreaterThan(0);
    expect(threshold).toBeLessThanOrEqual(1);
    // The tier now answers rows: a further request shows tier 0 on some of them.
    const later = await infer(base, 16, 3200);
    expect(later.outputs['exit_ramp']!.some((e) => e === 0)).toBe(true);
  });
});

describe('offramp serve with a cascade member that does not exist', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'offramp-cascade-start-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('exits 1 with one line naming the missing file', async () => {
    const path = join(dir, 'slo.yaml');
    await writeFile(
      path,
      [
        `server: { ${TEST_SERVER} }`,
        'models:',
        '  - name: fmnist',
        `    path: ${JSON.stringify(BUNDLED_DIR)}`,
        '    tuner: { kind: static }',
        `    cascade: { tiers: [ { members: [${JSON.stringify(FMNIST_MEMBERS[0])}, members/missing.onnx] } ] }`,
      ].join('\n'),
    );
    const { code, stderr } = await serveToExit(path);
    expect(code).toBe(1);
    const lines = stderr.split('\n').filter((line) => line.trim() !== '');
    expect(lines).toEqual([
      `offramp: model fmnist: cannot load its cascade: cascade member ${join(dir, 'members/missing.onnx')} does not exist`,
    ]);
  });
});
