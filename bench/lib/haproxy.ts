/**
 * Debian's haproxy in front of offramp replicas, run from the documented config
 * (docs/deploy/haproxy.cfg) with only its listening address, its servers and its stats socket
 * replaced, so that what the scale-out test and bench exercise is what the docs tell users to run.
 *
 * haproxy runs in the foreground (`-db`); its log (one line per request, one per replica going UP
 * or DOWN, RFC 5424 timestamps to the microsecond) goes to a file. Replica states and counters
 * come from the runtime API (`show stat` on the stats socket).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, openSync, closeSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { createConnection } from 'node:net';
import { delimiter, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The config users are told to run; the test and the bench generate theirs from it. */
export const DOCUMENTED_CONFIG = fileURLToPath(new URL('../../docs/deploy/haproxy.cfg', import.meta.url));

/** Where Debian puts haproxy: /usr/sbin is not on an unprivileged user's PATH. */
const SBIN_DIRS = ['/usr/sbin', '/usr/local/sbin', '/sbin'];

/** The haproxy binary: $HAPROXY, else the first on PATH or in an sbin folder; throws with the install hint. */
export function findHaproxy(env: NodeJS.ProcessEnv = process.env): string {
  const given = env['HAPROXY'];
  const candidates = given
    ? [given]
    : [...(env['PATH'] ?? '').split(delimiter).filter(Boolean), ...SBIN_DIRS].map((dir) => join(dir, 'haproxy'));
  for (const path of candidates) {
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not there: try the next
    }
  }
  throw new Error(
    `haproxy not found (${given ? `HAPROXY=${given}` : `looked on PATH and in ${SBIN_DIRS.join(', ')}`}): ` +
      'apt-get install haproxy',
  );
}

export interface Backend {
  /** Server name in haproxy (its stats and log lines). */
  name: string;
  /** host:port */
  address: string;
}

export interface Site {
  /** The frontend's `bind` address, host:port. */
  listen: string;
  backends: readonly Backend[];
  statsSocket: string;
}

/**
 * The documented config with this site's addresses: the one `bind`, the one `stats socket` path,
 * and the `server` lines, which become one per backend with the first line's options. Throws when
 * the template no longer has that shape, so a change to the docs cannot silently test something else.
 */
export function haproxyConfig(template: string, site: Site): string {
  const lines = template.split('\n');
  const replaceOnce = (pattern: RegExp, value: string, what: string): void => {
    const at = lines.flatMap((line, i) => (pattern.test(line) ? [i] : []));
    if (at.length !== 1) throw new Error(`haproxy template: expected one ${what} line, found ${at.length}`);
    const i = at[0] as number;
    lines[i] = (lines[i] as string).replace(pattern, (_m, head: string) => `${head}${value}`);
  };
  replaceOnce(/^(\s*bind\s+)\S+/, site.listen, '`bind`');
  replaceOnce(/^(\s*stats socket\s+)\S+/, site.statsSocket, '`stats socket`');
  const serverLine = /^(\s*)server\s+\S+\s+\S+(.*)$/;
  const servers = lines.flatMap((line, i) => (serverLine.test(line) ? [i] : []));
  const first = servers[0];
  if (first === undefined || servers.some((at, k) => at !== first + k))
    throw new Error('haproxy template: expected its `server` lines together');
  const [, indent, options] = serverLine.exec(lines[first] as string) as RegExpExecArray;
  lines.splice(
    first,
    servers.length,
    ...site.backends.map((b) => `${indent}server ${b.name} ${b.address}${options ?? ''}`),
  );
  return lines.join('\n');
}

/** One server's (or the backend's) row of `show stat`, the fields used here. */
export interface ServerStat {
  proxy: string;
  /** Server name, or BACKEND / FRONTEND. */
  name: string;
  /** UP, DOWN, "UP 1/2" (going down), "DOWN 1/2" (coming up), MAINT, … */
  status: string;
  /** The last health check's result: L7OK, L7STS (a status other than 200), L4CON (refused), INI (none yet), … */
  checkStatus: string;
  /** Requests on it now (scur), and sent to it so far (stot). */
  current: number;
  sessions: number;
  /** Attempts made again after a failure (connection or layer 7), and those moved to another server. */
  retries: number;
  redispatches: number;
  /** Answers by class, as haproxy counted them (5xx includes haproxy's own 502/503/504). */
  responses2xx: number;
  responses5xx: number;
}

