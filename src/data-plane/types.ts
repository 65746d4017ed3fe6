/**
 * The one internal request/response type both transports speak, so that HTTP and gRPC cannot
 * drift apart: their handlers only convert between their wire format and these types, then call
 * the same `DataPlane`. The wire formats are KServe v2 / Open Inference Protocol: JSON in
 * src/http/, protobuf in src/grpc/grpc_service.proto.
 */
import type { TunerEstimates, TunerSetting } from '../../tuner/tuner.js';
import type { RampUtility } from '../../tuner/ramp-utility.js';
import type { OfframpError } from '../errors.js';
import type { FaultKind } from '../engine/backend.js';
import type { TuningEventLog } from '../engine/tuning-log.js';
import type { WhatIfReport } from '../dashboard/protocol.js';

export type { TuningEventLog, WhatIfReport };

// The fault vocabulary is the executor's; the transports take it from here.
export { FAULT_KINDS, type FaultKind } from '../engine/backend.js';

/** KServe v2 tensor datatypes. */
export const DATATYPES = [
  'BOOL',
  'UINT8',
  'UINT16',
  'UINT32',
  'UINT64',
  'INT8',
  'INT16',
  'INT32',
  'INT64',
  'FP16',
  'FP32',
  'FP64',
  'BYTES',
] as const;
export type Datatype = (typeof DATATYPES)[number];

export type ParameterValue = string | number | boolean;
export type Parameters = Record<string, ParameterValue>;

/**
 * Tensor contents, flattened in row-major order. Transports decode JSON arrays (flattening
 * nested ones), typed protobuf contents, or raw little-endian bytes into one of these; the data
 * plane checks datatype, shape and element count.
 */
export type TensorValues =
  | Float32Array
  | Float64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigUint64Array
  | number[]
  | bigint[]
  | boolean[]
  | string[];

export interface InputTensor {
  name: string;
  /** As sent by the client; validated by the data plane (an unknown datatype is a coded error). */
  datatype: string;
  shape: number[];
  data: TensorValues;
  parameters?: Parameters;
}

export interface RequestedOutput {
  name: string;
  parameters?: Parameters;
}

export interface InferRequest {
  /** Client-chosen id, echoed in the response; the data plane assigns one when absent. */
  id?: string;
  modelName: string;
  modelVersion?: string;
  /**
   * Request parameters. Understood: `priority` (integer ≥ 0; lower value = more urgent, 0 = the
   * default level, as in Triton) and `timeout` (microseconds, as in Triton). Others are ignored.
   */
  parameters: Parameters;
  inputs: InputTensor[];
  /** Outputs to return; absent = all. */
  outputs?: RequestedOutput[];
  /** Aborted when the client goes away (HTTP connection closed, gRPC call cancelled). */
  signal?: AbortSignal;
}

export interface OutputTensor {
  name: string;
  datatype: Datatype;
  shape: number[];
  data: Float32Array | Int32Array | BigInt64Array | string[];
  parameters?: Parameters;
}

export interface InferResponse {
  id: string;
  modelName: string;
  modelVersion: string;
  /**
   * Exit information for the whole request: `early` (every row answered by a ramp),
   * `exit_ramp` (ramp id of the latest row to be answered, -1 = the full model), `exit_depth`
   * (share of the model's compute run before that answer, 0..1), `confidence` (lowest
   * confidence over the rows), `rows`. Per-row values are in the outputs. Queue wait is not
   * reported per response; it is in the `offramp_queue_wait_seconds` metric.
   */
  parameters: Parameters;
  outputs: OutputTensor[];
}

export interface TensorMetadata {
  name: string;
  datatype: Datatype;
  /** -1 for a dimension of any size (the batch). */
  shape: number[];
}

export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
  /** Extras beyond KServe's fields (e.g. class labels), shown over HTTP only. */
  parameters?: Record<string, unknown>;
}

export interface ServerMetadata {
  name: string;
  version: string;
  extensions: string[];
}

/** A ramp's utility at the tuner's last ramp-set check (tuner/ramp-utility.ts). */
export type RampUtilityReport = Omit<RampUtility, 'utilityShare'>;

