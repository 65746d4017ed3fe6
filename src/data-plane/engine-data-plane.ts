/**
 * The DataPlane the transports call: loads each configured prepared model into a worker pool
 * and a ModelRunner, validates requests once, and shapes answers (with exit information) into
 * the internal response type. Also the AdminPlane: pause/resume of the online tuner and pinned
 * thresholds (src/engine/live-tuning.ts), validated here against the model's ramps and policy.
 */
import { join, resolve } from 'node:path';
import { OfframpError } from '../errors.js';
import type { ModelConfig, ServingConfig } from '../config/index.js';
import { readManifest, type PreparedManifest } from '../model/manifest.js';
import { cascadeExitsView, type TierEntry, type TierExecution, type TierSpec } from '../model/cascade.js';
import { profileTiers } from '../engine/executor/cascade-runner.js';
import { rampHeadProblems } from '../model/ramp-head.js';
import type { ExecutionBackend, FaultKind } from '../engine/backend.js';
import { WorkerPool } from '../engine/executor/worker-pool.js';
import type { WindowStats } from '../engine/feedback.js';
import { ModelRunner, type EngineObserver } from '../engine/model-runner.js';
import { servingPlan } from '../engine/exit-plan.js';
import { attachTuner, thresholdProblem, type LiveTuning, type ThresholdMap } from '../engine/live-tuning.js';
import { deepestAnswer, type RowAnswer } from '../engine/request.js';
import { estimatedSavings, rampOverheadShare } from '../../tuner/latency-model.js';
import { whatIf, type WhatIfFigures } from '../../tuner/what-if.js';
import type { TuningEventLog } from '../engine/tuning-log.js';
import { loadTunerState, modelIdentity, TUNER_STATE_FORMAT, tunerStatePath } from '../engine/tuner-state-file.js';
import { TunerStateSaver } from '../engine/tuner-state-saver.js';
import type { WhatIfReport } from '../dashboard/protocol.js';
import { convertInput, inputMetadata, requestOptions } from './convert-input.js';
import { convertTextInput } from './convert-text-input.js';
import { TextTokenizer } from '../model/text-tokenizer.js';
import type {
  AdminPlane,
  DataPlane,
  ExitsReport,
  FaultInjectionReport,
  InferRequest,
  InferResponse,
  ModelMetadata,
  OutputTensor,
  ServerMetadata,
  TensorMetadata,
  TunerAdminReport,
  TunerReport,
} from './types.js';

export const SERVER_NAME = 'offramp';

export interface ServedModel {
  name: string;
  version: string;
  dir: string;
  config: ModelConfig;
  /** What the engine serves from: the prepared manifest, or a cascade's exits view (src/model/cascade.ts). */
  manifest: PreparedManifest;
  /** The prepared model's own manifest (the same object as `manifest` unless a cascade stands in front). */
  prepared: PreparedManifest;
  /** A cascade's tiers (exits 0..T−1); undefined for a plain ramped model. */
  cascade?: TierEntry[];
  /** A text model's tokenizer (manifest `model.text`); undefined for image models. */
  tokenizer?: TextTokenizer;
  runner: ModelRunner;
  /** Runs its batches: the worker pool, whose health is the model's readiness. */
  backend: ExecutionBackend;
  /** Owns the exit plan: the online tuner (guarded, apparate) if any, pause and pinned thresholds. */
  tuning: LiveTuning;
  /** Saves the tuning state to `server.state_dir` (src/engine/tuner-state-saver.ts); undefined without one. */
  stateSaver?: TunerStateSaver;
}

export interface DataPlaneOptions {
  version: string;
  observerFor?: (model: string) => EngineObserver;
  /** Server log lines (the tuner's tightenings and ramp-set changes). */
  log?: (line: string) => void;
  /** Replaces the worker pool (tests). */
  backendFor?: (dir: string, manifest: PreparedManifest) => Promise<ExecutionBackend>;
}

const OUTPUT_NAMES = ['probabilities', 'class', 'label', 'exit_ramp', 'confidence'] as const;

export class EngineDataPlane implements DataPlane, AdminPlane {
  private readyFlag = false;
  private draining = false;
  /** server.fault_injection, read once at start. */
  private faultInjection = false;
  private readonly models = new Map<string, ServedModel>();

