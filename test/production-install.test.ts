/**
 * The production install path, through the repository's own Dockerfile: its builder and runtime
 * stages are carried out in a clean temporary folder (test/helpers/dockerfile.ts; no container
 * engine runs here), and the image it makes is started and stopped.
 *
 * The runtime stage runs for real: its COPYs (honouring .dockerignore, dist/ from the builder's
 * folder), then `npm ci --omit=dev` next to that dist/, from npm's cache (CI's own `npm ci` warmed
 * it), so nothing is downloaded. So does the builder's COPYs and its build: `prepare`
 * (bin/prepare.js) compiles dist/ from the sources the builder copied. Of the builder's
 * `npm ci`, only the install of every dependency is not repeated: it links this checkout's
 * node_modules, installed by the same `npm ci` from the same lock. Repeating it would check npm,
 * not offramp, and would add a minute or more (~60 s on 2 idle cores, three on a busy machine)
 * to a test that must stay well under four; OFFRAMP_IMAGE_FULL_BUILD=1 repeats it all the same.
 *
 * Then the image's CMD starts as the image's USER with the image's ENV, its HEALTHCHECK command
 * waits for readiness, both bundled models answer a real request over HTTP, and the STOPSIGNAL
 * drains it to exit code 0. The runtime folder must hold no dev dependency, and nothing its
 * dist/ imports may be missing from it.
 *
 * bin/prepare.js's other cases (no build tools: check, or fail saying what to do) are run
 * directly, without an install.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmod, cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { BUNDLED_MODELS, loadServingConfig } from '../src/config/index.js';
import { emulateStage, readBuildFiles, type ImageConfig, type Stage } from './helpers/dockerfile.js';
import { testImages } from './helpers/bundled.js';
import { pixelsInput, postInfer } from './helpers/infer.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));

let dir: string;
let stages: Stage[];
let runtime: ImageConfig;
const images = new Map<string, ImageConfig>();
/** Seconds each stage took, for the log. */
const stageSeconds: Record<string, number> = {};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'offramp-image-'));
  // The image's USER runs in here too (mkdtemp makes it private to this user).
  await chmod(dir, 0o755);
  const build = await readBuildFiles(REPO);
  stages = build.stages;
  const built = new Map<string, string>();
  let last: ImageConfig | undefined;
  for (const stage of stages) {
    const started = performance.now();
    const root = join(dir, stage.name);
    last = await emulateStage(stage, {
      context: REPO,
      ignored: build.ignored,
      root,
      stages: built,
      installedDependencies: process.env.OFFRAMP_IMAGE_FULL_BUILD === '1' ? undefined : join(REPO, 'node_modules'),
    });
    images.set(stage.name, last);
    built.set(stage.name, root);
    stageSeconds[stage.name] = Math.round((performance.now() - started) / 100) / 10;
  }
  runtime = last!;
  console.log(`production install: stages built in ${JSON.stringify(stageSeconds)} s`);
}, 300_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the Dockerfile', () => {
  it('builds in a Debian node 20 builder and runs unprivileged, with health check, ports and stop signal as served', async () => {
    expect(stages.map((s) => s.name)).toEqual(['builder', 'runtime']);
    // Debian-based (glibc: onnxruntime-node's native library does not run on Alpine's musl), Node 20.
    for (const stage of stages) expect(stage.image).toMatch(/^node:20-bookworm(-slim)?$/);
    expect(runtime.user).toBe('node');
    expect(runtime.cmd).toEqual(['offramp', 'serve']);
    expect(runtime.stopSignal).toBe('SIGTERM');
    expect(runtime.healthcheck?.command[0]).toBe('node');
    expect(runtime.healthcheck?.command.join(' ')).toContain('/v2/health/ready');

    // The image's SLO file: every interface, the EXPOSEd ports, no models of its own (so the
    // bundled ones, which must be in the image where the package root's models/ is).
    const file = runtime.env.OFFRAMP_CONFIG!;
    expect(relative(runtime.root, file)).toBe('etc/offramp/slo.yaml');
    expect(parseDocument(await readFile(file, 'utf8')).has('models')).toBe(false);
    const config = await loadServingConfig(file, { env: {} });
    expect(config.server.host).toBe('0.0.0.0');
    expect(runtime.exposed).toEqual([config.server.httpPort, config.server.grpcPort]);
    for (const model of BUNDLED_MODELS)
      expect(existsSync(join(runtime.workdir, model.path, 'manifest.json')), model.path).toBe(true);
  });

  it("builds dist/ in the builder through prepare, and only checks it in the runtime's --omit=dev install", () => {
    expect(images.get('builder')!.runOutputs.join('')).toContain('tsc -p tsconfig.build.json');
    const runtimeInstall = runtime.runOutputs.join('');
    expect(runtimeInstall).toContain(
      'offramp: using the dist/ already built here (no build: the build tools are not installed',
    );
    expect(runtimeInstall).not.toContain('tsc -p');
  });

  it('installs no dev dependency in the runtime, and only this platform of onnxruntime-node', async () => {
    const lock = JSON.parse(await readFile(join(REPO, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean }>;
    };
    const devOnly = Object.entries(lock.packages)
      .filter(([path, entry]) => path !== '' && entry.dev === true)
      .map(([path]) => path);
    expect(devOnly).toEqual(expect.arrayContaining(['node_modules/typescript', 'node_modules/vitest']));
    expect(devOnly.filter((path) => existsSync(join(runtime.workdir, path)))).toEqual([]);
    for (const tool of ['typescript', 'vitest', 'esbuild', 'tsx', 'eslint'])
      expect(existsSync(join(runtime.workdir, 'node_modules', tool))).toBe(false);

    const binaries = join(runtime.workdir, 'node_modules/onnxruntime-node/bin');
    for (const napi of await readdir(binaries)) {
      expect(await readdir(join(binaries, napi))).toEqual(['linux']);
      expect(await readdir(join(binaries, napi, 'linux'))).toEqual([process.arch]);
    }
  });

  it('runtime dist/ imports only Node built-ins and production dependencies installed next to it', async () => {
    const pkg = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    const imports = new Map<string, string>();
    for (const file of await jsFiles(join(runtime.workdir, 'dist'))) {
      const text = await readFile(file, 'utf8');
      for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)(['"])([^'"\s]+)\1/g)) {
        const specifier = m[2]!;
        if (specifier.startsWith('.') || isBuiltin(specifier)) continue;
        imports.set(specifier, relative(runtime.workdir, file));
      }
    }
    // src/engine/spawn-worker.ts loads tsx only to start a worker from TypeScript sources (a
    // caller whose URL ends in .ts); the built package starts its .js workers directly.
    expect(imports.get('tsx/esm/api')).toBe('dist/src/engine/spawn-worker.js');
    imports.delete('tsx/esm/api');
    const packageOf = (s: string) => s.split('/', s.startsWith('@') ? 2 : 1).join('/');
    const notDependencies = [...imports].filter(([s]) => !(packageOf(s) in pkg.dependencies));
    expect(notDependencies).toEqual([]);
    const notInstalled = [...imports].filter(
      ([s]) => !existsSync(join(runtime.workdir, 'node_modules', packageOf(s), 'package.json')),
    );
    expect(notInstalled).toEqual([]);
    expect(imports.size).toBeGreaterThan(5);
  });

  it('serves the bundled models as its unprivileged user: healthy, answering, and drained to exit 0 by its stop signal', async () => {
    const [httpPort, grpcPort] = await freePorts(2);
    // As `docker run -e`: the ports the server and the health check follow.
    const env = { ...runtime.env, OFFRAMP_HTTP_PORT: String(httpPort), OFFRAMP_GRPC_PORT: String(grpcPort) };
    const asUser = runtime.uid === undefined ? {} : { uid: runtime.uid, gid: runtime.gid! };
    const healthcheck = runtime.healthcheck!;
    const check = () =>
      spawnSync(healthcheck.command[0]!, healthcheck.command.slice(1), {
        cwd: runtime.workdir,
        env,
        ...asUser,
        timeout: seconds(healthcheck.options.timeout ?? '30s') * 1000,
      }).status;
    // Nothing listens yet: the check must say so, or its later success would mean nothing.
    expect(check()).not.toBe(0);

    const [command, ...args] = runtime.cmd;
    const child = spawn(command!, args, { cwd: runtime.workdir, env, ...asUser, stdio: ['ignore', 'ignore', 'pipe'] });
    const server = watch(child);
    try {
      const startedAt = performance.now();
      const deadline = startedAt + seconds(healthcheck.options['start-period'] ?? '0s') * 1000;
      while (check() !== 0) {
        if (server.exit !== undefined || performance.now() > deadline)
          throw new Error(`not healthy (${server.exit ?? 'still running'}); stderr:\n${server.stderr}`);
        await new Promise((r) => setTimeout(r, 500));
      }
      console.log(`production install: healthy ${Math.round(performance.now() - startedAt)} ms after the start`);

      // The image's process is node itself (PID 1 in a container, so it gets the stop signal), as its user.
      const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
      expect(status).toMatch(/^Name:\s+node$/m);
      const uid = Number(/^Uid:\s+(\d+)/m.exec(status)![1]);
      expect(uid).toBe(runtime.uid ?? process.getuid!());
      expect(uid).not.toBe(0);

      // The bundled models are served from the image's package, not from anywhere else.
      const servedFrom = [...server.stderr.matchAll(/model (\S+) v\d+ from (\S+):/g)].map((m) => [m[1], m[2]]);
      expect(servedFrom).toEqual(BUNDLED_MODELS.map((model) => [model.name, join(runtime.workdir, model.path)]));

      const base = `http://127.0.0.1:${httpPort}`;
      const text = await postInfer(base, 'spam-bert', [
        { name: 'text', shape: [2], datatype: 'BYTES', data: [SPAM, HAM] },
      ]);
      expect(text.status).toBe(200);
      expect(text.outputs.label).toEqual(['spam', 'ham']);
      const image = await postInfer(base, 'fmnist-resnet', [pixelsInput(await testImages(4))]);
      expect(image.status).toBe(200);
      expect(image.outputs.class).toHaveLength(4);
      expect(image.outputs.label).toEqual(IMAGE_LABELS);

      child.kill(runtime.stopSignal as NodeJS.Signals);
      const exit = await server.exited;
      expect(exit, server.stderr).toBe('code 0');
      expect(server.stderr).toMatch(/SIGTERM: draining[\s\S]*offramp: stopped/);
    } finally {
      if (server.exit === undefined) child.kill('SIGKILL');
    }
  });
});

