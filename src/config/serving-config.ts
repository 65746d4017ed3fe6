/**
 * The serving config: parsed once at the edge, validated, frozen, passed down, so no layer
 * below re-reads or re-checks it and a reload swaps one whole object.
 *
 * This is the only module that reads `process.env`:
 * - `OFFRAMP_CONFIG`       path of the SLO file (when no path is given explicitly);
 * - `OFFRAMP_HTTP_PORT`    overrides server.http_port;
 * - `OFFRAMP_GRPC_PORT`    overrides server.grpc_port;
 * - `OFFRAMP_ADMIN_TOKEN`  overrides server.admin_token.
 * An empty variable counts as unset. Overrides are validated with the file, against the same
 * bounds; a bad one is reported as `environment: OFFRAMP_HTTP_PORT: ...`.
 *
 * Every problem is reported at once, each as `file:line: field.path: value and what is allowed`,
 * in one OFFRAMP_CONFIG_INVALID error.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { LineCounter, isNode, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import { OfframpError } from '../errors.js';
import { packageRoot } from './package-root.js';
import type { ExitMode, ExitPolicyKind } from '../../tuner/exit-policy.js';
import type { TunerSetting, TunerStart } from '../../tuner/tuner.js';
import {
  modelSchema,
  sloConfigSchema,
  type BatchDelay,
  type CascadeExecution,
  type CascadeRule,
  type ModelFile,
  type SloConfigFile,
} from './schema.js';

export interface ServerConfig {
  readonly httpPort: number;
  readonly grpcPort: number;
  readonly host: string;
  readonly maxBodyBytes: number;
  /** Executor worker threads. */
  readonly workers: number;
  /** onnxruntime intra-op threads per worker. */
  readonly intraOpThreads: number;
  /** null: admin endpoints are disabled. */
  readonly adminToken: string | null;
  /** Longest graceful drain on SIGTERM/SIGINT before the process gives up and exits 1. */
  readonly drainTimeoutMs: number;
  /** A batch running longer on an executor worker means the worker hangs (src/engine/executor/worker-pool.ts). */
  readonly workerTimeoutMs: number;
  /** The admin fault-injection endpoint is enabled. */
  readonly faultInjection: boolean;
  /** Absolute path of the folder tuner states are saved in and restored from (src/engine/tuner-state-file.ts); null: none. */
  readonly stateDir: string | null;
  readonly dashboard: DashboardConfig;
}

/** The live tuning dashboard (src/dashboard/, src/http/dashboard-plugin.ts). */
export interface DashboardConfig {
  /** false: the plugin is not registered, and /dashboard is an unknown route. */
  readonly enabled: boolean;
  /** How far back the snapshot ring buffer reaches. */
  readonly bufferSeconds: number;
  /** Event streams open at once at most. */
  readonly maxViewers: number;
  /** Absolute path of the bench results folder the frontier's measured curves come from. */
  readonly resultsDir: string;
}

export interface SloConfig {
  readonly latencyMs: number;
  /** In (0, 100): 95 means p95. */
  readonly percentile: number;
}

export interface AccuracyConfig {
  /** Largest allowed disagreement with the full model over the window, in (0, 0.5]. */
  readonly budget: number;
  /** 1 − δ for the guarded tuner's upper bound. */
  readonly confidence: number;
  /** Requests per measurement window. */
  readonly window: number;
}

export interface ExitsConfig {
  readonly policy: ExitPolicyKind;
  readonly mode: ExitMode;
  readonly maxRamps: number;
  /** Largest total ramp cost, as a fraction of full-model latency. */
  readonly rampBudget: number;
  /** For the patience policy: consecutive ramps that must agree. */
  readonly patience: number;
  /** Drop mode: share of rows drawn as probes at batch start; probes always run to the end (the tuner learns from them). */
  readonly dropFeedbackFraction: number;
  /** Drop mode with an online tuner: the probe share while the tuner learns (src/engine/live-tuning.ts). */
  readonly learningFeedbackFraction: number;
  /** Static thresholds by ramp id; a ramp not listed (or null: all) starts at "never". */
  readonly thresholds: Readonly<Record<number, number>> | null;
}

export interface TunerConfig {
  readonly kind: TunerSetting;
  readonly intervalBatches: number;
  /** Where the guarded tuner's thresholds start (src/engine/exit-plan.ts). */
  readonly start: TunerStart;
}

