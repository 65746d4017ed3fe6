/**
 * Starts offramp: loads every configured model into the engine, then serves it over KServe v2
 * HTTP and gRPC from one data plane, with metrics, live gauges and config reload.
 */
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { ServingConfig } from './config/index.js';
import { packageRoot, watchServingConfig } from './config/index.js';
import { EngineDataPlane, type ServedModel } from './data-plane/engine-data-plane.js';
import { createGrpcServer } from './grpc/server.js';
import { HttpDrain } from './http/drain.js';
import { createHttpServer } from './http/server.js';
import { createMetrics, FINAL_EXIT, recordExitsReport, type Metrics } from './metrics.js';
import type { EngineObserver } from './engine/model-runner.js';
import { servingPlan } from './engine/exit-plan.js';
import { asOfframpError, type ErrorCode } from './errors.js';
import { acceptQueueLength } from './accept-queue.js';
import { Dashboard } from './dashboard/dashboard.js';
import { engineDashboardSource } from './dashboard/source.js';

export interface RunningServer {
  dataPlane: EngineDataPlane;
  metrics: Metrics;
  http: FastifyInstance;
  /** The live dashboard (/dashboard); null when server.dashboard.enabled is false. */
  dashboard: Dashboard | null;
  httpPort: number;
  grpcPort: number;
  /**
   * Graceful shutdown: readiness turns false at once, every request already accepted (HTTP and
   * gRPC) is answered, new ones get OFFRAMP_SHUTTING_DOWN, then the listeners, executors and
   * tuners stop. Resolves when nothing of the server is left running.
   */
  close(): Promise<void>;
  /** What is still being served, for the log when a drain is cut short: "3 HTTP requests, 0 gRPC calls; fmnist: 12 queued, 1 batch running". */
  inFlight(): string;
}

export interface ServerOptions {
  version: string;
  /** Config file to watch for changes (SIGHUP also reloads); none for the embedded default. */
  configPath?: string;
  log?: (line: string) => void;
  /** Log every HTTP request (fastify's logger). */
  accessLog?: boolean;
  /** Tests: where the dashboard's page is (default dist/dashboard/ in the package), and its sampling interval. */
  dashboard?: { assetsDir?: string; sampleIntervalMs?: number };
}

function observerFor(metrics: Metrics, model: string): EngineObserver {
  return {
    answered: (exit, latencyMs) => {
      const labels = { model, exit: exit < 0 ? FINAL_EXIT : String(exit) };
      metrics.requestLatency.observe(labels, latencyMs / 1000);
      metrics.requestsByExit.inc(labels);
    },
    queueWait: (ms) => metrics.queueWait.observe({ model }, ms / 1000),
    tierRows: (tier, answered, deferred) => {
      if (answered > 0) metrics.cascadeTierRows.inc({ model, tier: String(tier), decision: 'answered' }, answered);
      if (deferred > 0) metrics.cascadeTierRows.inc({ model, tier: String(tier), decision: 'deferred' }, deferred);
    },
    batch: (rows) => metrics.batchSize.observe({ model }, rows),
    outcome: (outcome, code) => {
      metrics.requestsTotal.inc({ model, outcome });
      if (outcome === 'failed' && code) metrics.inferenceFailures.inc({ model, code: code as ErrorCode });
    },
    workerRestarted: (cause) => metrics.workerRestarts.inc({ model, cause }),
    readyWorkers: (count) => metrics.readyWorkers.set({ model }, count),
  };
}

function describePlan(m: ServedModel): string {
  return (
    m.runner.exitPlan.ramps
      .map((r) => `${r.id}@${r.threshold === null ? 'never' : r.threshold.toFixed(3)}`)
      .join(' ') || 'none'
  );
}

/** Runs `listen`; a failure becomes one line naming the transport, the address and the cause. */
async function listenOn(transport: string, host: string, port: number, listen: () => Promise<number>): Promise<number> {
  try {
    return await listen();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const message = (err as Error).message;
    const cause = code === 'EADDRINUSE' || /address already in use/i.test(message) ? 'address already in use' : message;
    throw new Error(`cannot listen for ${transport} on ${host}:${port}: ${cause}`, { cause: err });
  }
}

