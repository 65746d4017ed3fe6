/**
 * Traffic for the chaos suite: HTTP requests whose whole life is recorded, so a case can tell an
 * answered request from a lost one. A request is *lost* when its body was fully handed to the
 * kernel (the request's 'finish' event) and no HTTP answer ever came: the connection was reset,
 * closed or timed out. One that could not even connect (the listener was gone) was never accepted,
 * so it is refused, not lost.
 */
import { Agent, request, type RequestOptions } from 'node:http';

export type Outcome =
  /** An HTTP status with the offramp error code of its body, if any. */
  | { kind: 'answer'; status: number; code?: string; body: string }
  /** Sent in full, then the connection failed or went silent: a lost request. */
  | { kind: 'lost'; reason: string }
  /** Never fully sent (no connection, or it broke while sending): not accepted, so not lost. */
  | { kind: 'refused'; reason: string };

export interface Sent {
  /** performance.now() when the request started, and when it was fully written. */
  startedMs: number;
  sentMs: number | null;
  endedMs: number;
  outcome: Outcome;
  /** The request's number in its closed loop (which body it sent). */
  index?: number;
}

export interface Target {
  port: number;
  /** A fresh TCP connection per request (what breaks on shutdown), or keep-alive connections. */
  fresh: boolean;
  /** Client gives up after this long; a request fully sent and unanswered by then is lost. */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;

/** One POST; never rejects. */
export function send(
  target: Target,
  agent: Agent | false,
  path: string,
  body: Buffer,
  headers: Record<string, string | number> = { 'content-type': 'application/json' },
): Promise<Sent> {
  const startedMs = performance.now();
  let sentMs: number | null = null;
  return new Promise((resolve) => {
    const done = (outcome: Outcome): void => resolve({ startedMs, sentMs, endedMs: performance.now(), outcome });
    const options: RequestOptions = {
      host: '127.0.0.1',
      port: target.port,
      path,
      method: 'POST',
      agent,
      headers: { ...headers, 'content-length': body.length },
    };
    const req = request(options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        done({ kind: 'answer', status: res.statusCode ?? 0, ...codeOf(text), body: text });
      });
      res.on('error', (err) => done({ kind: 'lost', reason: `response broke: ${err.message}` }));
    });
    req.setTimeout(target.timeoutMs ?? DEFAULT_TIMEOUT_MS, () => req.destroy(new Error('client timeout')));
    req.on('finish', () => (sentMs = performance.now()));
    req.on('error', (err) =>
      done(sentMs === null ? { kind: 'refused', reason: err.message } : { kind: 'lost', reason: err.message }),
    );
    req.end(body);
  });
}

function codeOf(text: string): { code?: string } {
  if (!text.startsWith('{"error"')) return {};
  try {
    const code = (JSON.parse(text) as { code?: unknown }).code;
    return typeof code === 'string' ? { code } : {};
  } catch {
    return {};
  }
}

/** The label a request's outcome is counted under in the table: "200", "503 OFFRAMP_…", "lost", "refused". */
export function outcomeLabel(outcome: Outcome): string {
  if (outcome.kind !== 'answer') return outcome.kind;
  return outcome.code ? `${outcome.status} ${outcome.code}` : String(outcome.status);
}

export interface ClosedLoop {
  /** Every request sent so far, in completion order. */
  readonly sent: Sent[];
  /** Stops sending new requests and resolves when every client's last request has ended. */
  stop(): Promise<void>;
}

export interface ClosedLoopOptions {
  /** Called as each request ends. */
  onSent?: (s: Sent, i: number) => void;
  /** A client waits this long after an answer before its next request (default 0: at once). */
  pauseMs?: number;
}

/**
 * `clients` concurrent clients, each sending its next request when the last one ended (and
 * `pauseMs` passed), until stopped. `bodyFor(i)` gives the i-th request's body. The agent
 * (keep-alive) or none (fresh).
 */
export function closedLoop(
  target: Target,
  clients: number,
  path: string,
  bodyFor: (i: number) => { body: Buffer; headers?: Record<string, string | number> },
  { onSent, pauseMs = 0 }: ClosedLoopOptions = {},
): ClosedLoop {
  const agent = target.fresh ? false : new Agent({ keepAlive: true, maxSockets: clients });
  const sent: Sent[] = [];
  let running = true;
  let next = 0;
  const client = async (): Promise<void> => {
    while (running) {
      const i = next++;
      const { body, headers } = bodyFor(i);
      const s = { ...(await send(target, agent, path, body, headers)), index: i };
      sent.push(s);
      onSent?.(s, i);
      if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
    }
  };
  const all = Promise.all(Array.from({ length: clients }, () => client()));
  return {
    sent,
    async stop() {
      running = false;
      await all;
      if (agent) agent.destroy();
    },
  };
}

/** Counts outcomes by label, most frequent first. */
export function countOutcomes(sent: readonly Sent[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const s of sent) counts.set(outcomeLabel(s.outcome), (counts.get(outcomeLabel(s.outcome)) ?? 0) + 1);
  return new Map([...counts].sort((a, b) => b[1] - a[1]));
}