  private constructor(private readonly options: DataPlaneOptions) {}

  static async load(config: ServingConfig, options: DataPlaneOptions): Promise<EngineDataPlane> {
    const plane = new EngineDataPlane(options);
    try {
      await plane.loadModels(config);
    } catch (err) {
      // The models loaded before the failing one hold worker and tuner threads, which would keep
      // a process that cannot serve alive.
      await plane.close();
      throw err;
    }
    plane.faultInjection = config.server.faultInjection;
    plane.readyFlag = true;
    return plane;
  }

  private async loadModels(config: ServingConfig): Promise<void> {
    const options = this.options;
    for (const modelConfig of config.models) {
      const dir = resolve(modelConfig.path);
      const backboneManifest = await readManifest(dir);
      const cascade = await loadCascade(backboneManifest, modelConfig, config.server.intraOpThreads);
      // A cascade is served from its exits view: tiers first, then the ramps (src/model/cascade.ts).
      const manifest = cascade?.manifest ?? backboneManifest;
      const exitOffset = cascade?.tiers.length ?? 0;
      // A head that fails costs its ramp, not the model: checked here, before any plan is made,
      // so that no plan names it; the executor's workers check again as they load, and report
      // any ramp they disable later (ModelRunner.onExecutorFaults).
      const disabledRamps = new Map(
        [...(await rampHeadProblems(dir, backboneManifest))].map(([id, reason]) => [id + exitOffset, reason]),
      );
      const text = manifest.model.text;
      const tokenizer = text ? await TextTokenizer.load(join(dir, text.tokenizer), text.maxLength) : undefined;
      const observer = options.observerFor?.(modelConfig.name);
      const backend = options.backendFor
        ? await options.backendFor(dir, manifest)
        : await WorkerPool.start(dir, {
            workers: config.server.workers,
            intraOpThreads: config.server.intraOpThreads,
            workerTimeoutMs: config.server.workerTimeoutMs,
            modelName: modelConfig.name,
            ...(cascade ? { cascade: cascade.worker } : {}),
            ...(observer ? { observer } : {}),
            ...(options.log ? { log: (line: string) => options.log?.(`model ${modelConfig.name}: ${line}`) } : {}),
          });
      const runner = new ModelRunner(manifest, backend, {
        modelName: modelConfig.name,
        batching: modelConfig.batching,
        sloLatencyMs: modelConfig.slo.latencyMs,
        feedbackWindow: modelConfig.accuracy.window,
        plan: servingPlan(backboneManifest, modelConfig, disabledRamps),
        parallelism: config.server.workers,
        ...(observer ? { observer } : {}),
      });
      const log = (line: string) => options.log?.(`model ${modelConfig.name}: ${line}`);
      const statePath =
        config.server.stateDir === null ? undefined : tunerStatePath(config.server.stateDir, modelConfig.name);
      const identity = modelIdentity(backboneManifest, modelConfig.cascade);
      const saved = statePath
        ? await loadTunerState(statePath, {
            identity,
            kind: modelConfig.tuner.kind,
            rule: { policy: runner.exitPlan.policy, patience: runner.exitPlan.patience },
            profile: manifest.profile,
            accuracy: modelConfig.accuracy,
            exits: manifest.ramps.map((r) => r.id),
            disabled: disabledRamps,
          })
        : undefined;
      if (saved) log(saved.line);
      const tuning = attachTuner(runner, manifest, modelConfig, options.log && log, disabledRamps, saved?.restored);
      if (saved?.restored || saved?.rejected) tuning.recordRestore(saved.line);
      const stateSaver =
        statePath === undefined
          ? undefined
          : new TunerStateSaver({
              path: statePath,
              state: async () => {
                const tuningState = await tuning.saveable();
                return (
                  tuningState && {
                    format: TUNER_STATE_FORMAT,
                    savedAt: new Date().toISOString(),
                    model: modelConfig.name,
                    identity,
                    ...tuningState,
                  }
                );
              },
              fedRows: () => tuning.fedRows,
              log,
            });
      if (stateSaver) tuning.onStateChange = () => stateSaver.changed();
      this.models.set(modelConfig.name, {
        name: modelConfig.name,
        version: modelConfig.version,
        dir,
        config: modelConfig,
        manifest,
        prepared: backboneManifest,
        ...(cascade ? { cascade: cascade.tiers } : {}),
        ...(tokenizer ? { tokenizer } : {}),
        runner,
        backend,
        tuning,
        ...(stateSaver ? { stateSaver } : {}),
      });
    }
  }