export async function startServer(config: ServingConfig, options: ServerOptions): Promise<RunningServer> {
  const log = options.log ?? (() => undefined);
  if (config.server.faultInjection)
    log(
      'WARNING: server.fault_injection is on: POST /v2/models/{m}/admin/faults crashes and hangs executor workers ' +
        'on request (admin token required); never run it in production',
    );
  const metrics = createMetrics();
  const dataPlane = await EngineDataPlane.load(config, {
    version: options.version,
    log,
    observerFor: (model) => observerFor(metrics, model),
  });
  for (const m of dataPlane.servedModels) {
    const plan = m.runner.exitPlan;
    log(
      `model ${m.name} v${m.version} from ${m.dir}: ${m.manifest.ramps.length} ramps, ` +
        `active ${describePlan(m)} (${plan.policy}, ${plan.mode}, tuner ${m.tuning.kind})`,
    );
  }
  // Exit-state gauges and tuner counters are read from the exits reports at each scrape.
  metrics.onRefresh(() => {
    for (const m of dataPlane.servedModels) {
      recordExitsReport(metrics, dataPlane.exits(m.name));
      // Settings, read at each scrape so that a config reload shows.
      metrics.sloLatency.set({ model: m.name }, m.config.slo.latencyMs / 1000);
      metrics.accuracyBudget.set({ model: m.name }, m.config.accuracy.budget);
    }
  });

  const dashboardConfig = config.server.dashboard;
  const dashboard = dashboardConfig.enabled
    ? new Dashboard({
        source: engineDashboardSource(dataPlane, config.server.workers),
        metrics,
        config: dashboardConfig,
        version: options.version,
        adminEnabled: config.server.adminToken !== null,
        assetsDir: options.dashboard?.assetsDir ?? join(packageRoot(), 'dist', 'dashboard'),
        packageRoot: packageRoot(),
        ...(options.dashboard?.sampleIntervalMs !== undefined
          ? { sampleIntervalMs: options.dashboard.sampleIntervalMs }
          : {}),
        log,
      })
    : null;

  // The admin token is read once: a reload that changes it is reported, not applied (like the ports).
  const httpDrain = new HttpDrain();
  const http = createHttpServer({
    drain: httpDrain,
    dataPlane,
    metrics,
    maxBodyBytes: config.server.maxBodyBytes,
    logger: options.accessLog ?? false,
    admin: { plane: dataPlane, token: config.server.adminToken },
    ...(dashboard ? { dashboard } : {}),
  });
  const grpc = createGrpcServer({ dataPlane, maxMessageBytes: config.server.maxBodyBytes });
  let httpPort: number;
  let grpcPort: number;
  try {
    httpPort = await listenOn('HTTP', config.server.host, config.server.httpPort, async () => {
      await http.listen({ host: config.server.host, port: config.server.httpPort, backlog: LISTEN_BACKLOG });
      const address = http.server.address();
      return typeof address === 'object' && address ? address.port : config.server.httpPort;
    });
    grpcPort = await listenOn('gRPC', config.server.host, config.server.grpcPort, () =>
      grpc.start(config.server.host, config.server.grpcPort),
    );
  } catch (err) {
    // A server that cannot listen must not linger: its worker threads would keep the process
    // alive, serving nothing, where a supervisor needs it to exit and say why.
    dashboard?.close();
    await Promise.allSettled([http.close(), grpc.stop(0), dataPlane.close()]);
    throw err;
  }
  log(
    `KServe v2 HTTP on ${config.server.host}:${httpPort}, gRPC on ${config.server.host}:${grpcPort}; metrics at /metrics; ` +
      `admin endpoints ${config.server.adminToken === null ? 'disabled (no server.admin_token)' : 'at /v2/models/{m}/admin/'}; ` +
      `dashboard ${dashboard ? 'at /dashboard' : 'disabled (server.dashboard.enabled: false)'}`,
  );

  // Reload: exit settings, thresholds, batching and SLO apply from the next batch; what needs a
  // restart (ports, workers, the set of models, their paths) is reported and left as it is.
  const stopWatching = options.configPath
    ? watchServingConfig(
        options.configPath,
        (next) => {
          const restart = [
            'httpPort',
            'grpcPort',
            'host',
            'workers',
            'intraOpThreads',
            'maxBodyBytes',
            'adminToken',
            'drainTimeoutMs',
            'workerTimeoutMs',
            'faultInjection',
            'stateDir',
          ] as const;
          for (const key of restart)
            if (next.server[key] !== config.server[key])
              log(`config reload: server.${key} changed; restart to apply it`);
          if (JSON.stringify(next.server.dashboard) !== JSON.stringify(config.server.dashboard))
            log('config reload: server.dashboard changed; restart to apply it');
          for (const m of dataPlane.servedModels)
            if (!next.models.some((x) => x.name === m.name))
              log(`config reload: model ${m.name} is no longer listed; restart to stop serving it`);
          for (let modelConfig of next.models) {
            const m = dataPlane.servedModels.find((x) => x.name === modelConfig.name);
            if (!m) {
              log(`config reload: model ${modelConfig.name} is new; restart to serve it`);
              continue;
            }
            if (modelConfig.path !== m.config.path)
              log(`config reload: ${m.name} path changed; restart to load ${modelConfig.path}`);
            // The cascade's tiers are loaded into the workers and profiled at start: kept as they are.
            if (JSON.stringify(modelConfig.cascade) !== JSON.stringify(m.config.cascade)) {
              log(`config reload: ${m.name} cascade changed; restart to apply it`);
              modelConfig = { ...modelConfig, cascade: m.config.cascade };
            }
            m.runner.reconfigure(modelConfig.batching, modelConfig.slo.latencyMs);
            if (modelConfig.tuner.kind !== m.tuning.kind)
              log(`config reload: ${m.name} tuner.kind changed; restart to apply it`);
            // A model under an online tuner keeps the tuner's plan; static ones take the new file's.
            // Pinned thresholds (admin endpoint) stay on top of either until unpinned.
            const dropped = m.tuning.setStaticPlan(servingPlan(m.prepared, modelConfig, m.tuning.disabledRamps));
            if (dropped.length > 0)
              log(
                `config reload: ${m.name} unpinned ramps ${dropped.join(', ')}: their pinned thresholds do not fit the new policy`,
              );
            m.config = modelConfig;
            log(`config reload: ${m.name} exit plan now ${describePlan(m)}`);
          }
        },
        (err) => log(`config reload rejected, keeping the running config: ${asOfframpError(err).message}`),
        { current: config },
      )
    : () => undefined;

  return {
    dataPlane,
    metrics,
    http,
    dashboard,
    httpPort,
    grpcPort,
    async close() {
      stopWatching();
      // An open event stream is a request in flight that never ends by itself: the pages are
      // told to go (they would reconnect, and are refused from now on) before the drain counts.
      dashboard?.close();
      // Readiness false and new inference refused, on both transports at once; the listeners stay
      // open meanwhile, so that what arrives is answered (503) instead of reset (see below).
      dataPlane.beginDrain();
      httpDrain.begin();
      // What was sent before the signal: the connections taken so far and those the kernel holds.
      const before = { accepted: httpDrain.connectionsAccepted, waiting: acceptQueueLength(httpPort) };
      // Every request the engine holds is answered, then the executors and tuners stop.
      await dataPlane.close();
      // Every answer is handed to its transport (requests still reading their body are refused
      // by the data plane when they reach it), and no connection waits to be accepted or read:
      // only then may the listeners close (see `untilQuiet`).
      const waitingAtSignal = await before.waiting;
      await untilQuiet({
        idle: () => httpDrain.requestsInFlight + grpc.callsInFlight === 0,
        accepted: () => httpDrain.connectionsAccepted,
        unread: () => httpDrain.connectionsUnread(),
        backlog: () => acceptQueueLength(httpPort),
        sentBeforeSignal:
          waitingAtSignal === undefined
            ? undefined
            : () => {
                // The kernel hands connections over in the order it completed them, so once as many
                // as waited at the signal have been taken since, every one sent before it has been.
                const last = before.accepted + waitingAtSignal;
                return {
                  waiting: Math.max(0, last - httpDrain.connectionsAccepted),
                  unread: httpDrain.connectionsUnread(last),
                };
              },
      });
      await Promise.all([http.close(), grpc.stop(GRPC_CLOSE_GRACE_MS)]);
      metrics.close?.();
    },
    inFlight() {
      const models = dataPlane.servedModels.map(
        (m) =>
          `${m.name}: ${m.runner.queuedRequests} queued, ${count(m.runner.runningBatches, 'batch', 'batches')} running`,
      );
      return [
        `${count(httpDrain.requestsInFlight, 'HTTP request')}, ${count(grpc.callsInFlight, 'gRPC call')}`,
        ...models,
      ].join('; ');
    },
  };
}

