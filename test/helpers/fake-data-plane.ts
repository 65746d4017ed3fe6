/**
 * A DataPlane with no model and no engine, for testing a transport (HTTP, gRPC) on its own: it
 * serves the models it is given, answers unknown names and versions with the coded errors the
 * real data plane uses, records every request `infer` receives, and answers with `inferImpl`,
 * which a test replaces to fail, stall or echo.
 */
import type {
  DataPlane,
  ExitsReport,
  InferRequest,
  InferResponse,
  ModelMetadata,
  ServerMetadata,
  TuningEventLog,
  WhatIfReport,
} from '../../src/data-plane/types.js';
import { OfframpError } from '../../src/errors.js';

export interface FakeModel {
  /** `name` is the model's name; `versions` the versions it is served in. */
  readonly metadata: ModelMetadata;
  /** What `exits` answers; `exits` throws for a model without one. */
  readonly exits?: ExitsReport;
  /** What `whatIf` answers (with the budget asked for); `whatIf` throws for a model without one. */
  readonly whatIf?: WhatIfReport;
}

export interface FakeDataPlaneOptions {
  readonly models: readonly FakeModel[];
  readonly extensions?: readonly string[];
  /** The initial `inferImpl`. */
  readonly infer: (request: InferRequest) => Promise<InferResponse>;
}

export class FakeDataPlane implements DataPlane {
  isLive = true;
  isReady = true;
  modelIsReady = true;
  /** Every request `infer` received for a served model, in order. */
  requests: InferRequest[] = [];
  /** What `infer` does for a served model; replace per test. */
  inferImpl: (request: InferRequest) => Promise<InferResponse>;
  private readonly models: ReadonlyMap<string, FakeModel>;
  private readonly extensions: string[];

  constructor(options: FakeDataPlaneOptions) {
    this.models = new Map(options.models.map((m) => [m.metadata.name, m]));
    this.extensions = [...(options.extensions ?? [])];
    this.inferImpl = options.infer;
  }

  live(): boolean {
    return this.isLive;
  }
  ready(): boolean {
    return this.isReady;
  }
  serverMetadata(): ServerMetadata {
    return { name: 'offramp', version: '0.1.0', extensions: [...this.extensions] };
  }
  /** The model of that name and version (absent: any), or the error the real data plane throws. */
  private model(name: string, version?: string): FakeModel {
    const m = this.models.get(name);
    if (!m) throw new OfframpError('OFFRAMP_MODEL_NOT_FOUND', { model: name });
    if (version !== undefined && !m.metadata.versions.includes(version))
      throw new OfframpError('OFFRAMP_MODEL_VERSION_NOT_FOUND', { model: name, version });
    return m;
  }
  modelReady(name: string, version?: string): boolean {
    return this.modelNotReadyReason(name, version) === null;
  }
  modelNotReadyReason(name: string, version?: string): string | null {
    this.model(name, version);
    return this.modelIsReady ? null : 'the fake model is not ready';
  }
  modelMetadata(name: string, version?: string): ModelMetadata {
    return this.model(name, version).metadata;
  }
  exits(name: string, version?: string): ExitsReport {
    const report = this.model(name, version).exits;
    if (!report) throw new Error(`the fake model '${name}' has no exits report`);
    // A fresh copy each call, as the real data plane builds one: a test may change what it got.
    return structuredClone(report);
  }
  /** What `admission` answers for a served model (null: admitted); replace per test to refuse. */
  admissionImpl: (name: string) => OfframpError | null = () => null;
  admission(name: string, version?: string): OfframpError | null {
    if (!this.models.has(name) || (version !== undefined && !this.model(name).metadata.versions.includes(version)))
      return null;
    return this.admissionImpl(name);
  }
  infer(request: InferRequest): Promise<InferResponse> {
    try {
      this.model(request.modelName, request.modelVersion);
    } catch (err) {
      return Promise.reject(err);
    }
    this.requests.push(request);
    return this.inferImpl(request);
  }
  whatIf(name: string, version: string | undefined, budget: number): WhatIfReport {
    const report = this.model(name, version).whatIf;
    if (!report) throw new Error(`the fake model '${name}' has no what-if report`);
    return { ...structuredClone(report), budget };
  }
  /** Tuning events per model name, oldest first (numbered from 1); a test pushes to them. */
  readonly events = new Map<string, TuningEventLog['events']>();
  tuningEvents(name: string, version: string | undefined, seq: number): TuningEventLog {
    this.model(name, version);
    const events = this.events.get(name) ?? [];
    return { events: events.slice(Math.max(0, seq)), last: events.length };
  }
}