/**
 * A model's dynamic-batching limits, as src/engine/scheduler.ts applies them. Defined here, the
 * lowest layer that holds it: the engine already takes its settings from the config types, and
 * the config never imports from the engine.
 */
export interface BatchingConfig {
  /** Rows per batch at most; a request's rows may span several batches. */
  readonly maxBatchSize: number;
  /**
   * work-conserving: a batch waits to grow only while every worker is busy; fixed: it waits up to
   * `maxQueueDelayMs` even on an idle worker. Both never past the most urgent deadline.
   */
  readonly delay: BatchDelay;
  /** With delay fixed: longest wait for a fuller batch, counted from the oldest queued request's arrival. */
  readonly maxQueueDelayMs: number;
  /** Requests queued at most; one more is rejected (OFFRAMP_QUEUE_FULL). */
  readonly maxQueueSize: number;
  /** Once as many rows as the largest of these are queued, a batch of that size goes at once; empty: any size. */
  readonly preferredBatchSizes: readonly number[];
}

/** One agreement-based cascade tier (src/model/cascade.ts). */
export interface CascadeTierConfig {
  /** Absolute paths of the member models (ONNX files or prepared model directories). */
  readonly members: readonly string[];
  readonly rule: CascadeRule;
  /** Fixed threshold on the rule's score, or 'tuned': the online tuner chooses it. */
  readonly theta: number | 'tuned';
}

export interface CascadeConfig {
  readonly tiers: readonly CascadeTierConfig[];
  readonly execution: CascadeExecution;
}

export interface ModelConfig {
  /** URL-safe, unique in the config. */
  readonly name: string;
  /** Absolute path of the prepared model directory. */
  readonly path: string;
  readonly version: string;
  readonly slo: SloConfig;
  readonly accuracy: AccuracyConfig;
  readonly exits: ExitsConfig;
  readonly tuner: TunerConfig;
  readonly batching: BatchingConfig;
  /** Agreement-based cascade tiers in front of the model; null: none. */
  readonly cascade: CascadeConfig | null;
}

export interface ServingConfig {
  /** Where it came from: the file path as given, or DEFAULT_CONFIG_SOURCE. */
  readonly source: string;
  readonly server: ServerConfig;
  readonly models: readonly ModelConfig[];
}

/** One thing wrong with a config. */
export interface ConfigProblem {
  /** The file, or `environment` for an environment variable. */
  readonly source: string;
  /** 1-based line in the file, when known. */
  readonly line?: number;
  /** `models[0].batching.max_batch_size`, or the environment variable's name; empty for the whole file. */
  readonly path: string;
  /** The bad value and what is allowed. */
  readonly message: string;
}

/** Environment variables, as `process.env` holds them. */
export type Env = Readonly<Record<string, string | undefined>>;

export interface ParseOptions {
  /** Folder relative model paths resolve against; default: the folder of `source`. */
  baseDir?: string;
  /** Default: `process.env`. */
  env?: Env | undefined;
}

export const DEFAULT_CONFIG_SOURCE = '<built-in default>';
export const ENV_SOURCE = 'environment';
/**
 * What `offramp serve` with no config serves: the bundled image and text models. The image model
 * uses static thresholds calibrated offline by `prepare`, so early exits happen from the first
 * request. The text model uses the guarded online tuner: its bootstrap texts come from the split
 * its backbone was trained on, where static thresholds are too loose for new mail (README, the
 * bundled text model). Its SLO is wider: one email is ~30 ms of compute at batch 1 on one core,
 * where an image is ~1 ms.
 */
export const BUNDLED_MODELS = Object.freeze([
  Object.freeze({
    name: 'fmnist-resnet',
    path: 'models/fmnist-resnet',
    tuner: Object.freeze({ kind: 'static' as const }),
  }),
  Object.freeze({
    name: 'spam-bert',
    path: 'models/spam-bert',
    slo: Object.freeze({ latency_ms: 250 }),
  }),
]);

/** Environment overrides, by the `server` key they replace. */
const ENV_OVERRIDES = [
  { variable: 'OFFRAMP_HTTP_PORT', key: 'http_port', integer: true },
  { variable: 'OFFRAMP_GRPC_PORT', key: 'grpc_port', integer: true },
  { variable: 'OFFRAMP_ADMIN_TOKEN', key: 'admin_token', integer: false },
] as const;

/**
 * Parses and validates an SLO file's text. `source` names the file in messages (and, unless
 * `options.baseDir` says otherwise, its folder is where relative model paths start).
 * Throws OfframpError OFFRAMP_CONFIG_INVALID listing every problem.
 */