/**
 * Connections the kernel may hold for the HTTP listener before node takes them (capped by the
 * kernel's net.core.somaxconn). Node's default, 511, overflows under a burst of a few thousand
 * clients; an overflowing queue drops handshakes, and clients wait out SYN retransmissions (1 s,
 * 3 s, 7 s…) before they are even read: a refusal from the admission rule is far cheaper.
 */
const LISTEN_BACKLOG = 4096;

/**
 * grpc-js's graceful shutdown is given this long to end its sessions once no call is in flight;
 * then the remaining sessions (a call that came in the last moment) are cancelled.
 */
const GRPC_CLOSE_GRACE_MS = 2000;

/** Polls between I/O: each timer callback runs in a new turn of the event loop, after its poll phase. */
const QUIET_POLL_MS = 5;
/** Turns a connection that sends nothing (a TCP health check, a pre-opened connection) may hold the close back. */
const UNREAD_PATIENCE_TURNS = 20;

interface QuietProbes {
  /** No request or call in flight. */
  idle: () => boolean;
  /** Connections the HTTP server has accepted so far. */
  accepted: () => number;
  /** Open connections nothing has been read from yet. */
  unread: () => number;
  /** Connections waiting in the kernel's accept queue; undefined where that cannot be known. */
  backlog: () => Promise<number | undefined>;
  /**
   * Of the connections made before the drain began, how many are still not taken from the kernel
   * and how many are taken but unread; undefined where the accept queue cannot be read.
   */
  sentBeforeSignal: (() => { waiting: number; unread: number }) | undefined;
}