describe('bin/prepare.js without the build tools (npm ci --omit=dev)', () => {
  /** A package folder holding only package.json and the script, plus `files`. */
  async function packageWith(name: string, files: readonly string[]): Promise<string> {
    const root = join(dir, name);
    await mkdir(join(root, 'bin'), { recursive: true });
    await cp(join(REPO, 'package.json'), join(root, 'package.json'));
    await cp(join(REPO, 'bin/prepare.js'), join(root, 'bin/prepare.js'));
    for (const file of files) {
      await mkdir(join(root, file, '..'), { recursive: true });
      await writeFile(join(root, file), '');
    }
    return root;
  }
  const prepare = (root: string) =>
    spawnSync(process.execPath, [join(root, 'bin/prepare.js')], { cwd: root, encoding: 'utf8' });
  const BUILT = ['dist/src/cli/main.js', 'dist/dashboard/index.html', 'dist/dashboard/app.js'];

  it('fails the install when no built dist/ is in place, saying what to do', async () => {
    const result = prepare(await packageWith('no-dist', ['dist/src/cli/main.js']));
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('dev dependencies: typescript, tsx, esbuild');
    expect(result.stderr).toContain('missing dist/dashboard/index.html, dist/dashboard/app.js');
    expect(result.stderr).toContain('`npm ci --omit=dev`');
  });

  it('accepts a dist/ built elsewhere, and never rebuilds (so never deletes) it without the sources', async () => {
    expect(prepare(await packageWith('dist-only', BUILT)).status).toBe(0);
    // Build tools but no sources: `npm run build` would start by deleting dist/.
    const tools = ['typescript', 'tsx', 'esbuild'].map((t) => `node_modules/${t}/package.json`);
    const root = await packageWith('tools-no-sources', [...BUILT, ...tools]);
    const result = prepare(root);
    expect(result.status).toBe(0);
    expect(result.stderr).toContain('the sources are not here (tsconfig.build.json, src)');
    for (const file of BUILT) expect(existsSync(join(root, file))).toBe(true);
  });
});

