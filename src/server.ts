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
import { createMetrics, FINAL_EXIT, type Metrics } from './metrics.js';
import type { EngineObserver } from './engine/model-runner.js';
import { staticPlan } from './engine/exit-plan.js';
import { estimatedSavings, rampOverheadShare } from '../tuner/latency-model.js';
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
  };
}

/** Refreshes the gauges that describe a model's exit state from its plan and feedback window. */
function updateGauges(metrics: Metrics, m: ServedModel): void {
  const plan = m.runner.exitPlan;
  const stats = m.runner.feedback.stats();
  const active = plan.ramps.map((r) => r.id);
  for (const ramp of m.manifest.ramps) {
    const entry = plan.ramps.find((r) => r.id === ramp.id);
    const labels = { model: m.name, ramp: String(ramp.id) };
    metrics.rampActive.set(labels, entry ? 1 : 0);
    // "never" has no finite value; 1 is above any confidence and is documented as such.
    metrics.rampThreshold.set(labels, entry && entry.threshold !== null ? entry.threshold : 1);
  }
  if (stats.disagreement !== null) metrics.windowDisagreement.set({ model: m.name }, stats.disagreement);
  if (stats.earlyFraction !== null) metrics.windowEarlyExitFraction.set({ model: m.name }, stats.earlyFraction);
  const rates = new Map([...stats.perRamp].map(([id, s]) => [id, stats.size > 0 ? s.exits / stats.size : 0]));
  // Per-row time to answer, read from the profile at batch size 1.
  metrics.estimatedLatencySavings.set({ model: m.name }, estimatedSavings(m.manifest.profile, active, rates, 1));
  metrics.rampOverheadShare.set({ model: m.name }, rampOverheadShare(m.manifest.profile, active, 1));
}

export async function startServer(config: ServingConfig, options: ServerOptions): Promise<RunningServer> {
  const log = options.log ?? (() => undefined);
  const metrics = createMetrics();
  const dataPlane = await EngineDataPlane.load(config, { version: options.version, observerFor: (model) => observerFor(metrics, model) });
  for (const m of dataPlane.servedModels) {
    const plan = m.runner.exitPlan;
    const ramps = plan.ramps.map((r) => `${r.id}@${r.threshold === null ? 'never' : r.threshold.toFixed(3)}`).join(' ') || 'none';
    log(`model ${m.name} v${m.version} from ${m.dir}: ${m.manifest.ramps.length} ramps, active ${ramps} (${plan.policy}, ${plan.mode}, tuner ${m.config.tuner.kind})`);
  }

  const http = createHttpServer({ dataPlane, metrics, maxBodyBytes: config.server.maxBodyBytes, logger: options.accessLog ?? false });
  await http.listen({ host: config.server.host, port: config.server.httpPort });
  const address = http.server.address();
  const httpPort = typeof address === 'object' && address ? address.port : config.server.httpPort;
  const grpc = createGrpcServer({ dataPlane, maxMessageBytes: config.server.maxBodyBytes });
  const grpcPort = await grpc.start(config.server.host, config.server.grpcPort);
  log(`KServe v2 HTTP on ${config.server.host}:${httpPort}, gRPC on ${config.server.host}:${grpcPort}; metrics at /metrics`);

  const gauges = setInterval(() => {
    for (const m of dataPlane.servedModels) updateGauges(metrics, m);
  }, 1000);
  gauges.unref();
  for (const m of dataPlane.servedModels) updateGauges(metrics, m);

  // Reload: exit settings, thresholds, batching and SLO apply from the next batch; what needs a
  // restart (ports, workers, the set of models, their paths) is reported and left as it is.
  const stopWatching = options.configPath
    ? watchServingConfig(
        options.configPath,
        (next) => {
          const restart = ['httpPort', 'grpcPort', 'host', 'workers', 'intraOpThreads', 'maxBodyBytes'] as const;
          for (const key of restart) if (next.server[key] !== config.server[key]) log(`config reload: server.${key} changed; restart to apply it`);
          for (const m of dataPlane.servedModels) if (!next.models.some((x) => x.name === m.name)) log(`config reload: model ${m.name} is no longer listed; restart to stop serving it`);
          for (const modelConfig of next.models) {
            const m = dataPlane.servedModels.find((x) => x.name === modelConfig.name);
            if (!m) {
              log(`config reload: model ${modelConfig.name} is new; restart to serve it`);
              continue;
            }
            if (modelConfig.path !== m.config.path) log(`config reload: ${m.name} path changed; restart to load ${modelConfig.path}`);
            m.runner.reconfigure(modelConfig.batching, modelConfig.slo.latencyMs);
            // A model under an online tuner keeps the tuner's plan; static ones take the new file's.
            if (!m.tuning) m.runner.setExitPlan(staticPlan(m.manifest, modelConfig));
            m.config = modelConfig;
            log(`config reload: ${m.name} exit plan now ${m.runner.exitPlan.ramps.map((r) => `${r.id}@${r.threshold ?? 'never'}`).join(' ') || 'none'}`);
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
      clearInterval(gauges);
      await http.close();
      await grpc.stop(2000);
      await dataPlane.close();
      metrics.close?.();
    },
  };
}