/**
 * Resolves when the listeners can close without resetting a request sent before the drain began.
 *
 * Closing a listening socket resets the connections the kernel accepted that node has not taken
 * yet, and node's HTTP close drops the connections it took but has not read from. Node takes
 * only a few waiting connections per turn of the event loop, so under load a backlog lasts many
 * turns. So this waits for a turn that ends with nothing in flight, no connection taken during
 * it, none waiting in the kernel's queue (where the kernel tells) and none unread: every
 * connection sent before the signal has by then been taken and read, so its request has begun,
 * and node's close waits for it. A connection that stays unread is given UNREAD_PATIENCE_TURNS.
 */
async function untilQuiet(probes: QuietProbes): Promise<void> {
  const turn = () => new Promise((resolve) => setTimeout(resolve, QUIET_POLL_MS));
  let before = probes.accepted();
  let unreadTurns = 0;
  let earlierUnreadTurns = 0;
  for (;;) {
    await turn();
    // Clients that keep connecting after readiness turned false (a balancer slow to notice, a
    // client that ignores it) would keep the server from ever being quiet: once every connection
    // made before the signal has been taken and read, the rest may be reset.
    const earlier = probes.sentBeforeSignal?.();
    if (earlier && earlier.waiting === 0) {
      if (earlier.unread === 0 || ++earlierUnreadTurns >= UNREAD_PATIENCE_TURNS) return;
    }
    const now = probes.accepted();
    const settled = probes.idle() && now === before && ((await probes.backlog()) ?? 0) === 0;
    before = now;
    if (!settled) {
      unreadTurns = 0;
      continue;
    }
    if (probes.unread() === 0 || ++unreadTurns >= UNREAD_PATIENCE_TURNS) return;
  }
}

function count(n: number, singular: string, plural = `${singular}s`): string {
  return `${n} ${n === 1 ? singular : plural}`;
}