  get servedModels(): ServedModel[] {
    return [...this.models.values()];
  }

  live(): boolean {
    return true;
  }

  /** Server readiness: every model ready (KServe's "ready to receive inference requests"). */
  ready(): boolean {
    return this.readyFlag && !this.draining && this.servedModels.every((m) => notReadyReason(m) === null);
  }

  /**
   * Shutdown begins: readiness turns false and new inference requests are refused with
   * OFFRAMP_SHUTTING_DOWN, while those already submitted run on (`close` waits for them).
   */
  beginDrain(): void {
    this.draining = true;
  }

  serverMetadata(): ServerMetadata {
    return {
      name: SERVER_NAME,
      version: this.options.version,
      extensions: ['model_configuration', 'statistics', 'offramp_exits'],
    };
  }

  model(name: string, version?: string): ServedModel {
    const m = this.models.get(name);
    if (!m) throw new OfframpError('OFFRAMP_MODEL_NOT_FOUND', { model: name });
    if (version !== undefined && version !== '' && version !== m.version)
      throw new OfframpError('OFFRAMP_MODEL_VERSION_NOT_FOUND', { model: name, version });
    return m;
  }

  modelReady(name: string, version?: string): boolean {
    return this.modelNotReadyReason(name, version) === null;
  }

  modelNotReadyReason(name: string, version?: string): string | null {
    const m = this.model(name, version);
    if (this.draining) return 'the server is shutting down';
    return this.readyFlag ? notReadyReason(m) : 'the server is starting or stopping';
  }

  modelMetadata(name: string, version?: string): ModelMetadata {
    const m = this.model(name, version);
    const n = -1;
    const c = m.manifest.model.classes;
    const notReady = this.modelNotReadyReason(name, version);
    const outputs: TensorMetadata[] = [
      { name: 'probabilities', datatype: 'FP32', shape: [n, c] },
      { name: 'class', datatype: 'INT64', shape: [n] },
      ...(m.manifest.model.labels ? [{ name: 'label', datatype: 'BYTES' as const, shape: [n] }] : []),
      { name: 'exit_ramp', datatype: 'INT32', shape: [n] },
      { name: 'confidence', datatype: 'FP32', shape: [n] },
    ];
    return {
      name: m.name,
      versions: [m.version],
      platform: 'offramp_onnx',
      inputs: inputMetadata(m.manifest),
      outputs,
      parameters: {
        ...(m.manifest.model.labels ? { labels: m.manifest.model.labels } : {}),
        accepted_input_datatypes: m.manifest.model.text
          ? ['BYTES (UTF-8 text)', 'INT64', 'INT32 (token ids and attention mask)']
          : m.manifest.model.inputs[0]?.type === 'int64'
            ? ['INT64', 'INT32']
            : ['FP32', 'FP64', 'UINT8 (pixels 0..255, scaled to [0,1])'],
        ramps: m.manifest.ramps.map((r) => {
          const disabled = m.tuning.disabledRamps.get(r.id);
          return {
            id: r.id,
            compute_before: r.computeBefore,
            head: r.head.kind,
            disabled: disabled !== undefined,
            ...(disabled !== undefined ? { disabled_reason: disabled } : {}),
          };
        }),
        ...(notReady === null ? {} : { not_ready_reason: notReady }),
      },
    };
  }

