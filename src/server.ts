/**
 * Starts offramp: loads every configured model into the engine, then serves it over KServe v2
 * HTTP and gRPC from one data plane, with metrics, live gauges and config reload.
 */
import type { FastifyInstance } from 'fastify';
import type { ServingConfig } from './config/index.js';
import { watchServingConfig } from './config/index.js';
import { EngineDataPlane, type ServedModel } from './data-plane/engine-data-plane.js';
import { createGrpcServer } from './grpc/server.js';
import { createHttpServer } from './http/server.js';
import { createMetrics, FINAL_EXIT, recordExitsReport, type Metrics } from './metrics.js';
import type { EngineObserver } from './engine/model-runner.js';
import { staticPlan } from './engine/exit-plan.js';
import { asOfframpError, type ErrorCode } from './errors.js';

export interface RunningServer {
  dataPlane: EngineDataPlane;
  metrics: Metrics;
  http: FastifyInstance;
  httpPort: number;
  grpcPort: number;
  close(): Promise<void>;
}

export interface ServerOptions {
  version: string;
  /** Config file to watch for changes (SIGHUP also reloads); none for the embedded default. */
  configPath?: string;
  log?: (line: string) => void;
  /** Log every HTTP request (fastify's logger). */
  accessLog?: boolean;
}

function observerFor(metrics: Metrics, model: string): EngineObserver {
  return {
    answered: (exit, latencyMs) => {
      const labels = { model, exit: exit < 0 ? FINAL_EXIT : String(exit) };
      metrics.requestLatency.observe(labels, latencyMs / 1000);
      metrics.requestsByExit.inc(labels);
    },
    queueWait: (ms) => metrics.queueWait.observe({ model }, ms / 1000),
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
    for (const m of dataPlane.servedModels) recordExitsReport(metrics, dataPlane.exits(m.name));
  });

  // The admin token is read once: a reload that changes it is reported, not applied (like the ports).
  const http = createHttpServer({
    dataPlane,
    metrics,
    maxBodyBytes: config.server.maxBodyBytes,
    logger: options.accessLog ?? false,
    admin: { plane: dataPlane, token: config.server.adminToken },
  });
  const grpc = createGrpcServer({ dataPlane, maxMessageBytes: config.server.maxBodyBytes });
  let httpPort: number;
  let grpcPort: number;
  try {
    httpPort = await listenOn('HTTP', config.server.host, config.server.httpPort, async () => {
      await http.listen({ host: config.server.host, port: config.server.httpPort });
      const address = http.server.address();
      return typeof address === 'object' && address ? address.port : config.server.httpPort;
    });
    grpcPort = await listenOn('gRPC', config.server.host, config.server.grpcPort, () =>
      grpc.start(config.server.host, config.server.grpcPort),
    );
  } catch (err) {
    // A server that cannot listen must not linger: its worker threads would keep the process
    // alive, serving nothing, where a supervisor needs it to exit and say why.
    await Promise.allSettled([http.close(), grpc.stop(0), dataPlane.close()]);
    throw err;
  }
  log(
    `KServe v2 HTTP on ${config.server.host}:${httpPort}, gRPC on ${config.server.host}:${grpcPort}; metrics at /metrics; ` +
      `admin endpoints ${config.server.adminToken === null ? 'disabled (no server.admin_token)' : 'at /v2/models/{m}/admin/'}`,
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
            'workerTimeoutMs',
            'faultInjection',
          ] as const;
          for (const key of restart)
            if (next.server[key] !== config.server[key])
              log(`config reload: server.${key} changed; restart to apply it`);
          for (const m of dataPlane.servedModels)
            if (!next.models.some((x) => x.name === m.name))
              log(`config reload: model ${m.name} is no longer listed; restart to stop serving it`);
          for (const modelConfig of next.models) {
            const m = dataPlane.servedModels.find((x) => x.name === modelConfig.name);
            if (!m) {
              log(`config reload: model ${modelConfig.name} is new; restart to serve it`);
              continue;
            }
            if (modelConfig.path !== m.config.path)
              log(`config reload: ${m.name} path changed; restart to load ${modelConfig.path}`);
            m.runner.reconfigure(modelConfig.batching, modelConfig.slo.latencyMs);
            if (modelConfig.tuner.kind !== m.tuning.kind)
              log(`config reload: ${m.name} tuner.kind changed; restart to apply it`);
            // A model under an online tuner keeps the tuner's plan; static ones take the new file's.
            // Pinned thresholds (admin endpoint) stay on top of either until unpinned.
            const dropped = m.tuning.setStaticPlan(staticPlan(m.manifest, modelConfig));
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
    httpPort,
    grpcPort,
    async close() {
      stopWatching();
      await http.close();
      await grpc.stop(2000);
      await dataPlane.close();
      metrics.close?.();
    },
  };
}
