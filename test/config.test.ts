import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_CONFIG_SOURCE,
  defaultServingConfig,
  loadServingConfig,
  packageRoot,
  parseServingConfig,
  renderSloConfigJsonSchema,
  resolveServingConfig,
  watchServingConfig,
  type ConfigProblem,
  type ServingConfig,
} from '../src/config/index.js';
import { OfframpError } from '../src/errors.js';

const noEnv = {};
const MINIMAL = 'models:\n  - name: a\n    path: m/a\n';

/** The OFFRAMP_CONFIG_INVALID error `parseServingConfig` throws for this text. */
function problemsOf(text: string, env: Record<string, string> = {}): OfframpError {
  try {
    parseServingConfig(text, 'slo.yaml', { env, baseDir: '/srv' });
  } catch (err) {
    expect(OfframpError.is(err, 'OFFRAMP_CONFIG_INVALID')).toBe(true);
    return err as OfframpError;
  }
  throw new Error('expected the config to be rejected');
}

function withModel(fields: string): string {
  return `models:\n  - name: a\n    path: m/a\n${fields}`;
}

describe('parseServingConfig', () => {
  it('fills every default in, converts to camelCase and resolves paths against the file folder', () => {
    const config = parseServingConfig(MINIMAL, '/etc/offramp/slo.yaml', { env: noEnv });
    expect(config.source).toBe('/etc/offramp/slo.yaml');
    expect(config.server).toEqual({
      httpPort: 8080,
      grpcPort: 8081,
      host: '0.0.0.0',
      maxBodyBytes: 8388608,
      workers: 2,
      intraOpThreads: 1,
      adminToken: null,
      drainTimeoutMs: 30000,
      workerTimeoutMs: 30000,
      faultInjection: false,
      stateDir: null,
      dashboard: {
        enabled: true,
        bufferSeconds: 900,
        maxViewers: 16,
        resultsDir: join(packageRoot(), 'bench', 'results'),
      },
    });
    expect(config.models).toEqual([
      {
        name: 'a',
        path: '/etc/offramp/m/a',
        version: '1',
        slo: { latencyMs: 50, percentile: 95 },
        accuracy: { budget: 0.01, confidence: 0.95, window: 1000 },
        exits: {
          policy: 'confidence',
          mode: 'drop',
          maxRamps: 3,
          rampBudget: 0.1,
          patience: 2,
          dropFeedbackFraction: 0.1,
          learningFeedbackFraction: 0.5,
          thresholds: null,
        },
        tuner: { kind: 'guarded', intervalBatches: 30, start: 'calibrated' },
        batching: {
          maxBatchSize: 16,
          delay: 'work-conserving',
          maxQueueDelayMs: 4,
          maxQueueSize: 256,
          preferredBatchSizes: [],
        },
        cascade: null,
      },
    ]);
  });

  it('keeps values that are set, and static thresholds keyed by ramp id', () => {
    const config = parseServingConfig(
      withModel(
        '    exits: { policy: margin, thresholds: { 2: 0.5, "5": 0.25 } }\n    batching: { max_batch_size: 32, preferred_batch_sizes: [8, 32] }\n',
      ),
      'slo.yaml',
      { env: noEnv, baseDir: '/srv' },
    );
    const model = config.models[0]!;
    expect(model.exits.policy).toBe('margin');
    expect(model.exits.thresholds).toEqual({ 2: 0.5, 5: 0.25 });
    expect(model.exits.thresholds?.[2]).toBe(0.5);
    expect(model.batching.maxBatchSize).toBe(32);
    expect(model.batching.preferredBatchSizes).toEqual([8, 32]);
    expect(model.path).toBe('/srv/m/a');
  });

  it('reads server.state_dir: a relative path resolves against the file folder, an absolute one stays', () => {
    const read = (dir: string) =>
      parseServingConfig(`server:\n  state_dir: ${dir}\n${MINIMAL}`, '/etc/offramp/slo.yaml', { env: noEnv }).server
        .stateDir;
    expect(read('state')).toBe('/etc/offramp/state');
    expect(read('/var/lib/offramp')).toBe('/var/lib/offramp');
    expect(read('null')).toBeNull();
    expect(problemsOf(`server:\n  state_dir: ""\n${MINIMAL}`).message).toBe(
      'slo.yaml:2: server.state_dir: "" is not a folder path, or null',
    );
  });

  it('reads the dashboard section: a relative results_dir resolves against the file folder', () => {
    const config = parseServingConfig(
      `server:\n  dashboard: { enabled: false, buffer_seconds: 60, max_viewers: 2, results_dir: runs }\n${MINIMAL}`,
      '/etc/offramp/slo.yaml',
      { env: noEnv },
    );
    expect(config.server.dashboard).toEqual({
      enabled: false,
      bufferSeconds: 60,
      maxViewers: 2,
      resultsDir: '/etc/offramp/runs',
    });
    expect(problemsOf(`server:\n  dashboard: { buffer_seconds: 0, viewers: 3 }\n${MINIMAL}`).message).toBe(
      [
        'slo.yaml:2: server.dashboard.buffer_seconds: 0 is out of range (1..86400)',
        'slo.yaml:2: server.dashboard.viewers: unknown key; allowed keys: enabled, buffer_seconds, max_viewers, results_dir',
      ].join('\n'),
    );
  });

  it('serves the bundled models when the file leaves models out (and for an empty file)', () => {
    for (const text of ['', 'server: { http_port: 9000 }\n']) {
      const config = parseServingConfig(text, '/etc/slo.yaml', { env: noEnv });
      expect(config.models.map((m) => [m.name, m.path])).toEqual([
        ['fmnist-resnet', join(packageRoot(), 'models/fmnist-resnet')],
        ['spam-bert', join(packageRoot(), 'models/spam-bert')],
      ]);
    }
  });

  it('parses the commented example, which shows every default', async () => {
    const path = join(packageRoot(), 'src/config/slo.example.yaml');
    const example = await loadServingConfig(path, { env: noEnv });
    const minimal = parseServingConfig(
      [
        'models:',
        '  - { name: fmnist-resnet, path: ../../models/fmnist-resnet }',
        '  - { name: spam-bert, path: ../../models/spam-bert, slo: { latency_ms: 250 } }',
      ].join('\n'),
      path,
      { env: noEnv },
    );
    expect(example).toEqual(minimal);
    expect(example.models[0]!.path).toBe(join(packageRoot(), 'models/fmnist-resnet'));
  });

  it('returns a deeply frozen config: mutation throws', () => {
    const config = parseServingConfig(withModel('    batching: { preferred_batch_sizes: [4] }\n'), 'slo.yaml', {
      env: noEnv,
    });
    const model = config.models[0]!;
    expect(() => {
      (config.server as { httpPort: number }).httpPort = 1;
    }).toThrow(TypeError);
    expect(() => {
      (model.batching as { maxBatchSize: number }).maxBatchSize = 1;
    }).toThrow(TypeError);
    expect(() => {
      (config.models as ServingConfig['models'][number][]).push(model);
    }).toThrow(TypeError);
    expect(() => {
      (model.batching.preferredBatchSizes as number[])[0] = 2;
    }).toThrow(TypeError);
    expect(Object.isFrozen(defaultServingConfig(noEnv).models[0]!.exits)).toBe(true);
  });
});