  exits(name: string, version?: string): ExitsReport {
    const m = this.model(name, version);
    const stats = m.runner.feedback.stats();
    const plan = m.runner.exitPlan;
    const thresholdOf = new Map(plan.ramps.map((r) => [r.id, r.threshold]));
    const savings = windowSavings(m, stats);
    const disabled = m.tuning.disabledRamps;
    return {
      model: m.name,
      version: m.version,
      policy: plan.policy,
      mode: plan.mode,
      tuner: tunerReport(m, savings),
      rampOverhead: rampOverheadShare(
        m.manifest.profile,
        plan.ramps.map((r) => r.id),
        1,
      ),
      cascade: m.cascade
        ? {
            execution: m.config.cascade?.execution ?? 'merged',
            tiers: m.cascade.map((t) => ({
              exit: t.index,
              members: t.members,
              rule: t.rule,
              theta: t.theta,
              costMs: m.manifest.profile.tierMs?.[t.index]?.[0] ?? 0,
            })),
          }
        : null,
      ramps: m.manifest.ramps.map((r) => {
        const s = stats.perRamp.get(r.id);
        return {
          id: r.id,
          kind: r.head.kind === 'ensemble' ? ('tier' as const) : ('ramp' as const),
          active: thresholdOf.has(r.id),
          threshold: thresholdOf.get(r.id) ?? null,
          computeBefore: r.computeBefore,
          disabled: disabled.get(r.id) ?? null,
          exitRate: s && stats.size > 0 ? s.exits / stats.size : 0,
          agreement: s && s.compared > 0 ? s.agreeing / s.compared : null,
        };
      }),
      window: {
        size: stats.size,
        capacity: stats.capacity,
        disagreement: stats.disagreement,
        earlyFraction: stats.earlyFraction,
        estimatedSavings: savings,
      },
    };
  }

  tunerState(name: string, version?: string): TunerAdminReport {
    return adminReport(this.model(name, version));
  }

  pauseTuner(name: string, version?: string): TunerAdminReport {
    const m = this.onlineModel(name, version, 'pause');
    m.tuning.pause();
    return adminReport(m);
  }

  resumeTuner(name: string, version?: string): TunerAdminReport {
    const m = this.onlineModel(name, version, 'resume');
    m.tuning.resume();
    return adminReport(m);
  }

  pinThresholds(name: string, version: string | undefined, thresholds: ThresholdMap): TunerAdminReport {
    const m = this.model(name, version);
    if (thresholds.size === 0)
      throw new OfframpError('OFFRAMP_INVALID_ADMIN_REQUEST', { reason: '"thresholds" names no ramp' });
    const ids = m.manifest.ramps.map((r) => r.id);
    const policy = m.runner.exitPlan.policy;
    for (const [id, threshold] of thresholds) {
      if (!ids.includes(id))
        throw new OfframpError('OFFRAMP_INVALID_ADMIN_REQUEST', {
          reason: `model '${m.name}' has no ramp ${id} (its ramps: ${ids.join(', ') || 'none'})`,
        });
      const disabled = m.tuning.disabledRamps.get(id);
      if (disabled !== undefined)
        throw new OfframpError('OFFRAMP_RAMP_DISABLED', { model: m.name, ramp: id, reason: disabled });
      const problem = thresholdProblem(policy, threshold);
      if (problem) throw new OfframpError('OFFRAMP_INVALID_ADMIN_REQUEST', { reason: `thresholds.${id}: ${problem}` });
    }
    m.tuning.pin(thresholds);
    return adminReport(m);
  }

  unpinThresholds(name: string, version?: string): TunerAdminReport {
    const m = this.model(name, version);
    m.tuning.unpin();
    return adminReport(m);
  }

  async injectFault(
    name: string,
    version: string | undefined,
    fault: FaultKind,
    worker: number | undefined,
  ): Promise<FaultInjectionReport> {
    const m = this.model(name, version);
    if (!this.faultInjection) throw new OfframpError('OFFRAMP_FAULT_INJECTION_DISABLED');
    if (!m.backend.injectFault)
      throw new OfframpError('OFFRAMP_INVALID_ADMIN_REQUEST', {
        reason: `the executor of model '${m.name}' takes no injected faults`,
      });
    const done = await m.backend.injectFault(fault, worker);
    this.options.log?.(`${m.name}: injected fault ${fault} into executor worker ${done.worker}`);
    return { model: m.name, version: m.version, fault, worker: done.worker, failed: done.failed };
  }