/** `show stat` CSV → rows (the header line names the columns; their order changes between versions). */
export function parseShowStat(csv: string): ServerStat[] {
  const [head, ...rows] = csv.split('\n').filter((line) => line.length > 0);
  if (!head?.startsWith('# ')) throw new Error(`show stat: no header in ${JSON.stringify(csv.slice(0, 200))}`);
  const columns = head.slice(2).split(',');
  const col = (name: string): number => {
    const i = columns.indexOf(name);
    if (i < 0) throw new Error(`show stat: no column ${name}`);
    return i;
  };
  const at = {
    proxy: col('pxname'),
    name: col('svname'),
    status: col('status'),
    checkStatus: col('check_status'),
    current: col('scur'),
    sessions: col('stot'),
    retries: col('wretr'),
    redispatches: col('wredis'),
    responses2xx: col('hrsp_2xx'),
    responses5xx: col('hrsp_5xx'),
  };
  return rows.map((row) => {
    const f = row.split(',');
    const num = (i: number): number => Number(f[i] || 0);
    return {
      proxy: f[at.proxy] ?? '',
      name: f[at.name] ?? '',
      status: f[at.status] ?? '',
      checkStatus: f[at.checkStatus] ?? '',
      current: num(at.current),
      sessions: num(at.sessions),
      retries: num(at.retries),
      redispatches: num(at.redispatches),
      responses2xx: num(at.responses2xx),
      responses5xx: num(at.responses5xx),
    };
  });
}

/** A replica going UP or DOWN, as haproxy logged it. */
export interface StateChange {
  /** Epoch ms (haproxy's clock, microseconds kept as the fraction). */
  atMs: number;
  server: string;
  state: 'UP' | 'DOWN';
  /** The rest of the line: why (e.g. "Layer7 wrong status, code: 503"). */
  detail: string;
}

/** The UP/DOWN lines of an RFC 5424 haproxy log. */
export function parseStateChanges(log: string): StateChange[] {
  const line = /^<\d+>1 (\S+) \S+ \S+ \S+ \S+ \S+ Server [^/\s]+\/(\S+) is (UP|DOWN)\b(.*)$/;
  return log.split('\n').flatMap((text) => {
    const m = line.exec(text);
    if (!m) return [];
    const [, stamp, server, state, detail] = m as unknown as [string, string, string, 'UP' | 'DOWN', string];
    return [{ atMs: stampMs(stamp), server, state, detail: detail.replace(/^,\s*/, '') }];
  });
}

/** One request as haproxy logged it (option httplog), when it ended. */
export interface LoggedRequest {
  /** Epoch ms of the log line: when the answer was sent. */
  atMs: number;
  /** From the request's first byte to the answer's last (%Ta): it arrived at atMs − activeMs. */
  activeMs: number;
  /** The server that gave the final answer ("<NOSRV>" when none did). */
  server: string;
  /** HTTP status sent to the client (-1: none). */
  status: number;
  /** Attempts after the first (connection failures and layer-7 retries) … */
  retries: number;
  /** … and whether one went to another server than the first. */
  redispatched: boolean;
  /** The four-letter termination state: "----" for a normal end (haproxy's manual, 8.5). */
  termination: string;
  /** "POST /v2/models/fmnist/infer HTTP/1.1" */
  request: string;
}

/** The request lines of an RFC 5424 haproxy log in the httplog format. */
export function parseRequestLog(log: string): LoggedRequest[] {
  // … %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %{+Q}r
  const timers = String.raw`-?\d+\/-?\d+\/-?\d+\/-?\d+\/\+?(-?\d+)`;
  const line = new RegExp(
    String.raw`^<\d+>1 (\S+) .*\] \S+ [^/\s]+\/(\S+) ${timers} (-?\d+) \d+ \S+ \S+ (\S{4}) ` +
      String.raw`\d+\/\d+\/\d+\/\d+\/(\+?)(\d+) \d+\/\d+ "(.*)"$`,
  );
  return log.split('\n').flatMap((text) => {
    const m = line.exec(text);
    if (!m) return [];
    const [, stamp, server, active, status, termination, plus, retries, request] = m as unknown as string[];
    return [
      {
        atMs: stampMs(stamp as string),
        activeMs: Number(active),
        server: server as string,
        status: Number(status),
        retries: Number(retries),
        redispatched: plus === '+',
        termination: termination as string,
        request: request as string,
      },
    ];
  });
}

/** "2026-12-01T00:08:01.605920+00:00" → epoch ms with the microseconds (Date.parse keeps only ms). */
function stampMs(stamp: string): number {
  const micro = /\.(\d{6})/.exec(stamp)?.[1];
  const ms = Date.parse(stamp.replace(/\.(\d{3})\d*/, '.$1'));
  return micro ? ms + (Number(micro) % 1000) / 1000 : ms;
}

