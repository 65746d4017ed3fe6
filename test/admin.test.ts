/**
 * The admin endpoints end to end: a real server on the bundled model, real HTTP. Pins change the
 * exit plan the next inference runs under; pause and resume switch the online tuner's hold on it.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServingConfig } from '../src/config/index.js';
import type { ExitsReport, TunerAdminReport } from '../src/data-plane/types.js';
import { startServer, type RunningServer } from '../src/server.js';
import { BUNDLED_DIR, testImages } from './helpers/bundled.js';

const TOKEN = 'test-admin-token-0123456789';
const RAMP_IDS = [0, 1, 2, 3, 4, 5, 6, 7];

let server: RunningServer;
let disabled: RunningServer;
let base: string;

function config(adminToken: string | null, models: string[][]) {
  return parseServingConfig(
    [
      `server: { http_port: 0, grpc_port: 0, host: 127.0.0.1, workers: 1, intra_op_threads: 1, admin_token: ${JSON.stringify(adminToken)} }`,
      'models:',
      ...models.flatMap((lines) => lines.map((line, i) => (i === 0 ? `  - ${line}` : `    ${line}`))),
    ].join('\n'),
    'admin.test.yaml',
  );
}

const model = (name: string, tuner: string): string[] => [
  `name: ${name}`,
  `path: ${JSON.stringify(BUNDLED_DIR)}`,
  `tuner: { kind: ${tuner} }`,
  'accuracy: { window: 250 }',
  'exits: { policy: confidence }',
  'batching: { max_batch_size: 8, max_queue_delay_ms: 2 }',
  'slo: { latency_ms: 60000 }',
];

interface Answer<T> {
  status: number;
  json: T;
  headers: Headers;
}

async function call<T = Record<string, unknown>>(
  method: string,
  path: string,
  options: { token?: string | null; body?: string; root?: string } = {},
): Promise<Answer<T>> {
  const headers: Record<string, string> = {};
  const token = options.token === undefined ? TOKEN : options.token;
  if (token !== null) headers['authorization'] = `Bearer ${token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${options.root ?? base}${path}`, {
    method,
    headers,
    ...(options.body !== undefined ? { body: options.body } : {}),
  });
  return { status: res.status, json: (await res.json()) as T, headers: res.headers };
}

const pin = (modelName: string, thresholds: Record<string, number | null>) =>
  call<TunerAdminReport>('PUT', `/v2/models/${modelName}/admin/thresholds`, { body: JSON.stringify({ thresholds }) });

async function inferOne(modelName: string): Promise<{ early: unknown; exitRamp: unknown }> {
  const image = await testImages(1, 3);
  const res = await fetch(`${base}/v2/models/${modelName}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      inputs: [
        { name: 'pixels', shape: [1, 1, 28, 28], datatype: 'FP32', data: Array.from(image.data as Float32Array) },
      ],
    }),
  });
  expect(res.status).toBe(200);
  const parameters = ((await res.json()) as { parameters: Record<string, unknown> }).parameters;
  return { early: parameters['early'], exitRamp: parameters['exit_ramp'] };
}

beforeAll(async () => {
  server = await startServer(config(TOKEN, [model('fmnist', 'guarded'), model('fixed', 'static')]), {
    version: 'test',
  });
  base = `http://127.0.0.1:${server.httpPort}`;
  disabled = await startServer(config(null, [model('fmnist', 'off')]), { version: 'test' });
});

afterAll(async () => {
  await server?.close();
  await disabled?.close();
});

describe('admin access', () => {
  it('answers OFFRAMP_ADMIN_DISABLED (403) when no admin token is configured, even to the right bearer', async () => {
    const res = await call('GET', '/v2/models/fmnist/admin/tuner', { root: `http://127.0.0.1:${disabled.httpPort}` });
    expect(res.status).toBe(403);
    expect(res.json).toMatchObject({ code: 'OFFRAMP_ADMIN_DISABLED' });
  });

  it('answers OFFRAMP_UNAUTHORIZED (401) to a missing, wrong or differently long token, before reading the body', async () => {
    for (const token of [null, 'wrong-token-of-the-same-len', 'short', `${TOKEN}x`]) {
      const res = await call('GET', '/v2/models/fmnist/admin/tuner', { token });
      expect(res.status, String(token)).toBe(401);
      expect(res.json).toMatchObject({ code: 'OFFRAMP_UNAUTHORIZED' });
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    }
    const garbled = await call('PUT', '/v2/models/fmnist/admin/thresholds', { token: 'nope', body: '{not json' });
    expect(garbled.status).toBe(401);
    // Nothing changed.
    expect((await call<TunerAdminReport>('GET', '/v2/models/fmnist/admin/tuner')).json.tuner.pinned).toEqual({});
  });

  it('answers the tuner state to the right token', async () => {
    const res = await call<TunerAdminReport>('GET', '/v2/models/fmnist/admin/tuner');
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({
      model: 'fmnist',
      version: '1',
      tuner: { kind: 'guarded', online: true, paused: false, pinned: {} },
    });
    expect(res.json.tuner.estimates).toMatchObject({
      retunes: expect.any(Number) as unknown,
      tightenings: 0,
      rampChanges: 0,
    });
  });
});

describe('pinned thresholds', () => {
  it("apply to the next inference and show in /exits; unpinning restores the tuner's thresholds", async () => {
    let res = await pin('fmnist', { '0': 0 });
    expect(res.status).toBe(200);
    expect(res.json.tuner.pinned).toEqual({ '0': 0 });
    expect(res.json.thresholds['0']).toBe(0);
    const exits = (await call<ExitsReport>('GET', '/v2/models/fmnist/exits', { token: null })).json;
    expect(exits.ramps.find((r) => r.id === 0)).toMatchObject({ active: true, threshold: 0 });
    expect(exits.tuner.pinned).toEqual({ '0': 0 });
    // Confidence ≥ 0 always holds: every row leaves at ramp 0.
    expect(await inferOne('fmnist')).toEqual({ early: true, exitRamp: 0 });

    res = await pin('fmnist', Object.fromEntries(RAMP_IDS.map((id) => [String(id), null])));
    expect(res.json.tuner.pinned).toEqual(Object.fromEntries(RAMP_IDS.map((id) => [String(id), null])));
    expect(await inferOne('fmnist')).toEqual({ early: false, exitRamp: -1 });

    res = await call<TunerAdminReport>('DELETE', '/v2/models/fmnist/admin/thresholds');
    expect(res.status).toBe(200);
    expect(res.json.tuner.pinned).toEqual({});
    // Without pins the plan is the tuner's again: its ramps, its thresholds.
    expect(res.json.thresholds).toEqual(res.json.tuner.proposed);
  });

  it('also work for a static model, whose pause answers OFFRAMP_TUNER_NOT_ONLINE (409)', async () => {
    const paused = await call('POST', '/v2/models/fixed/admin/tuner/pause');
    expect(paused.status).toBe(409);
    expect(paused.json).toMatchObject({ code: 'OFFRAMP_TUNER_NOT_ONLINE' });
    const res = await pin('fixed', { '0': 0 });
    expect(res.json.tuner).toMatchObject({
      kind: 'static',
      online: false,
      pinned: { '0': 0 },
      proposed: null,
      estimates: null,
    });
    expect(await inferOne('fixed')).toEqual({ early: true, exitRamp: 0 });
    await call('DELETE', '/v2/models/fixed/admin/thresholds');
  });

  it('refuse unknown ramps, thresholds out of range for the policy, non-numbers and malformed bodies with a coded 400', async () => {
    const bad: unknown[] = [
      { thresholds: { '99': 0.5 } },
      { thresholds: { '0': 1.5 } },
      { thresholds: { '0': -0.1 } },
      { thresholds: { '0': '0.9' } },
      { thresholds: { '0': true } },
      { thresholds: { zero: 0.9 } },
      { thresholds: { '01': 0.9 } },
      { thresholds: {} },
      { thresholds: [0.9] },
      { thresholds: { '0': 0.9 }, extra: 1 },
      [],
      'text',
    ];
    for (const body of bad) {
      const res = await call('PUT', '/v2/models/fmnist/admin/thresholds', { body: JSON.stringify(body) });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.json, JSON.stringify(body)).toMatchObject({ code: 'OFFRAMP_INVALID_ADMIN_REQUEST' });
    }
    const malformed = await call('PUT', '/v2/models/fmnist/admin/thresholds', { body: '{"thresholds": ' });
    expect(malformed.json).toMatchObject({ code: 'OFFRAMP_MALFORMED_JSON' });
    const unknownModel = await pin('nope', { '0': 0.5 });
    expect(unknownModel.status).toBe(404);
    expect(unknownModel.json).toMatchObject({ code: 'OFFRAMP_MODEL_NOT_FOUND' });
    // None of them pinned anything.
    expect((await call<TunerAdminReport>('GET', '/v2/models/fmnist/admin/tuner')).json.tuner.pinned).toEqual({});
  });
});

describe('pause and resume', () => {
  it('switch the online tuner between paused and running, visible in /exits and /metrics', async () => {
    let res = await call<TunerAdminReport>('POST', '/v2/models/fmnist/admin/tuner/pause');
    expect(res.status).toBe(200);
    expect(res.json.tuner.paused).toBe(true);
    expect((await call<ExitsReport>('GET', '/v2/models/fmnist/exits', { token: null })).json.tuner.paused).toBe(true);
    let metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain('offramp_tuner_paused{model="fmnist"} 1');

    res = await call<TunerAdminReport>('POST', '/v2/models/fmnist/admin/tuner/resume');
    expect(res.json.tuner.paused).toBe(false);
    metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain('offramp_tuner_paused{model="fmnist"} 0');
  });
});

describe('/metrics', () => {
  it('exports pins, heads, tuner counters and savings next to the thresholds', async () => {
    await pin('fmnist', { '2': 0.5 });
    try {
      const text = await (await fetch(`${base}/metrics`)).text();
      expect(text).toContain('offramp_ramp_pinned{model="fmnist",ramp="2"} 1');
      expect(text).toContain('offramp_ramp_pinned{model="fmnist",ramp="0"} 0');
      expect(text).toContain('offramp_ramp_threshold{model="fmnist",ramp="2"} 0.5');
      expect(text).toContain('offramp_ramp_head_active{model="fmnist",ramp="2"} 1');
      expect(text).toMatch(/^offramp_tuner_retunes_total\{model="fmnist"\} \d+$/m);
      expect(text).toMatch(/^offramp_tuner_tightenings_total\{model="fmnist"\} 0$/m);
      expect(text).toMatch(/^offramp_tuner_ramp_changes_total\{model="fmnist"\} 0$/m);
      expect(text).toMatch(/^offramp_estimated_latency_savings_ratio\{model="fmnist"\} /m);
      expect(text).toMatch(/^offramp_ramp_overhead_ratio\{model="fixed"\} /m);
      expect(text).toContain('# TYPE offramp_hindsight_latency_savings_ratio gauge');
      // A static model has no online tuner: no tuner series.
      expect(text).not.toContain('offramp_tuner_paused{model="fixed"}');
      expect(text).not.toContain('offramp_tuner_retunes_total{model="fixed"}');
      expect(text).not.toMatch(/\bNaN\b/);
    } finally {
      await call('DELETE', '/v2/models/fmnist/admin/thresholds');
    }
  });
});

/** The value of `offramp_admin_auth_failures_total{reason}` on a server's /metrics. */
async function authFailures(root: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${root}/metrics`)).text();
  const counts: Record<string, number> = {};
  for (const m of text.matchAll(/^offramp_admin_auth_failures_total\{reason="(\w+)"\} (\d+)$/gm))
    counts[m[1]!] = Number(m[2]);
  return counts;
}

describe('refused admin requests', () => {
  it('are counted in offramp_admin_auth_failures_total by reason: missing, wrong, disabled', async () => {
    const disabledRoot = `http://127.0.0.1:${disabled.httpPort}`;
    const before = await authFailures(base);
    const disabledBefore = await authFailures(disabledRoot);
    // Every reason is exported before its first failure.
    expect(Object.keys(before).sort()).toEqual(['disabled', 'missing', 'wrong']);
    await call('GET', '/v2/models/fmnist/admin/tuner', { token: null });
    await call('GET', '/v2/models/fmnist/admin/tuner', { token: 'wrong-token-of-the-same-len' });
    await call('PUT', '/v2/models/fmnist/admin/thresholds', { token: 'x', body: '{}' });
    await call('GET', '/v2/models/fmnist/admin/tuner'); // the right token: not a failure
    await call('GET', '/v2/models/fmnist/admin/tuner', { root: disabledRoot });
    const after = await authFailures(base);
    const disabledAfter = await authFailures(disabledRoot);
    expect({
      missing: after['missing']! - before['missing']!,
      wrong: after['wrong']! - before['wrong']!,
      disabled: after['disabled']! - before['disabled']!,
    }).toEqual({ missing: 1, wrong: 2, disabled: 0 });
    expect(disabledAfter['disabled']! - disabledBefore['disabled']!).toBe(1);
  });
});

