/**
 * `offramp serve` as a child process: the real CLI (`bin/offramp.js`, which runs the build in
 * dist/; `npm test` builds it before vitest), so that signals, exit codes and the process's own
 * lifetime are what a supervisor would see.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/offramp.js', import.meta.url));

export interface ServeExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Runs `offramp serve --config <file>` to its exit; resolves with the exit code and stderr. */
export function serveToExit(configPath: string): Promise<ServeExit> {
  const child = spawnServe(configPath);
  return child.exited;
}

export interface ServeProcess {
  child: ChildProcess;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Resolves once stderr holds a line matching `pattern`, with its match; rejects if the process exits first. */
  line(pattern: RegExp): Promise<RegExpMatchArray>;
  /** The ports from the "KServe v2 HTTP on …, gRPC on …" line, once the server listens. */
  listening: Promise<{ httpPort: number; grpcPort: number }>;
  exited: Promise<ServeExit>;
}

export function spawnServe(configPath: string): ServeProcess {
  const child = spawn(process.execPath, [BIN, 'serve', '--config', configPath], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const waiters: { pattern: RegExp; resolve: (m: RegExpMatchArray) => void; reject: (e: Error) => void }[] = [];
  let ended: string | undefined;
  const check = () => {
    for (const w of [...waiters]) {
      const match = stderr.match(w.pattern);
      if (match) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(match);
      } else if (ended) {
        waiters.splice(waiters.indexOf(w), 1);
        w.reject(new Error(`offramp serve exited (${ended}) before logging ${String(w.pattern)}; stderr:\n${stderr}`));
      }
    }
  };
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
    check();
  });
  const exited = new Promise<ServeExit>((resolve, reject) => {
    child.on('error', reject);
    // 'close' comes after 'exit' and after stderr is drained, so the stderr given is complete.
    child.on('close', (code, signal) => {
      ended = signal ? `killed by ${signal}` : `code ${String(code)}`;
      check();
      resolve({ code, signal, stderr });
    });
  });
  const line = (pattern: RegExp) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      waiters.push({ pattern, resolve, reject });
      check();
    });
  const listening = line(/KServe v2 HTTP on [^\s]+:(\d+), gRPC on [^\s]+:(\d+);/).then((m) => ({
    httpPort: Number(m[1]),
    grpcPort: Number(m[2]),
  }));
  // Callers that never look at it must not see an unhandled rejection when the process fails to start.
  listening.catch(() => undefined);
  return { child, stderr: () => stderr, line, listening, exited };
}
