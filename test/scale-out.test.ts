/**
 * Three `offramp serve` replicas (the built CLI, child processes) behind Debian's haproxy on
 * loopback, run from the documented config (docs/deploy/haproxy.cfg; bench/lib/haproxy.ts swaps
 * in the ports), under a steady keep-alive load of real Fashion-MNIST images:
 *
 * (a) a rolling restart — each replica in turn gets SIGTERM, exits 0, starts again on its ports
 *     and is seen UP by haproxy before the next — loses no request: every one is answered 200
 *     with the class the replicas gave before the restarts;
 * (b) SIGKILL of one replica, its worker hung first so that requests are surely in flight on it:
 *     only requests in flight at the kill may fail, none that started after haproxy marked it
 *     DOWN (the time from haproxy's log); started again, it is UP and takes its share again.
 *
 * What makes (a) lossless: offramp's drain answers every request it accepted, and refuses new
 * ones with 503 OFFRAMP_SHUTTING_DOWN until haproxy's readiness check takes the replica out;
 * haproxy sends those, and connections refused once the replica has exited, to another replica
 * (`retry-on`, sound because inference is a pure function of its input: the config says why).
 * The test counts the requests haproxy retried, from its log.
 *
 * haproxy is a real peer: missing, the test fails (apt-get install haproxy), it does not skip.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN_TOKEN,
  adminPost,
  classOf,
  INFER_PATH,
  loadImages,
  MODEL_NAME,
  type ImageSet,
} from '../bench/chaos/chaos-kit.js';
import { closedLoop, outcomeLabel, send, type ClosedLoop, type Sent } from '../bench/chaos/traffic.js';
import { findHaproxy, type LoggedRequest } from '../bench/lib/haproxy.js';
import { startReplicaSet, type ReplicaSet } from '../bench/lib/replicas.js';
import { BUNDLED_DIR } from './helpers/bundled.js';

const REPLICAS = 3;
/** Keep-alive clients, each pausing between its answer and its next request: ~100 requests/s in all. */
const CLIENTS = 3;
const PAUSE_MS = 20;
const IMAGES = 32;

let dir: string;
let images: ImageSet;
let set: ReplicaSet;
let lbPort: number;

/**
 * Why the replicas or haproxy could not start. A hook that throws makes vitest report its tests
 * as skipped; this test must fail instead (CI requires every test to pass), so each test throws it.
 */
let setupFailure: Error | undefined;

beforeAll(async () => {
  try {
    await setUp();
  } catch (err) {
    setupFailure = err instanceof Error ? err : new Error(String(err));
  }
});

async function setUp(): Promise<void> {
  findHaproxy(); // throws "… apt-get install haproxy" when it is missing
  dir = await mkdtemp(join(tmpdir(), 'offramp-scale-out-'));
  images = await loadImages(IMAGES);
  set = await startReplicaSet({
    count: REPLICAS,
    workDir: dir,
    config: {
      // Fault injection (admin token required): the SIGKILL case hangs the replica's worker first,
      // so that requests are surely in flight on it when it is killed.
      server: { host: '127.0.0.1', workers: 1, intra_op_threads: 1, fault_injection: true, admin_token: ADMIN_TOKEN },
      // Exits off: every replica gives the full model's class, so any answer can be checked.
      // A generous SLO: no request waits past its deadline on a machine shared with other work.
      models: [{ name: MODEL_NAME, path: BUNDLED_DIR, slo: { latency_ms: 10_000 }, tuner: { kind: 'off' } }],
    },
  });
  lbPort = Number(new URL(set.haproxy.baseUrl).port);
  // The reference answers, through haproxy: one replica or another, all serve the same model.
  for (const body of images.bodies) {
    const c = classOf(await send({ port: lbPort, fresh: false }, false, INFER_PATH, body));
    if (c === null) throw new Error(`reference request failed; haproxy log:\n${await set.haproxy.logTail()}`);
    images.classes.push(c);
  }
}