describe('the access log', () => {
  it('never shows an admin token, right or wrong, while it logs the requests and the refusals', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'offramp-admin-log-'));
    const rightToken = 'the-right-token-0123456789';
    const wrongToken = 'a-wrong-token-9876543210';
    try {
      const configPath = join(dir, 'slo.yaml');
      await writeFile(
        configPath,
        [
          `server: { http_port: 0, grpc_port: 0, host: 127.0.0.1, workers: 1, intra_op_threads: 1, admin_token: ${rightToken} }`,
          'models:',
          ...model('fmnist', 'static').map((line, i) => (i === 0 ? `  - ${line}` : `    ${line}`)),
        ].join('\n'),
      );
      // `offramp serve --access-log`, as an operator runs it: fastify's logger writes to stdout.
      const mainModule = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          '--input-type=module',
          '-e',
          `import { main } from ${JSON.stringify(mainModule)}; process.exitCode = await main(process.argv.slice(1));`,
          'serve',
          '--config',
          configPath,
          '--access-log',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      try {
        const port = await new Promise<number>((resolve, reject) => {
          const look = () => {
            const m = /HTTP on 127\.0\.0\.1:(\d+)/.exec(output);
            if (m) resolve(Number(m[1]));
          };
          child.stdout.on('data', look);
          child.stderr.on('data', look);
          void exited.then(() => reject(new Error(`the server exited: ${output}`)));
        });
        const root = `http://127.0.0.1:${port}`;
        for (const token of [rightToken, wrongToken, null]) {
          await call('GET', '/v2/models/fmnist/admin/tuner', { root, token });
          await call('PUT', '/v2/models/fmnist/admin/thresholds', { root, token, body: '{"thresholds": {}}' });
        }
        await fetch(`${root}/v2/models/fmnist/admin/tuner`, { headers: { authorization: wrongToken } }); // no "Bearer"
      } finally {
        child.kill('SIGTERM');
        await exited;
      }
      // The log has the requests and the refusals…
      expect(output).toContain('/v2/models/fmnist/admin/tuner');
      expect(output.match(/admin request refused/g)?.length).toBe(5);
      // …and no token, nor a piece of one.
      for (const secret of [rightToken, wrongToken, rightToken.slice(0, 12), wrongToken.slice(-12)])
        expect(output, secret).not.toContain(secret);
      expect(output.toLowerCase()).not.toContain('bearer');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
