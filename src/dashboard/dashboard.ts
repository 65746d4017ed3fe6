/**
 * The dashboard's server side, apart from HTTP (src/http/dashboard-plugin.ts serves it): the
 * sampler, the ring buffer of snapshots, the open event streams, and the answers of the API
 * routes. One per server; `close()` at shutdown ends every stream, so that none holds the drain
 * back (an open stream is a request in flight).
 */
import { OfframpError } from '../errors.js';
import type { DashboardConfig } from '../config/index.js';
import type { Metrics } from '../metrics.js';
import { BenchResults, measuredPercentile, predictedFrontier } from './frontier.js';
import type { DashboardInfo, FrontierReport, Snapshot, WhatIfReport } from './protocol.js';
import { DashboardSampler, SAMPLE_INTERVAL_MS } from './sampler.js';
import { SnapshotRing } from './snapshot-ring.js';
import type { DashboardSource } from './source.js';
import { SseStream, type SseSink } from './sse-stream.js';

/** A viewer whose socket stays full this long is dropped (it frees its place under max_viewers). */
const STALL_MS = 30_000;

export interface DashboardOptions {
  source: DashboardSource;
  metrics: Metrics;
  config: DashboardConfig;
  /** offramp's version (DashboardInfo). */
  version: string;
  /** Admin endpoints are configured (server.admin_token): the page's controls can work. */
  adminEnabled: boolean;
  /** The folder of the bundled page (index.html, its assets): `dist/dashboard/` in the package. */
  assetsDir: string;
  /** The package root, which the frontier's results file is named relative to. */
  packageRoot: string;
  /** Default SAMPLE_INTERVAL_MS, the protocol's rate; tests go faster. */
  sampleIntervalMs?: number;
  log?: (line: string) => void;
}

export class Dashboard {
  readonly assetsDir: string;
  private readonly sampler: DashboardSampler;
  private readonly ring: SnapshotRing;
  private readonly streams = new Set<SseStream>();
  private readonly bench: BenchResults;
  private closed = false;

  constructor(private readonly options: DashboardOptions) {
    this.assetsDir = options.assetsDir;
    const intervalMs = options.sampleIntervalMs ?? SAMPLE_INTERVAL_MS;
    this.ring = new SnapshotRing(Math.max(1, Math.ceil((options.config.bufferSeconds * 1000) / intervalMs)));
    this.sampler = new DashboardSampler({
      source: options.source,
      metrics: options.metrics,
      intervalMs,
      onSnapshot: (snapshot) => this.publish(snapshot),
      ...(options.log ? { log: options.log } : {}),
    });
    this.bench = new BenchResults(options.config.resultsDir, options.packageRoot);
  }

  /** Event streams open now. */
  get viewers(): number {
    return this.streams.size;
  }

  /** Readings the sampler has taken: unchanged while nobody watches. */
  get samplesTaken(): number {
    return this.sampler.samplesTaken;
  }

  /** Whether the sampler's timer runs (a stream is open). */
  get sampling(): boolean {
    return this.sampler.running;
  }

  info(): DashboardInfo {
    return {
      version: this.options.version,
      adminEnabled: this.options.adminEnabled,
      sampleIntervalMs: this.sampler.intervalMs,
      bufferSeconds: this.options.config.bufferSeconds,
      models: this.options.source.models(),
    };
  }

  whatIf(model: string, budget: number): WhatIfReport {
    return this.options.source.whatIf(model, budget);
  }

  async frontier(model: string): Promise<FrontierReport> {
    const inputs = this.options.source.frontierInputs(model);
    const percentile = measuredPercentile(inputs.slo.percentile);
    return {
      model,
      slo: { latencyMs: inputs.slo.latencyMs, percentile: inputs.slo.percentile },
      predicted: predictedFrontier(inputs),
      measured: await this.bench.newest(model, percentile),
    };
  }

  /**
   * Opens a viewer's stream on `sink`: the ring buffer after `lastEventId` (all of it when
   * undefined), then every new snapshot. Refuses, before `begin` and before touching the sink,
   * with OFFRAMP_DASHBOARD_FULL over server.dashboard.max_viewers and OFFRAMP_SHUTTING_DOWN once
   * closed; `begin` then writes the response head.
   */
  openStream(sink: SseSink, lastEventId: number | undefined, begin: () => void): void {
    if (this.closed) throw new OfframpError('OFFRAMP_SHUTTING_DOWN');
    const limit = this.options.config.maxViewers;
    if (this.streams.size >= limit) throw new OfframpError('OFFRAMP_DASHBOARD_FULL', { limit });
    begin();
    const release = this.sampler.watch();
    const stream: SseStream = new SseStream(sink, this.ring, lastEventId, {
      retryMs: this.sampler.intervalMs,
      stallMs: STALL_MS,
      onClose: () => {
        this.streams.delete(stream);
        release();
      },
    });
    if (!stream.closed) this.streams.add(stream);
  }

  /**
   * Ends every open stream; the pages reconnect with their Last-Event-ID and resume. For tests
   * of that resume, and for shutdown.
   */
  dropStreams(): void {
    for (const stream of [...this.streams]) stream.end();
  }

  /** Shutdown: sampling stops for good, every stream ends, new ones are refused. */
  close(): void {
    this.closed = true;
    this.sampler.stop();
    this.dropStreams();
  }

  private publish(snapshot: Snapshot): void {
    this.ring.push({
      seq: snapshot.seq,
      text: `id: ${snapshot.seq}\nevent: snapshot\ndata: ${JSON.stringify(snapshot)}\n\n`,
    });
    for (const stream of this.streams) stream.pump();
  }
}