  whatIf(name: string, version: string | undefined, budget: number): WhatIfReport {
    const m = this.model(name, version);
    if (typeof budget !== 'number' || !(budget > 0 && budget <= 0.5))
      throw new OfframpError('OFFRAMP_INVALID_WHAT_IF_BUDGET', { budget: String(budget) });
    const plan = m.runner.exitPlan;
    const planned = plan.ramps.map((r) => r.id);
    // The ramps the tuner chooses for — those whose heads run in the plan in force (a paused
    // tuner may want a ramp the plan does not run, and no row carries its reading); without an
    // online tuner, the plan's.
    const proposed = m.tuning.state().proposed;
    const activeRamps = proposed ? [...proposed.keys()].filter((id) => planned.includes(id)) : planned;
    const result = whatIf(m.runner.feedback.snapshot(), {
      kind: m.tuning.kind,
      activeRamps,
      rule: { policy: plan.policy, patience: plan.patience },
      profile: m.manifest.profile,
      budget,
      confidence: m.config.accuracy.confidence,
      window: m.config.accuracy.window,
      current: new Map(plan.ramps.map((r) => [r.id, r.threshold])),
    });
    if (result.rows === 0)
      throw new OfframpError('OFFRAMP_WHAT_IF_NO_FEEDBACK', {
        model: m.name,
        hint:
          plan.mode === 'drop'
            ? 'send it traffic; in drop mode only probes count (rows run to the end, ' +
              'exits.drop_feedback_fraction of them, more while the tuner learns)'
            : 'send it traffic; every answered row counts',
      });
    const { chosen, current } = result;
    return {
      model: m.name,
      budget,
      rows: result.rows,
      thresholds: asRecord(chosen.thresholds),
      earlyShare: chosen.earlyShare,
      predictedSavings: chosen.savings,
      disagreement: chosen.disagreement,
      upperBound: chosen.upperBound,
      current: whatIfColumn(current),
    };
  }

  tuningEvents(name: string, version: string | undefined, seq: number): TuningEventLog {
    return this.model(name, version).tuning.eventsSince(seq);
  }

  private onlineModel(name: string, version: string | undefined, action: string): ServedModel {
    const m = this.model(name, version);
    if (!m.tuning.online)
      throw new OfframpError('OFFRAMP_TUNER_NOT_ONLINE', { model: m.name, action, kind: m.tuning.kind });
    return m;
  }

  admission(name: string, version?: string): OfframpError | null {
    // While draining, refusals wait for the body (infer answers OFFRAMP_SHUTTING_DOWN then): a
    // connection closed with unread bytes in it is reset, and its 503 would be lost with it.
    if (!this.readyFlag || this.draining) return null;
    const m = this.models.get(name);
    if (!m || (version !== undefined && version !== '' && version !== m.version)) return null;
    return m.runner.admission();
  }

  async infer(request: InferRequest): Promise<InferResponse> {
    if (this.draining) throw new OfframpError('OFFRAMP_SHUTTING_DOWN');
    if (!this.readyFlag)
      throw new OfframpError('OFFRAMP_MODEL_NOT_READY', {
        model: request.modelName,
        reason: 'the server is starting or stopping',
      });
    const m = this.model(request.modelName, request.modelVersion);
    const wanted = request.outputs?.map((o) => o.name);
    for (const name of wanted ?? []) {
      const known: readonly string[] = m.manifest.model.labels
        ? OUTPUT_NAMES
        : OUTPUT_NAMES.filter((o) => o !== 'label');
      if (!known.includes(name))
        throw new OfframpError('OFFRAMP_UNKNOWN_OUTPUT', { model: m.name, output: name, expected: known.join(', ') });
    }
    const text = m.tokenizer ? convertTextInput(m.name, m.manifest, m.tokenizer, request.inputs) : undefined;
    const input = text ? text.input : convertInput(m.name, m.manifest, request.inputs);
    const options = requestOptions(request.parameters);
    const answers = await m.runner.submit(input, {
      priority: options.priority,
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      ...(request.signal ? { signal: request.signal } : {}),
      ...(request.id ? { id: request.id } : {}),
    });
    return {
      id: request.id ?? '',
      modelName: m.name,
      modelVersion: m.version,
      parameters: {
        ...exitParameters(answers),
        ...(m.cascade ? cascadeParameters(answers, m.cascade.length, m.manifest.model.labels) : {}),
        // A text model says whether it read every row whole: a cut text was classified on its start.
        ...(text ? { truncated_rows: text.truncatedRows, max_tokens: m.tokenizer?.maxLength ?? 0 } : {}),
      },
      outputs: this.outputs(m, answers, wanted),
    };
  }