describe('config errors name the file, the field and the value', () => {
  it('reports an out-of-range value with its line and the allowed range', () => {
    const err = problemsOf(withModel('    batching:\n      max_batch_size: 0\n'));
    expect(err.code).toBe('OFFRAMP_CONFIG_INVALID');
    expect(err.message).toBe('slo.yaml:5: models[0].batching.max_batch_size: 0 is out of range (1..1024)');
    expect(problemsOf(withModel('    accuracy: { budget: 0.6 }\n')).message).toBe(
      'slo.yaml:4: models[0].accuracy.budget: 0.6 is out of range (0, 0.5]',
    );
    expect(problemsOf('server: { http_port: 70000 }').message).toBe(
      'slo.yaml:1: server.http_port: 70000 is out of range (0..65535)',
    );
  });

  it('reports a value of the wrong type', () => {
    expect(problemsOf(withModel('    batching: { max_queue_size: lots }\n')).message).toBe(
      'slo.yaml:4: models[0].batching.max_queue_size: "lots" is not an integer in 1..1000000',
    );
    expect(problemsOf(withModel('    batching: { delay: soon }\n')).message).toBe(
      'slo.yaml:4: models[0].batching.delay: "soon" is not one of work-conserving, fixed',
    );
    expect(problemsOf(withModel('    batching: { max_batch_size: 2.5 }\n')).message).toBe(
      'slo.yaml:4: models[0].batching.max_batch_size: 2.5 is not an integer (1..1024)',
    );
    expect(problemsOf(withModel('    slo: [50]\n')).message).toBe('slo.yaml:4: models[0].slo: a list is not a mapping');
    expect(problemsOf(withModel('    version: 1\n')).message).toMatch(
      /^slo\.yaml:4: models\[0\]\.version: 1 is not a URL-safe version/,
    );
  });

  it('reports an unknown key (a typo) with the keys allowed there', () => {
    expect(problemsOf(withModel('    batching: { max_batch: 8 }\n')).message).toBe(
      'slo.yaml:4: models[0].batching.max_batch: unknown key; allowed keys: max_batch_size, delay, max_queue_delay_ms, max_queue_size, preferred_batch_sizes',
    );
    expect(problemsOf('servr: {}\n').message).toBe('slo.yaml:1: servr: unknown key; allowed keys: server, models');
  });

  it('reports a value outside an enumeration with the allowed values', () => {
    expect(problemsOf(withModel('    exits: { policy: fast }\n')).message).toBe(
      'slo.yaml:4: models[0].exits.policy: "fast" is not one of confidence, entropy, margin, patience',
    );
  });

  it('reports duplicate and non-URL-safe model names, and missing required fields', () => {
    expect(problemsOf('models:\n  - { name: a, path: x }\n  - { name: a, path: y }\n').message).toBe(
      'slo.yaml:3: models[1].name: "a" is already the name of models[0]; model names must be unique',
    );
    expect(problemsOf('models:\n  - { name: my model, path: x }\n').message).toMatch(
      /^slo\.yaml:2: models\[0\]\.name: "my model" is not a URL-safe model name/,
    );
    expect(problemsOf('models:\n  - name: a\n').message).toBe(
      'slo.yaml:2: models[0].path: is required: a path to a prepared model directory',
    );
    expect(problemsOf('models: []\n').message).toMatch(/^slo\.yaml:1: models: is empty/);
  });

  it('reports malformed YAML with its line and column', () => {
    expect(problemsOf('server:\n  http_port: 1\n  host: [a, b\n').message).toMatch(
      /^slo\.yaml:\d+:\d+: malformed YAML: /,
    );
    expect(problemsOf('server:\n  http_port: 1\n  http_port: 2\n').message).toBe(
      'slo.yaml:3:3: malformed YAML: Map keys must be unique',
    );
  });

  it('reports cross-field problems', () => {
    expect(problemsOf(withModel('    batching: { max_batch_size: 8, preferred_batch_sizes: [4, 16] }\n')).message).toBe(
      'slo.yaml:4: models[0].batching.preferred_batch_sizes[1]: 16 is larger than batching.max_batch_size (8)',
    );
    expect(problemsOf('server: { http_port: 9000, grpc_port: 9000 }\n').message).toBe(
      'slo.yaml:1: server.grpc_port: 9000 is also server.http_port; the two endpoints need different ports',
    );
    expect(problemsOf(withModel('    exits: { policy: entropy, thresholds: { 1: 0.5 } }\n')).message).toMatch(
      /models\[0\]\.exits\.thresholds\["1"\]: 0\.5 is out of range for the entropy policy/,
    );
    expect(problemsOf(withModel('    exits: { thresholds: { first: 0.5 } }\n')).message).toMatch(
      /models\[0\]\.exits\.thresholds\.first: "first" is not a ramp id/,
    );
  });

  it('lists every problem, not just the first', () => {
    const err = problemsOf(
      'server:\n  http_port: -1\n  workers: 0\nmodels:\n  - name: a\n    path: x\n    tuner: { kind: magic }\n',
    );
    expect(err.message.split('\n')).toEqual([
      'slo.yaml:2: server.http_port: -1 is out of range (0..65535)',
      'slo.yaml:3: server.workers: 0 is out of range (1..64)',
      'slo.yaml:7: models[0].tuner.kind: "magic" is not one of guarded, apparate, static, off',
    ]);
    const issues = (err.details as { issues: ConfigProblem[] }).issues;
    expect(issues.map((p) => p.path)).toEqual(['server.http_port', 'server.workers', 'models[0].tuner.kind']);
  });

  it('never echoes the admin token', () => {
    const message = problemsOf('server: { admin_token: s3cret }\n').message;
    expect(message).toBe('slo.yaml:1: server.admin_token: a token of 6 characters is too short (16..1024 characters)');
    expect(message).not.toContain('s3cret');
  });

  it('names the file when it cannot be read', async () => {
    const missing = join(tmpdir(), 'offramp-no-such-dir', 'slo.yaml');
    await expect(loadServingConfig(missing, { env: noEnv })).rejects.toThrow(
      `${missing}: cannot read the config file (ENOENT)`,
    );
  });
});

