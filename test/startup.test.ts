/**
 * A server that cannot start must exit non-zero with one line naming the cause, not linger with
 * its worker threads alive and nothing listening (a supervisor would see a live process that
 * serves nothing). Runs the real CLI (`bin/offramp.js`, built into dist/) as a child process.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../bin/offramp.js', import.meta.url));

/** Runs `offramp serve --config <file>` to its exit; resolves with the exit code and stderr. */
function serve(configPath: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'serve', '--config', configPath], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}

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
