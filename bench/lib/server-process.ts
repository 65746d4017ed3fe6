/**
 * The real server, as a user runs it: `node bin/offramp.js serve --config FILE` in a child
 * process of its own (fresh per policy, so no state leaks between policies), on free ports,
 * ready when GET /v2/health/ready says 200, stopped with SIGTERM (a graceful drain).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { cpus } from 'node:os';

const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;

/** Servers still running, killed if the bench dies so that no stray server keeps its port. */
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** A port nothing listens on now: bind port 0, read what the OS chose, release it. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise((r) => server.close(r));
  return port;
}

/** Clock ticks per second of /proc/<pid>/stat's CPU times (USER_HZ; 100 on Linux as a rule). */
let clockTicks: number | undefined;
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    const told = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    clockTicks = told > 0 ? told : 100;
  }
  return clockTicks;
}

/**
 * User + system CPU seconds a process has spent, every thread included (the executor's workers
 * are threads of the server process), from /proc/<pid>/stat; null where there is no /proc. Read
 * by the bench from outside, so its own scrapes of the server are not in the figure.
 */
export async function processCpuSeconds(pid: number): Promise<number | null> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (stat === null) return null;
  // Fields after the command name (in parentheses, which may hold spaces): state is field 3,
  // utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return Number.isFinite(ticks) ? ticks / ticksPerSecond() : null;
}

/**
 * CPU seconds the whole machine has spent busy so far, every core summed (idle time left out;
 * node's os.cpus()). Beside processCpuSeconds it says how much went to processes not measured
 * one by one.
 */
export function machineCpuSeconds(): number {
  return cpus().reduce((sum, { times }) => sum + (times.user + times.nice + times.sys + times.irq) / 1000, 0);
}

export interface ServerProcess {
  /** http://127.0.0.1:PORT */
  baseUrl: string;
  httpPort: number;
  grpcPort: number;
  logPath: string;
  pid: number;
  /** The server's CPU seconds so far (processCpuSeconds); null where there is no /proc. */
  cpuSeconds(): Promise<number | null>;
  /** Resolves with the exit code (null: killed by a signal) whenever the process ends. */
  exited: Promise<number | null>;
  /** The exit code once the process has ended (-1 when a signal ended it), null while it runs. */
  exitCodeNow(): number | null;
  /** Sends a signal without waiting (the chaos suite's SIGTERM-under-load case). */
  signal(name: NodeJS.Signals): void;
  getJson(path: string): Promise<unknown>;
  getText(path: string): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Starts `offramp serve` and resolves once it is ready. `ports`: listen there (a replica restarted
 * in place, behind a balancer that knows its address); by default two free ports.
 */
export async function startServerProcess(
  configPath: string,
  logPath: string,
  ports?: { http: number; grpc: number },
): Promise<ServerProcess> {
  const httpPort = ports?.http ?? (await freePort());
  let grpcPort = ports?.grpc ?? (await freePort());
  while (!ports && grpcPort === httpPort) grpcPort = await freePort();
  // Appended to: a replica restarted in place keeps one log across its lives.
  const log = createWriteStream(logPath, { flags: 'a' });
  const child = spawn(process.execPath, ['bin/offramp.js', 'serve', '--config', configPath], {
    env: { ...process.env, OFFRAMP_HTTP_PORT: String(httpPort), OFFRAMP_GRPC_PORT: String(grpcPort) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  const baseUrl = `http://127.0.0.1:${httpPort}`;

  const logTail = async (): Promise<string> => (await readFile(logPath, 'utf8').catch(() => '')).slice(-2000);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`server exited with ${child.exitCode} before it was ready:\n${await logTail()}`);
    const ok = await fetch(`${baseUrl}/v2/health/ready`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`server not ready after ${READY_TIMEOUT_MS / 1000} s:\n${await logTail()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  const get = async (path: string): Promise<Response> => {
    const res = await fetch(baseUrl + path);
    if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status}`);
    return res;
  };
  return {
    baseUrl,
    httpPort,
    grpcPort,
    logPath,
    pid: child.pid as number,
    cpuSeconds: () => processCpuSeconds(child.pid as number),
    exited,
    signal: (name) => child.kill(name),
    exitCodeNow: () => child.exitCode ?? (child.signalCode === null ? null : -1),
    getJson: async (path) => (await get(path)).json(),
    getText: async (path) => (await get(path)).text(),
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }
      running.delete(child);
      log.end();
    },
  };
}
