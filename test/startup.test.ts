/**
 * A server that cannot start must exit non-zero with one line naming the cause, not linger with
 * its worker threads alive and nothing listening (a supervisor would see a live process that
 * serves nothing), nor print a stack trace for a mistake in its input. Runs the real CLI
 * (`bin/offramp.js`, built into dist/) as a child process.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUNDLED_DIR } from './helpers/bundled.js';
import { serveToExit as serve } from './helpers/serve-process.js';

describe('offramp serve on a port that is already taken', () => {
  let blocker: Server;
  let busyPort: number;
  let dir: string;

  beforeAll(async () => {
    blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    busyPort = (blocker.address() as AddressInfo).port;
    dir = await mkdtemp(join(tmpdir(), 'offramp-startup-'));
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
    await rm(dir, { recursive: true, force: true });
  });

  it('exits 1 naming the HTTP address in use', async () => {
    const path = join(dir, 'http-busy.yaml');
    await writeFile(path, `server: { http_port: ${busyPort}, grpc_port: 0, host: 127.0.0.1 }\n`);
    const { code, stderr } = await serve(path);
    expect(code).toBe(1);
    expect(stderr).toContain(`offramp: cannot listen for HTTP on 127.0.0.1:${busyPort}: address already in use`);
  });

  it('exits 1 naming the gRPC address in use, after HTTP was already listening', async () => {
    const path = join(dir, 'grpc-busy.yaml');
    await writeFile(path, `server: { http_port: 0, grpc_port: ${busyPort}, host: 127.0.0.1 }\n`);
    const { code, stderr } = await serve(path);
    expect(code).toBe(1);
    expect(stderr).toContain(`offramp: cannot listen for gRPC on 127.0.0.1:${busyPort}: address already in use`);
  });
});

/** stderr's lines, for "exactly one line naming the cause" (a stack trace would add lines). */
const linesOf = (stderr: string) => stderr.split('\n').filter((line) => line.trim() !== '');

describe('offramp serve with a model or config it cannot use', () => {
  let dir: string;
  const SERVER = 'server: { http_port: 0, grpc_port: 0, host: 127.0.0.1, workers: 1 }';

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'offramp-startup-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Writes a config serving `models` (path per model name) and runs serve on it. */
  async function serveModels(name: string, models: Record<string, string>) {
    const path = join(dir, name);
    const lines = [SERVER, 'models:'];
    for (const [model, modelPath] of Object.entries(models))
      lines.push(`  - name: ${model}`, `    path: ${JSON.stringify(modelPath)}`, '    tuner: { kind: guarded }');
    await writeFile(path, lines.join('\n'));
    return serve(path);
  }

  async function serveConfigText(name: string, text: string) {
    const path = join(dir, name);
    await writeFile(path, text);
    return { path, ...(await serve(path)) };
  }

  it('a model directory that does not exist', async () => {
    const missing = join(dir, 'no-such-model');
    const { code, stderr } = await serveModels('missing.yaml', { m: missing });
    expect(code).toBe(1);
    expect(linesOf(stderr)).toEqual([
      `offramp: ${missing} does not exist: expected a prepared model directory (made by \`offramp prepare\`)`,
    ]);
  });

  it('a model path that is a file, not a directory', async () => {
    const file = join(dir, 'a-file');
    await writeFile(file, 'not a model');
    const { code, stderr } = await serveModels('file.yaml', { m: file });
    expect(code).toBe(1);
    expect(linesOf(stderr)).toEqual([
      `offramp: ${file} is not a directory: expected a prepared model directory (made by \`offramp prepare\`)`,
    ]);
  });

  it('a model directory without a manifest', async () => {
    const empty = join(dir, 'empty-model');
    await mkdir(empty);
    const { code, stderr } = await serveModels('empty.yaml', { m: empty });
    expect(code).toBe(1);
    expect(linesOf(stderr)).toEqual([
      `offramp: ${empty} holds no manifest.json: not a prepared model directory (made by \`offramp prepare\`)`,
    ]);
  });

  it('a corrupt manifest, after another model was loaded (its threads must not keep the process alive)', async () => {
    const corrupt = join(dir, 'corrupt-model');
    await mkdir(corrupt);
    await writeFile(join(corrupt, 'manifest.json'), '{"format": "offramp.prepared/1",');
    const { code, stderr } = await serveModels('corrupt.yaml', { good: BUNDLED_DIR, bad: corrupt });
    expect(code).toBe(1);
    const lines = linesOf(stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^offramp: ${join(corrupt, 'manifest.json')} is not valid JSON \\(.+\\)$`));
  });

  it('malformed YAML', async () => {
    const { path, code, stderr } = await serveConfigText('bad.yaml', 'server: { http_port: 0\n  bad: [\n');
    expect(code).toBe(1);
    expect(linesOf(stderr)).toEqual([
      `offramp: ${path}:1:22: malformed YAML: Implicit keys need to be on a single line`,
    ]);
  });

  it('an unknown key', async () => {
    const { path, code, stderr } = await serveConfigText('unknown.yaml', 'server: { http_port: 0, htpp_port: 1 }\n');
    expect(code).toBe(1);
    const lines = linesOf(stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(`^offramp: ${path}:1: server\\.htpp_port: unknown key; allowed keys: http_port, `),
    );
  });

  it('a value of the wrong type', async () => {
    const { path, code, stderr } = await serveConfigText('type.yaml', 'server: { http_port: eighty }\n');
    expect(code).toBe(1);
    expect(linesOf(stderr)).toEqual([`offramp: ${path}:1: server.http_port: "eighty" is not an integer in 0..65535`]);
  });

  it('a config file that does not exist', async () => {
    const missing = join(dir, 'no-such-config.yaml');
    const { code, stderr } = await serve(missing);
    expect(code).toBe(1);
    expect(linesOf(stderr)).toEqual([`offramp: ${missing}: cannot read the config file (ENOENT)`]);
  });
});