export function parseServingConfig(text: string, source: string, options: ParseOptions = {}): ServingConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  // Only the first syntax error: the parser's later ones follow from it (an unclosed bracket is
  // also reported as a bad indent and a flow map that never ends), so they would bury the cause.
  const syntaxError = doc.errors[0];
  if (syntaxError) {
    const { line, col } = lineCounter.linePos(syntaxError.pos[0]);
    throw configInvalid([
      { source: `${source}:${line}:${col}`, path: '', message: `malformed YAML: ${syntaxError.message}` },
    ]);
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (err) {
    throw configInvalid([{ source, path: '', message: `malformed YAML: ${(err as Error).message}` }]);
  }
  return validate(
    data,
    source,
    options.baseDir ?? dirname(resolve(source)),
    options.env ?? process.env,
    doc,
    lineCounter,
  );
}

/** Reads and parses an SLO file. Throws OFFRAMP_CONFIG_INVALID when it cannot be read or is invalid. */
export async function loadServingConfig(path: string, options: { env?: Env | undefined } = {}): Promise<ServingConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw configInvalid([{ source: path, path: '', message: `cannot read the config file (${reason})` }], err);
  }
  return parseServingConfig(text, path, { env: options.env });
}

/**
 * The embedded default: every field at its default, serving the bundled models
 * (models/fmnist-resnet and models/spam-bert in the package), with environment overrides applied.
 */
export function defaultServingConfig(env: Env = process.env): ServingConfig {
  return validate({}, DEFAULT_CONFIG_SOURCE, packageRoot(), env);
}

/** The config file `OFFRAMP_CONFIG` names, if any. */
export function configPathFromEnv(env: Env = process.env): string | undefined {
  return env.OFFRAMP_CONFIG || undefined;
}

/** The config to serve: the file at `path`, else the one `OFFRAMP_CONFIG` names, else the default. */
export async function resolveServingConfig(
  options: { path?: string | undefined; env?: Env | undefined } = {},
): Promise<ServingConfig> {
  const env = options.env ?? process.env;
  const path = options.path ?? configPathFromEnv(env);
  return path === undefined ? defaultServingConfig(env) : loadServingConfig(path, { env });
}

/** One line per problem: `slo.yaml:12: models[0].batching.max_batch_size: 0 is out of range (1..1024)`. */
export function formatConfigProblem(p: ConfigProblem): string {
  const where = p.line === undefined ? p.source : `${p.source}:${p.line}`;
  return p.path === '' ? `${where}: ${p.message}` : `${where}: ${p.path}: ${p.message}`;
}

// ---------------------------------------------------------------------------------------------

function configInvalid(problems: ConfigProblem[], cause?: unknown): OfframpError<'OFFRAMP_CONFIG_INVALID'> {
  const lines = [...new Set(problems.map(formatConfigProblem))];
  return new OfframpError(
    'OFFRAMP_CONFIG_INVALID',
    { problems: lines.join('\n') },
    { cause, details: { issues: problems } },
  );
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function validate(
  data: unknown,
  source: string,
  baseDir: string,
  env: Env,
  doc?: Document,
  lineCounter?: LineCounter,
): ServingConfig {
  // Environment overrides go in before validation, so that they meet the same bounds and
  // cross-field rules (two ports the same) as the file; problems with them name the variable.
  const fromEnv = new Map<string, string>();
  if (isMapping(data) && (data.server === undefined || isMapping(data.server))) {
    const server: Record<string, unknown> = { ...data.server };
    for (const o of ENV_OVERRIDES) {
      const text = env[o.variable];
      if (text === undefined || text === '') continue;
      server[o.key] = o.integer && /^\s*[+-]?\d+\s*$/.test(text) ? Number(text) : text;
      fromEnv.set(o.key, o.variable);
    }
    if (fromEnv.size > 0) data = { ...data, server };
  }

  const parsed = sloConfigSchema.safeParse(data, { reportInput: true });
  if (!parsed.success) {
    const problems = parsed.error.issues.flatMap((issue) => toProblems(issue, source, fromEnv, doc, lineCounter));
    throw configInvalid(problems);
  }
  return deepFreeze(toServingConfig(parsed.data, source, baseDir));
}

function toProblems(
  issue: z.core.$ZodIssue,
  source: string,
  fromEnv: Map<string, string>,
  doc?: Document,
  lineCounter?: LineCounter,
): ConfigProblem[] {
  const at = (path: readonly PropertyKey[], message: string): ConfigProblem => {
    const envVariable = path.length === 2 && path[0] === 'server' ? fromEnv.get(String(path[1])) : undefined;
    if (envVariable !== undefined) return { source: ENV_SOURCE, path: envVariable, message };
    const line = doc && lineCounter ? lineOf(doc, lineCounter, path) : undefined;
    return { source, ...(line === undefined ? {} : { line }), path: formatPath(path), message };
  };
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => at([...issue.path, key], issue.message));
    case 'invalid_key':
      return [at(issue.path, issue.issues[0]?.message ?? issue.message)];
    default:
      return [at(issue.path, issue.message)];
  }
}