const SPAM =
  'Congratulations! You have been selected to receive a FREE prize. Click here now to claim your cash reward!!!';
const HAM =
  'Hi Tom, the meeting about the quarterly budget moved to Thursday at 10. Could you bring the draft slides? Thanks, Anna';
/** The bundled image model's answers for the first four committed test images. */
const IMAGE_LABELS = ['Ankle boot', 'Pullover', 'Trouser', 'Trouser'];

/** `10s`, `1m30s`, `500ms` (Docker's durations) in seconds. */
function seconds(duration: string): number {
  let total = 0;
  for (const [, n, unit] of duration.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g))
    total += Number(n) * { ms: 0.001, s: 1, m: 60, h: 3600 }[unit as 'ms' | 's' | 'm' | 'h'];
  return total;
}

async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

/** The child's stderr so far, its exit once known (`code 0`, `signal SIGKILL`), and a promise of it. */
function watch(child: ChildProcess): { stderr: string; exit: string | undefined; exited: Promise<string> } {
  const state = { stderr: '', exit: undefined as string | undefined, exited: Promise.resolve('') };
  child.stderr!.on('data', (chunk: Buffer) => (state.stderr += chunk.toString('utf8')));
  state.exited = new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve((state.exit = signal ? `signal ${signal}` : `code ${String(code)}`)));
  });
  return state;
}

async function jsFiles(folder: string): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(folder, { withFileTypes: true, recursive: true }))
    if (entry.isFile() && entry.name.endsWith('.js')) files.push(join(entry.parentPath, entry.name));
  // dist/dashboard/ is the browser page's bundle: it imports nothing at run time.
  return files.filter((f) => !relative(folder, f).startsWith('dashboard/'));
}