describe('environment overrides', () => {
  it('override ports and the admin token', () => {
    const token = 'x'.repeat(20);
    const config = parseServingConfig(MINIMAL, 'slo.yaml', {
      env: { OFFRAMP_HTTP_PORT: '9000', OFFRAMP_GRPC_PORT: '9001', OFFRAMP_ADMIN_TOKEN: token },
    });
    expect(config.server).toMatchObject({ httpPort: 9000, grpcPort: 9001, adminToken: token });
    expect(defaultServingConfig({ OFFRAMP_HTTP_PORT: '7000', OFFRAMP_GRPC_PORT: '' }).server).toMatchObject({
      httpPort: 7000,
      grpcPort: 8081,
    });
  });

  it('are validated against the same bounds, and problems name the variable', () => {
    expect(problemsOf(MINIMAL, { OFFRAMP_HTTP_PORT: 'http' }).message).toBe(
      'environment: OFFRAMP_HTTP_PORT: "http" is not an integer in 0..65535',
    );
    expect(problemsOf(MINIMAL, { OFFRAMP_GRPC_PORT: '8080' }).message).toBe(
      'environment: OFFRAMP_GRPC_PORT: 8080 is also server.http_port; the two endpoints need different ports',
    );
  });

  it('OFFRAMP_CONFIG names the file when no path is given', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'offramp-config-'));
    try {
      const path = join(dir, 'slo.yaml');
      await writeFile(path, MINIMAL);
      const fromEnv = await resolveServingConfig({ env: { OFFRAMP_CONFIG: path } });
      expect(fromEnv.source).toBe(path);
      expect(fromEnv.models[0]!.path).toBe(join(dir, 'm/a'));
      expect((await resolveServingConfig({ env: {} })).source).toBe(DEFAULT_CONFIG_SOURCE);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('JSON Schema', () => {
  it('slo-config.schema.json is what the zod schema generates (run `npm run schema` after a change)', async () => {
    const committed = await readFile(join(packageRoot(), 'src/config/slo-config.schema.json'), 'utf8');
    expect(committed).toBe(renderSloConfigJsonSchema());
  });

  it('documents every field with a description and a default', () => {
    const schema = JSON.parse(renderSloConfigJsonSchema()) as JsonSchemaNode;
    const undocumented: string[] = [];
    const visit = (node: JsonSchemaNode, path: string, required: readonly string[]) => {
      for (const [key, child] of Object.entries(node.properties ?? {})) {
        const field = `${path}${key}`;
        if (!child.description) undocumented.push(`${field} (description)`);
        if (!('default' in child) && !required.includes(key) && key !== 'models')
          undocumented.push(`${field} (default)`);
        visit(child, `${field}.`, child.required ?? []);
        if (child.items) visit(child.items, `${field}[].`, child.items.required ?? []);
      }
    };
    visit(schema, '', schema.required ?? []);
    expect(undocumented).toEqual([]);
  });
});

interface JsonSchemaNode {
  description?: string;
  default?: unknown;
  properties?: Record<string, JsonSchemaNode>;
  items?: JsonSchemaNode;
  required?: string[];
}

describe('watchServingConfig', () => {
  let dir: string;
  let path: string;
  const stops: (() => void)[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'offramp-watch-'));
    path = join(dir, 'slo.yaml');
    await writeFile(path, MINIMAL);
  });

  afterEach(async () => {
    for (const stop of stops.splice(0)) stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** Records calls; `next()` resolves with the next one (waits up to 10 s). */
  function recorder<T>() {
    const seen: T[] = [];
    const waiters: ((v: T) => void)[] = [];
    let taken = 0;
    return {
      seen,
      call: (v: T) => {
        seen.push(v);
        waiters.shift()?.(v);
      },
      next: () =>
        new Promise<T>((resolve, reject) => {
          if (seen.length > taken) return resolve(seen[taken++]!);
          const timer = setTimeout(() => reject(new Error('no callback within 10 s')), 10_000);
          waiters.push((v) => {
            clearTimeout(timer);
            taken++;
            resolve(v);
          });
        }),
    };
  }

  it('calls onChange with the new config when the file changes, and onError (keeping the old one) when it is invalid', async () => {
    const changes = recorder<ServingConfig>();
    const errors = recorder<OfframpError>();
    const current = await loadServingConfig(path, { env: noEnv });
    stops.push(
      watchServingConfig(path, changes.call, errors.call, { current, env: noEnv, debounceMs: 20, sighup: false }),
    );

    await writeFile(path, `server: { http_port: 9100 }\n${MINIMAL}`);
    expect((await changes.next()).server.httpPort).toBe(9100);

    await writeFile(path, `server: { http_port: nope }\n${MINIMAL}`);
    const error = await errors.next();
    expect(error.code).toBe('OFFRAMP_CONFIG_INVALID');
    expect(error.message).toBe(`${path}:1: server.http_port: "nope" is not an integer in 0..65535`);
    expect(changes.seen).toHaveLength(1);

    await writeFile(path, `server: { http_port: 9200 }\n${MINIMAL}`);
    expect((await changes.next()).server.httpPort).toBe(9200);
    expect(errors.seen).toHaveLength(1);
  });

  it('reloads on SIGHUP', async () => {
    const changes = recorder<ServingConfig>();
    const errors = recorder<OfframpError>();
    stops.push(watchServingConfig(path, changes.call, errors.call, { env: noEnv, watchFile: false }));
    await writeFile(path, `server: { grpc_port: 9300 }\n${MINIMAL}`);
    process.kill(process.pid, 'SIGHUP');
    expect((await changes.next()).server.grpcPort).toBe(9300);
    expect(errors.seen).toEqual([]);
  });

  it('calls nothing after stop', async () => {
    const calls: unknown[] = [];
    const stop = watchServingConfig(
      path,
      (c) => calls.push(c),
      (e) => calls.push(e),
      { env: noEnv, debounceMs: 1, sighup: false },
    );
    stop();
    await writeFile(path, `server: { http_port: 9400 }\n${MINIMAL}`);
    await new Promise((r) => setTimeout(r, 100));
    expect(calls).toEqual([]);
  });
});