  private outputs(m: ServedModel, answers: RowAnswer[], wanted: string[] | undefined): OutputTensor[] {
    const n = answers.length;
    const c = m.manifest.model.classes;
    const probs = new Float32Array(n * c);
    answers.forEach((a, i) => probs.set(a.probs, i * c));
    const labels = m.manifest.model.labels;
    const all: OutputTensor[] = [
      { name: 'probabilities', datatype: 'FP32', shape: [n, c], data: probs },
      { name: 'class', datatype: 'INT64', shape: [n], data: BigInt64Array.from(answers, (a) => BigInt(a.argmax)) },
      ...(labels
        ? [
            {
              name: 'label',
              datatype: 'BYTES' as const,
              shape: [n],
              data: answers.map((a) => labels[a.argmax] ?? String(a.argmax)),
            },
          ]
        : []),
      { name: 'exit_ramp', datatype: 'INT32', shape: [n], data: Int32Array.from(answers, (a) => a.ramp) },
      { name: 'confidence', datatype: 'FP32', shape: [n], data: Float32Array.from(answers, (a) => a.confidence) },
    ];
    return wanted ? all.filter((o) => wanted.includes(o.name)) : all;
  }

  /**
   * Drains: waits for every submitted request to be answered, saves each model's tuning state
   * (`server.state_dir`) with every batch's feedback in it, then stops the executors and tuners.
   */
  async close(): Promise<void> {
    this.beginDrain();
    for (const m of this.models.values()) {
      await m.runner.drain();
      await m.stateSaver?.close();
      await m.tuning.close();
    }
  }
}

/**
 * A model's cascade, if its config has one: the tiers as the workers load them, their measured
 * cost, and the exits view the serving side works from (src/model/cascade.ts).
 */
async function loadCascade(
  prepared: PreparedManifest,
  config: ModelConfig,
  intraOpThreads: number,
): Promise<
  | { tiers: TierEntry[]; manifest: PreparedManifest; worker: { tiers: TierSpec[]; execution: TierExecution } }
  | undefined
> {
  const cascade = config.cascade;
  if (!cascade) return undefined;
  const tiers: TierEntry[] = cascade.tiers.map((t, index) => ({
    index,
    members: [...t.members],
    rule: t.rule,
    theta: t.theta,
  }));
  const specs: TierSpec[] = cascade.tiers.map((t) => ({ members: [...t.members], rule: t.rule }));
  let tierMs: number[][];
  try {
    tierMs = await profileTiers(prepared, specs, cascade.execution, intraOpThreads);
  } catch (err) {
    throw new Error(`model ${config.name}: cannot load its cascade: ${(err as Error).message}`, { cause: err });
  }
  return {
    tiers,
    manifest: cascadeExitsView(prepared, tiers, tierMs),
    worker: { tiers: specs, execution: cascade.execution },
  };
}

/**
 * Why a loaded model cannot run a batch now: its executor gave up on every worker (for good), or
 * every worker is restarting (it comes back by itself); null when a worker takes its batches.
 */
function notReadyReason(m: ServedModel): string | null {
  if (m.backend.failure !== null) return m.backend.failure;
  if (m.backend.readyWorkers === 0) return 'every executor worker is restarting';
  return null;
}

/** Thresholds keyed by exit id as a string (the dashboard's ExitKey, src/dashboard/protocol.ts). */
function asRecord(thresholds: ThresholdMap): Record<string, number | null> {
  return Object.fromEntries([...thresholds].map(([id, t]) => [String(id), t]));
}

/** A what-if setting's figures as the report's comparison column. */
function whatIfColumn(figures: WhatIfFigures): WhatIfReport['current'] {
  return {
    thresholds: asRecord(figures.thresholds),
    earlyShare: figures.earlyShare,
    predictedSavings: figures.savings,
    disagreement: figures.disagreement,
  };
}

