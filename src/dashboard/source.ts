/**
 * What the dashboard reads from the engine, as one small interface: the server builds it from
 * its EngineDataPlane (engineDashboardSource), tests may give their own. Every method names a
 * model as it is served; an unknown one throws the data plane's coded not-found error.
 */
import type { ExitsReport } from '../data-plane/types.js';
import type { EngineDataPlane, ServedModel } from '../data-plane/engine-data-plane.js';
import { BATCH_SIZE_BUCKETS } from '../metrics.js';
import type { FrontierInputs } from './frontier.js';
import type { DashboardModelInfo, TuningEvent, WhatIfReport } from './protocol.js';

export interface DashboardSource {
  /** Every model served, with its settings as they are now (a reload may change the SLO or budget). */
  models(): DashboardModelInfo[];
  /** The exits report (`GET /v2/models/{m}/exits`): thresholds, pins, window, tuner estimates. */
  exits(model: string): ExitsReport;
  /** Requests waiting for a batch, and batches running, now. */
  queue(model: string): { queued: number; running: number };
  /**
   * The model's tuning events numbered after `afterSeq`, oldest first, and the number of the
   * newest event there is (`afterSeq` when none is newer): the cursor for the next call.
   */
  eventsSince(model: string, afterSeq: number): { events: TuningEvent[]; last: number };
  /** What the tuner would choose at another accuracy budget (throws a coded error it cannot be computed). */
  whatIf(model: string, budget: number): WhatIfReport;
  /** What the predicted frontier is computed from (src/dashboard/frontier.ts). */
  frontierInputs(model: string): FrontierInputs;
}

/**
 * The DashboardSource of a running EngineDataPlane.
 *
 * @param workers executor workers per model (server.workers, read once at start)
 */
export function engineDashboardSource(plane: EngineDataPlane, workers: number): DashboardSource {
  return {
    models: () => plane.servedModels.map(modelInfo),
    exits: (model) => plane.exits(model),
    queue: (model) => {
      const { runner } = plane.model(model);
      return { queued: runner.queuedRequests, running: runner.runningBatches };
    },
    frontierInputs: (model) => {
      const m = plane.model(model);
      const report = plane.exits(model);
      return {
        manifest: m.manifest,
        plan: m.runner.exitPlan,
        workers,
        batching: m.config.batching,
        slo: m.config.slo,
        exitRates: new Map(report.ramps.filter((r) => r.active).map((r) => [r.id, r.exitRate])),
      };
    },
    eventsSince: (model, afterSeq) => plane.tuningEvents(model, undefined, afterSeq),
    whatIf: (model, budget) => plane.whatIf(model, undefined, budget),
  };
}

/** A served model as the dashboard describes it (DashboardInfo.models). */
export function modelInfo(m: ServedModel): DashboardModelInfo {
  const plan = m.runner.exitPlan;
  // Exits 0..T−1 are the cascade's tiers; ramp r is exit T + r (labelled by its own id r).
  const tiers = m.cascade?.length ?? 0;
  return {
    name: m.name,
    version: m.version,
    policy: plan.policy,
    mode: plan.mode,
    tunerKind: m.tuning.kind,
    online: m.tuning.online,
    slo: { latencyMs: m.config.slo.latencyMs, percentile: m.config.slo.percentile },
    accuracy: {
      budget: m.config.accuracy.budget,
      confidence: m.config.accuracy.confidence,
      window: m.config.accuracy.window,
    },
    // The manifest served is the exits view: a cascade's tiers first, then the ramps, by exit id
    // (the metrics' `exit` label and the admin endpoints' ramp ids). Labels stay short: a legend
    // lists every exit.
    exits: m.manifest.ramps.map((r) =>
      r.id < tiers
        ? { key: String(r.id), kind: 'tier' as const, label: `tier ${r.id}` }
        : { key: String(r.id), kind: 'ramp' as const, label: `ramp ${r.id - tiers}` },
    ),
    batchSizeBuckets: [...BATCH_SIZE_BUCKETS],
  };
}