afterAll(async () => {
  await set?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `condition` every 20 ms until it holds; throws after `timeoutMs`. */
async function until(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(20);
  }
}

/** Epoch ms of a performance.now() reading, to compare with haproxy's log times (same clock). */
const epochMs = (performanceMs: number): number => performance.timeOrigin + performanceMs;

/** CLIENTS keep-alive clients through haproxy, each sending image i mod IMAGES, then pausing. */
function steadyLoad(): ClosedLoop {
  return closedLoop(
    { port: lbPort, fresh: false, timeoutMs: 60_000 },
    CLIENTS,
    INFER_PATH,
    (i) => ({ body: images.bodies[i % IMAGES] as Buffer }),
    { pauseMs: PAUSE_MS },
  );
}

/** A request answered 200 with the class the replicas gave for its image. */
function valid(s: Sent): boolean {
  return classOf(s) === images.classes[(s.index as number) % IMAGES];
}

function describeSent(s: Sent): string {
  return `#${s.index} at ${epochMs(s.startedMs).toFixed(1)}–${epochMs(s.endedMs).toFixed(1)}: ${outcomeLabel(s.outcome)}`;
}

/** Requests haproxy logged from an epoch time until now, and how many of them it had to retry. */
async function loggedSince(fromMs: number): Promise<{ logged: LoggedRequest[]; retried: number }> {
  // haproxy writes a request's line once the answer is sent: give the last one time to land.
  await sleep(200);
  const toMs = Date.now();
  const logged = (await set.haproxy.requests()).filter((r) => r.atMs >= fromMs && r.atMs <= toMs);
  return { logged, retried: logged.filter((r) => r.retries > 0).length };
}

describe('offramp replicas behind haproxy', () => {
  it('loses no request in a rolling restart (SIGTERM, exit 0, start, UP, next)', { timeout: 240_000 }, async () => {
    if (setupFailure) throw setupFailure;
    const from = Date.now();
    const load = steadyLoad();
    await sleep(500);
    const drainMs: number[] = [];
    for (const [i, replica] of set.replicas.entries()) {
      const signalled = performance.now();
      replica.process.signal('SIGTERM');
      const exited = replica.process.exited.then((code) => {
        drainMs.push(performance.now() - signalled);
        return code;
      });
      // Readiness turns 503 at once, so haproxy marks it DOWN whether or not it has exited yet.
      const [code] = await Promise.all([exited, set.haproxy.waitFor(replica.name, 'DOWN')]);
      expect(code, `${replica.name} exit code after its drain`).toBe(0);
      await set.start(i);
      await set.haproxy.waitFor(replica.name, 'UP');
      await sleep(500);
    }
    await load.stop();
    const sent = load.sent;
    const { logged, retried } = await loggedSince(from);
    console.log(
      `rolling restart: ${sent.length} requests through haproxy, ${sent.filter(valid).length} answered 200 ` +
        `with the right class; haproxy retried ${retried} of the ${logged.length} it logged on another replica; ` +
        `SIGTERM to exit 0: ${drainMs.map((ms) => ms.toFixed(0)).join(', ')} ms`,
    );
    expect(sent.length).toBeGreaterThan(50);
    expect(sent.filter((s) => !valid(s)).map(describeSent)).toEqual([]);
    // haproxy's own view: every request it answered, it answered 200.
    expect(logged.filter((r) => r.status !== 200).map((r) => `${r.status} ${r.termination} via ${r.server}`)).toEqual(
      [],
    );
  });

  it(
    'after a SIGKILL, fails only requests in flight at the kill, none after haproxy marks it DOWN',
    { timeout: 180_000 },
    async () => {
      if (setupFailure) throw setupFailure;
      const i = 1;
      const replica = set.replicas[i]!;
      const from = Date.now();
      const load = steadyLoad();
      await sleep(1_000);
      // Its only worker hangs: each request haproxy sends it from now on stays in flight on it
      // (worker_timeout_ms is 30 s), so the kill surely cuts requests short, as a crash would.
      const hang = await adminPost(replica.ports.http, `/v2/models/${MODEL_NAME}/admin/faults`, {
        fault: 'hang-worker',
      });
      expect(outcomeLabel(hang.outcome), 'hang-worker injected').toBe('200');
      await until(async () => (await set.haproxy.stats()).some((r) => r.name === replica.name && r.current > 0));
      await sleep(200);
      const killedAtMs = Date.now();
      replica.process.signal('SIGKILL');
      await replica.process.exited;
      await set.haproxy.waitFor(replica.name, 'DOWN');
      await sleep(1_000); // load on the two left
      const down = (await set.haproxy.stateChanges()).find(
        (c) => c.server === replica.name && c.state === 'DOWN' && c.atMs >= killedAtMs,
      );
      expect(down, 'haproxy logged the replica DOWN after the kill').toBeDefined();
      const downAtMs = down!.atMs;

      await set.start(i);
      await set.haproxy.waitFor(replica.name, 'UP');
      const servedBefore = (await set.haproxy.stats()).find((r) => r.name === replica.name)!.sessions;
      await sleep(1_500);
      const servedAfter = (await set.haproxy.stats()).find((r) => r.name === replica.name)!.sessions;
      await load.stop();
      const sent = load.sent;
      const { logged, retried } = await loggedSince(from);

      const failed = sent.filter((s) => !valid(s));
      // Requests haproxy had received before the kill and answered only after a retry: those it
      // had sent to the killed replica (empty-response) and moved to another.
      const rescued = logged.filter((r) => r.retries > 0 && r.atMs - r.activeMs < killedAtMs);
      const inFlightAtKill = sent.filter((s) => epochMs(s.startedMs) < killedAtMs && epochMs(s.endedMs) > killedAtMs);
      console.log(
        `SIGKILL: ${sent.length} requests, ${failed.length} failed, ${inFlightAtKill.length} in flight at the kill; ` +
          `haproxy marked it DOWN ${(downAtMs - killedAtMs).toFixed(0)} ms after the kill (${down!.detail.split(',')[0]}) ` +
          `and retried ${retried} of the ${logged.length} requests it logged, ${rescued.length} of them received before the kill; ` +
          `${servedAfter - servedBefore} sent to it in 1.5 s once UP again`,
      );
      expect(sent.length).toBeGreaterThan(50);
      expect(inFlightAtKill.length, 'requests in flight at the kill (the hung worker holds them)').toBeGreaterThan(0);
      expect(failed.filter((s) => !inFlightAtKill.includes(s)).map(describeSent)).toEqual([]);
      expect(failed.filter((s) => epochMs(s.startedMs) >= downAtMs).map(describeSent)).toEqual([]);
      // Started again on its ports, it takes its share of the load.
      expect(servedAfter).toBeGreaterThan(servedBefore);
    },
  );
});