/** The tuner section of the exits report; `windowSavings` is the window's estimated savings. */
function tunerReport(m: ServedModel, windowSavings: number): TunerReport {
  const state = m.tuning.state();
  const e = state.estimates;
  return {
    kind: state.kind,
    online: state.online,
    paused: state.paused,
    pinned: asRecord(state.pinned),
    proposed: state.proposed ? asRecord(state.proposed) : null,
    probeShare: state.probeShare,
    restored: state.restored && {
      from: state.restored.from,
      savedAt: state.restored.savedAt,
      rows: state.restored.rows,
      recheck: state.restored.recheck && {
        disagreement: state.restored.recheck.disagreement,
        upperBound: state.restored.recheck.upperBound,
        passed: state.restored.recheck.passed,
      },
    },
    estimates: e
      ? {
          windowRows: e.windowRows,
          windowDisagreement: e.windowDisagreement,
          tuningRows: e.tuningRows,
          estimatedDisagreement: e.estimatedDisagreement,
          upperBound: e.upperBound,
          estimatedSavings: e.estimatedSavings,
          hindsightSavings: e.hindsightSavings,
          fractionOfHindsight:
            e.hindsightSavings !== null && e.hindsightSavings > 0 ? windowSavings / e.hindsightSavings : null,
          retunes: e.retunes,
          tightenings: e.tightenings,
          rampChanges: e.rampChanges,
          learning: e.learning,
          feedbackDemand: e.feedbackDemand,
          lastUtilities: e.lastUtilities.map((u) => ({
            rampId: u.rampId,
            exitRate: u.exitRate,
            passRate: u.passRate,
            gainMs: u.gainMs,
            costMs: u.costMs,
            utilityMs: u.utilityMs,
          })),
        }
      : null,
  };
}

/** Estimated savings from the window's exit rates under the plan in force (per-row time to answer at batch size 1). */
function windowSavings(m: ServedModel, stats: WindowStats): number {
  const rates = new Map([...stats.perRamp].map(([id, s]) => [id, stats.size > 0 ? s.exits / stats.size : 0]));
  return estimatedSavings(
    m.manifest.profile,
    m.runner.exitPlan.ramps.map((r) => r.id),
    rates,
    1,
  );
}

function adminReport(m: ServedModel): TunerAdminReport {
  const plan = m.runner.exitPlan;
  return {
    model: m.name,
    version: m.version,
    tuner: tunerReport(m, windowSavings(m, m.runner.feedback.stats())),
    thresholds: Object.fromEntries(plan.ramps.map((r) => [String(r.id), r.threshold])),
  };
}

/**
 * Which cascade tier answered the request (its deepest row, as `exit_ramp` says): `tier`, 0-based,
 * where `tiers − 1` is the served model; when a tier answered, its members' `votes` (labels, or
 * class ids, comma-separated in member order) and the `agreement` (the plurality's share).
 */
export function cascadeParameters(
  answers: RowAnswer[],
  tiers: number,
  labels: readonly string[] | undefined,
): InferResponse['parameters'] {
  const deepest = deepestAnswer(answers);
  const tier = deepest.ramp >= 0 && deepest.ramp < tiers ? deepest.ramp : tiers;
  return {
    tier,
    tiers: tiers + 1,
    ...(deepest.votes ? { votes: deepest.votes.map((v) => labels?.[v] ?? String(v)).join(',') } : {}),
    ...(deepest.agreement !== undefined ? { agreement: Number(deepest.agreement.toFixed(6)) } : {}),
  };
}

/** Request-level exit information (per-row values are in the `exit_ramp` and `confidence` outputs). */
export function exitParameters(answers: RowAnswer[]): InferResponse['parameters'] {
  const deepest = deepestAnswer(answers);
  return {
    early: answers.every((a) => a.ramp >= 0),
    exit_ramp: deepest.ramp,
    exit_depth: Number(deepest.depth.toFixed(4)),
    confidence: Number(Math.min(...answers.map((a) => a.confidence)).toFixed(6)),
    rows: answers.length,
  };
}