/** The online tuner's figures (tuner/tuner.ts `TunerEstimates`), as /exits reports them. */
export type TunerEstimatesReport = Omit<TunerEstimates, 'lastUtilities'> & {
  /** The window's estimated savings (`window.estimatedSavings`) as a share of hindsightSavings; null when that is null or ≤ 0. */
  fractionOfHindsight: number | null;
  /** Ramp utilities from the last ramp-set check (empty until one ran). */
  lastUtilities: RampUtilityReport[];
};

/** Who sets the thresholds, and the operator's overrides (admin endpoints). */
export interface TunerReport {
  /** guarded, apparate (online tuners), static or off. */
  kind: TunerSetting;
  /** An online tuner drives the thresholds. */
  online: boolean;
  /** The tuner observes but its changes are not applied (admin pause). */
  paused: boolean;
  /** Ramp id → threshold pinned by an operator (null = never); {} when none. */
  pinned: Record<string, number | null>;
  /** Ramp id → threshold the online tuner wants (applied unless paused or pinned); null without an online tuner. */
  proposed: Record<string, number | null> | null;
  /** null without an online tuner. */
  estimates: TunerEstimatesReport | null;
  /**
   * Share of rows drawn as probes (run to the end, fed to the tuner) in the plan in force: 1 in
   * release mode; in drop mode with an online tuner, `exits.learning_feedback_fraction` while it
   * asks for it (estimates.feedbackDemand `learning`: it learns, or holds its ramps after a window
   * at risk) and `exits.drop_feedback_fraction` otherwise (settled, or idle: nothing pays).
   */
  probeShare: number;
  /**
   * The saved tuner state the model started from (`server.state_dir`, src/engine/tuner-state-file.ts);
   * null when it started as configured (no state dir, no file, or a file that was rejected).
   */
  restored: RestoredReport | null;
}

/** Where a model's tuner state came from at start (TunerReport.restored). */
export interface RestoredReport {
  from: 'file';
  /** When the state was saved (ISO 8601). */
  savedAt: string;
  /** Feedback rows saved with the learned thresholds (0 for a static or off model: pins only). */
  rows: number;
  /**
   * The guard's re-check of the saved thresholds on those rows under the accuracy settings in
   * force: their disagreement there, its upper confidence bound (null under Apparate's rule, which
   * has none) and whether they passed — only then did the tuner start from them. Null when
   * nothing learned was saved. Pins and pause are restored either way.
   */
  recheck: { disagreement: number | null; upperBound: number | null; passed: boolean } | null;
}

/** What `GET /v2/models/{m}/exits` shows: the live exit configuration and window statistics. */
export interface ExitsReport {
  model: string;
  version: string;
  policy: string;
  mode: string;
  tuner: TunerReport;
  /** Active exits' cost (ramp heads, cascade tiers) as a share of the full model's latency (batch size 1). */
  rampOverhead: number;
  /**
   * An agreement-based cascade in front of the model: its tiers, which are exits 0..T−1 in `ramps`
   * (the model's ramp r is exit T + r); null for a plain ramped model.
   */
  cascade: {
    execution: string;
    tiers: {
      exit: number;
      /** Member model files. */
      members: string[];
      rule: string;
      /** As configured: a fixed θ, or "tuned" (the threshold in force is in `ramps`). */
      theta: number | 'tuned';
      /** ms per call of all its members at batch size 1, measured at load. */
      costMs: number;
    }[];
  } | null;
  /** Every exit: a ramp, or (first, with a cascade) a tier. */
  ramps: {
    id: number;
    /** `tier` for a cascade tier, `ramp` for a ramp. */
    kind: 'tier' | 'ramp';
    active: boolean;
    /** null = "never" (the ramp scores but never answers). */
    threshold: number | null;
    computeBefore: number;
    /** Why the ramp is out of service (its head failed to load or to run); null while it can serve. A disabled ramp is never active. */
    disabled: string | null;
    exitRate: number;
    agreement: number | null;
  }[];
  window: {
    size: number;
    capacity: number;
    disagreement: number | null;
    earlyFraction: number | null;
    /**
     * 1 − Σ exit_rate_k · L_k / L_full from this window's exit rates, L_k being the profiled latency
     * to answer at exit k (the final layer included), at batch size 1.
     */
    estimatedSavings: number;
  };
}