/** `models[0].batching.max_batch_size`; keys that are not identifiers are quoted: `thresholds["0"]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else if (typeof key === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) out += out === '' ? key : `.${key}`;
    else out += `[${JSON.stringify(String(key))}]`;
  }
  return out;
}

/** Line of the node at `path`, or of its nearest ancestor present in the file. */
function lineOf(doc: Document, lineCounter: LineCounter, path: readonly PropertyKey[]): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node: unknown = n === 0 ? doc.contents : doc.getIn(path.slice(0, n) as unknown[], true);
    if (isNode(node) && node.range) return lineCounter.linePos(node.range[0]).line;
  }
  return undefined;
}

function toServingConfig(file: SloConfigFile, source: string, baseDir: string): ServingConfig {
  const s = file.server;
  const models =
    file.models?.map((m) => toModelConfig(m, baseDir)) ??
    // Left out: the bundled models, which live in the package, not next to the config file.
    BUNDLED_MODELS.map((m) => toModelConfig(modelSchema.parse(m), packageRoot()));
  return {
    source,
    server: {
      httpPort: s.http_port,
      grpcPort: s.grpc_port,
      host: s.host,
      maxBodyBytes: s.max_body_bytes,
      workers: s.workers,
      intraOpThreads: s.intra_op_threads,
      adminToken: s.admin_token,
      drainTimeoutMs: s.drain_timeout_ms,
      workerTimeoutMs: s.worker_timeout_ms,
      faultInjection: s.fault_injection,
      stateDir: s.state_dir === null ? null : resolve(baseDir, s.state_dir),
      dashboard: {
        enabled: s.dashboard.enabled,
        bufferSeconds: s.dashboard.buffer_seconds,
        maxViewers: s.dashboard.max_viewers,
        resultsDir:
          s.dashboard.results_dir === null
            ? join(packageRoot(), 'bench', 'results')
            : resolve(baseDir, s.dashboard.results_dir),
      },
    },
    models,
  };
}

function toModelConfig(m: ModelFile, baseDir: string): ModelConfig {
  const thresholds =
    m.exits.thresholds === null
      ? null
      : Object.fromEntries(Object.entries(m.exits.thresholds).map(([k, v]) => [Number(k), v]));
  return {
    name: m.name,
    path: resolve(baseDir, m.path),
    version: m.version,
    slo: { latencyMs: m.slo.latency_ms, percentile: m.slo.percentile },
    accuracy: { budget: m.accuracy.budget, confidence: m.accuracy.confidence, window: m.accuracy.window },
    exits: {
      policy: m.exits.policy,
      mode: m.exits.mode,
      maxRamps: m.exits.max_ramps,
      rampBudget: m.exits.ramp_budget,
      patience: m.exits.patience,
      dropFeedbackFraction: m.exits.drop_feedback_fraction,
      learningFeedbackFraction: m.exits.learning_feedback_fraction,
      thresholds,
    },
    tuner: { kind: m.tuner.kind, intervalBatches: m.tuner.interval_batches, start: m.tuner.start },
    batching: {
      maxBatchSize: m.batching.max_batch_size,
      delay: m.batching.delay,
      maxQueueDelayMs: m.batching.max_queue_delay_ms,
      maxQueueSize: m.batching.max_queue_size,
      preferredBatchSizes: [...m.batching.preferred_batch_sizes],
    },
    cascade: m.cascade && {
      tiers: m.cascade.tiers.map((t) => ({
        members: t.members.map((p) => resolve(baseDir, p)),
        rule: t.rule,
        theta: t.theta ?? (m.tuner.kind === 'guarded' || m.tuner.kind === 'apparate' ? 'tuned' : 1),
      })),
      execution: m.cascade.execution,
    },
  };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