export interface Haproxy {
  pid: number;
  /** The frontend's URL, http://host:port. */
  baseUrl: string;
  configPath: string;
  logPath: string;
  /** `show stat`, the rows of `backend` (servers and the BACKEND total). */
  stats(): Promise<ServerStat[]>;
  /**
   * Polls `show stat` until `server` is `status` (exactly: not "UP 1/2"); UP also needs its last
   * check to have passed, since haproxy starts every server UP before checking it. Rejects after
   * `timeoutMs`.
   */
  waitFor(server: string, status: 'UP' | 'DOWN', timeoutMs?: number): Promise<void>;
  /** Every UP/DOWN the log holds so far. */
  stateChanges(): Promise<StateChange[]>;
  /** Every request the log holds so far. */
  requests(): Promise<LoggedRequest[]>;
  /** The log's last lines, for error messages. */
  logTail(): Promise<string>;
  /** SIGTERM (haproxy's hard stop) and wait for the exit. */
  stop(): Promise<void>;
}

export interface HaproxyOptions {
  /** Folder for the generated config, the log and the stats socket. */
  workDir: string;
  /** The frontend's port on 127.0.0.1. */
  port: number;
  backends: readonly Backend[];
  /** The backend section's name in the documented config. */
  backend?: string;
  binary?: string;
}

const STATE_POLL_MS = 25;

/** Writes the config from the documented one, starts haproxy and waits until its stats socket answers. */
export async function startHaproxy(options: HaproxyOptions): Promise<Haproxy> {
  const binary = options.binary ?? findHaproxy();
  const backend = options.backend ?? 'offramp_replicas';
  // Absolute: haproxy reads a relative `stats socket` path as a host name.
  const workDir = resolve(options.workDir);
  const configPath = join(workDir, 'haproxy.cfg');
  const logPath = join(workDir, 'haproxy.log');
  const statsSocket = join(workDir, 'haproxy.sock');
  const template = await readFile(DOCUMENTED_CONFIG, 'utf8');
  await writeFile(
    configPath,
    haproxyConfig(template, { listen: `127.0.0.1:${options.port}`, backends: options.backends, statsSocket }),
  );
  const logFd = openSync(logPath, 'a');
  let child: ChildProcess;
  try {
    child = spawn(binary, ['-db', '-f', configPath], { stdio: ['ignore', logFd, logFd] });
  } finally {
    closeSync(logFd);
  }
  const exited = once(child, 'exit').then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as string | null,
  }));
  child.on('error', () => undefined); // reported by `exited` (spawn failures end in 'exit' too)
  const logTail = async (): Promise<string> => (await readFile(logPath, 'utf8').catch(() => '')).slice(-3000);

  const stats = async (): Promise<ServerStat[]> =>
    parseShowStat(await runtimeCommand(statsSocket, 'show stat')).filter((row) => row.proxy === backend);
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`haproxy exited (${child.exitCode ?? child.signalCode}) at start:\n${await logTail()}`);
    const ok = await stats().then(
      () => true,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`haproxy's stats socket did not answer within 10 s:\n${await logTail()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  return {
    pid: child.pid as number,
    baseUrl: `http://127.0.0.1:${options.port}`,
    configPath,
    logPath,
    stats,
    async waitFor(server, status, timeoutMs = 60_000) {
      const until = Date.now() + timeoutMs;
      let last = '?';
      while (Date.now() < until) {
        const row = (await stats()).find((r) => r.name === server);
        last = row ? `${row.status} (check ${row.checkStatus})` : 'absent';
        if (row?.status === status && (status === 'DOWN' || row.checkStatus === 'L7OK')) return;
        await new Promise((r) => setTimeout(r, STATE_POLL_MS));
      }
      throw new Error(`haproxy: ${server} still ${last} after ${timeoutMs} ms, not ${status}:\n${await logTail()}`);
    },
    stateChanges: async () => parseStateChanges(await readFile(logPath, 'utf8')),
    requests: async () => parseRequestLog(await readFile(logPath, 'utf8')),
    logTail,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** One command on haproxy's runtime API (a UNIX socket): haproxy answers and closes the connection. */
export function runtimeCommand(socketPath: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ path: socketPath });
    const chunks: Buffer[] = [];
    socket.setTimeout(5_000, () => socket.destroy(new Error(`haproxy runtime API: no answer to ${command}`)));
    socket.on('connect', () => socket.end(`${command}\n`));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}