/** What the admin endpoints answer: the tuner section and the thresholds in force. */
export interface TunerAdminReport {
  model: string;
  version: string;
  tuner: TunerReport;
  /** Ramp id → threshold of every ramp in the exit plan in force (null = never). */
  thresholds: Record<string, number | null>;
}

/** What `POST /v2/models/{m}/admin/faults` answers: the fault injected and where. */
export interface FaultInjectionReport {
  model: string;
  version: string;
  fault: FaultKind;
  /** Index of the worker it went to. */
  worker: number;
  /** The pool saw the worker fail before answering (a crash); false for a hang, seen only by a batch. */
  failed: boolean;
}

/**
 * Operator controls over a model's exit plan (`/v2/models/{m}/admin/...`, token-checked by the
 * transport). Each answers the state after the change; unknown models throw as `exits` does.
 */
export interface AdminPlane {
  tunerState(name: string, version?: string): TunerAdminReport;
  /** Throws OFFRAMP_TUNER_NOT_ONLINE for a model without an online tuner. */
  pauseTuner(name: string, version?: string): TunerAdminReport;
  /** Throws OFFRAMP_TUNER_NOT_ONLINE for a model without an online tuner. */
  resumeTuner(name: string, version?: string): TunerAdminReport;
  /** Pins these ramps' thresholds (null = never); throws OFFRAMP_INVALID_ADMIN_REQUEST for an unknown ramp or a threshold the policy cannot take. */
  pinThresholds(
    name: string,
    version: string | undefined,
    thresholds: ReadonlyMap<number, number | null>,
  ): TunerAdminReport;
  /** Drops every pin. */
  unpinThresholds(name: string, version?: string): TunerAdminReport;
  /**
   * Crashes or hangs one executor worker of the model (`server.fault_injection` only; throws
   * OFFRAMP_FAULT_INJECTION_DISABLED otherwise, OFFRAMP_INVALID_ADMIN_REQUEST for a worker that is
   * not there or not running).
   */
  injectFault(
    name: string,
    version: string | undefined,
    fault: FaultKind,
    worker: number | undefined,
  ): Promise<FaultInjectionReport>;
}

export interface DataPlane {
  /** The process is up (liveness). */
  live(): boolean;
  /** Every model is loaded and ready (a worker takes its batches), and the server takes requests (readiness). */
  ready(): boolean;
  serverMetadata(): ServerMetadata;
  /** Throws OfframpError OFFRAMP_MODEL_NOT_FOUND / OFFRAMP_MODEL_VERSION_NOT_FOUND for unknown ones. */
  modelReady(name: string, version?: string): boolean;
  /** Why `modelReady` is false (e.g. its executor workers restart, or failed for good); null when ready. */
  modelNotReadyReason(name: string, version?: string): string | null;
  modelMetadata(name: string, version?: string): ModelMetadata;
  exits(name: string, version?: string): ExitsReport;
  /** Rejects with an OfframpError (src/errors.ts) for every expected failure. */
  infer(request: InferRequest): Promise<InferResponse>; /**
   * Whether the model can take a request now, asked by the transports before they read and parse
   * its body, so a server under overload spends nothing on requests it would refuse: the refusal
   * (OFFRAMP_QUEUE_FULL, OFFRAMP_OVERLOADED, …) to answer at once, or null to go on. Null too for
   * what `infer` reports itself (an unknown model, a server not ready). See ModelRunner.admission.
   */
  admission(name: string, version?: string): OfframpError | null;
  /**
   * What the model's tuner would choose at accuracy budget `budget` on the current feedback
   * window, and how that and the thresholds in force do there (tuner/what-if.ts); keyed by exit
   * id. Throws OFFRAMP_INVALID_WHAT_IF_BUDGET unless 0 < budget ≤ 0.5, OFFRAMP_WHAT_IF_NO_FEEDBACK
   * while the window holds no row it can judge. Computed on the caller's thread.
   */
  whatIf(name: string, version: string | undefined, budget: number): WhatIfReport;
  /**
   * The model's tuning events (tuner and operator; src/engine/tuning-log.ts) numbered after `seq`
   * (0: every one still kept), oldest first, and the newest number, to pass as `seq` next time.
   */
  tuningEvents(name: string, version: string | undefined, seq: number): TuningEventLog;
}
