/**
 * Who decides a served model's exit plan, and the operator's overrides (admin endpoints).
 *
 * For an online tuner kind (guarded, apparate; tuner/tuner.ts, pure) the tuner takes every
 * finished batch's feedback, and whenever it changes thresholds or the ramp set, the new exit
 * plan applies from the next batch. It runs in its own worker thread (tuner-thread.ts): a
 * re-tune can take longer than the serving thread's event loop may stall. A ramp-set change
 * applies at once: the executor runs the next batches on the prepared segments with the heads
 * switched on and off, while it re-splits the backbone at the new active ramps in the
 * background (src/engine/executor/backbone-runner.ts). `static` and `off` keep the plan they
 * start with (or the one a config reload gives them).
 *
 * On top of that plan, two overrides:
 *  - pause: the tuner keeps observing feedback (its estimates stay fresh) but what it changes is
 *    not applied; resume applies its current thresholds at once. Only for online tuners.
 *  - pins: ramp id → threshold (null = never) that replace the plan's thresholds for those ramps
 *    until unpinned, whatever the tuner or a reload wants. A pinned ramp that is not in the plan
 *    joins it (its head runs). Ramps the tuner keeps active stay in the plan even when pinned to
 *    "never": the tuner only learns from rows that carry every active ramp's reading.
 *
 * The tuner is fed only probe rows (FeedbackRecord.probe), drawn before their batch ran.
 *
 * Disabled ramps: a ramp whose head failed (at load, or on a batch: the executor's faults,
 * `ExecutorFault` in src/engine/backend.ts) is out of every plan applied from then on, whoever
 * asks for it — the static plan, a config reload, the tuner (which is told to withdraw it) or a
 * pin (dropped) — and one check, in `apply`, keeps that invariant.
 *
 * Every change — the tuner's events as they arrive (a re-tune only when it changes
 * a threshold), pause, resume, pins, disabled ramps — goes into the model's tuning event log
 * (tuning-log.ts), which the dashboard reads (`eventsSince`).
 *
 * Across restarts (`server.state_dir`; tuner-state-file.ts, tuner-state-saver.ts): it may start
 * from a restored state (`LiveTuningOptions.restore`: pins and pause, and for an online tuner the
 * saved ramps, thresholds and rows that passed the guard's re-check), says when what a state file
 * holds has changed (`onStateChange`) and how much feedback it has fed (`fedRows`), and gives what
 * is saved (`saveable`).
 *
 * The probe share (drop mode; in release mode every row is a probe) is decided here, once per
 * finished batch, from the tuner's feedback demand (tuner/tuner.ts FeedbackDemand,
 * `probeShareFor`): while the tuner learns (from the start, a tightening or a ramp-set change
 * until it has re-tuned on enough rows) or holds its ramps after a window at risk, the plan draws
 * `learningFeedbackFraction` of rows as probes, so the guard gets its rows within the first
 * windows; once it has settled, or while no setting pays (idle), the plan's own share
 * (`exits.drop_feedback_fraction`), so that most rows leave the batch when they exit, or skip the
 * heads when every ramp is at "never". Never below the settled share. Replay draws probes the
 * same way (tuner/replay.ts).
 */
import type { PreparedManifest } from '../model/manifest.js';
import type { ExitPolicyKind } from '../../tuner/exit-policy.js';
import type { LatencyProfileData } from '../../tuner/latency-model.js';
import { isProbe, type FeedbackRecord } from '../../tuner/feedback-record.js';
import { isDormant } from '../../tuner/exit-policy.js';
import { createTuner } from '../../tuner/create-tuner.js';
import {
  isOnlineTunerKind,
  probeShareFor,
  type FeedbackDemand,
  type OnlineTunerOptions,
  type RampSetOptions,
  type Tuner,
  type TunerEstimates,
  type TunerEvent,
  type TunerSetting,
} from '../../tuner/tuner.js';
import type { ModelConfig } from '../config/index.js';
import type { ExecutorFault, ExitPlan } from './backend.js';
import type { ModelRunner } from './model-runner.js';
import { TunerThread } from './tuner-thread.js';
import { compactResumePoint, type CompactResumePoint } from '../../tuner/resume.js';
import { MAX_SAVED_ROWS, type RestoredState, type RestoredTuning, type SavedTuning } from './tuner-state-file.js';
import { describeThresholds, TuningLog, tunerEventEntry, type TuningEventLog } from './tuning-log.js';

/** What LiveTuning needs of a ModelRunner: its plan, and its finished batches' feedback. */
export type PlanHost = Pick<ModelRunner, 'exitPlan' | 'setExitPlan' | 'onFeedback'>;

export interface LiveTuningOptions {
  kind: TunerSetting;
  profile: LatencyProfileData;
  accuracy: { budget: number; confidence: number; window: number };
  /** Ramp-set changes (drop ramps that do not pay, try new positions); absent: the ramp set stays. */
  rampSet?: RampSetOptions;
  /**
   * Drop mode with an online tuner: the probe share while the tuner learns (default: the plan's
   * own share, i.e. no change while learning). The plan's `feedbackFraction` is the settled share.
   */
  learningFeedbackFraction?: number;
  /** Ramp id → why it is disabled, known at load (src/model/ramp-head.ts); never in a plan. */
  disabledRamps?: ReadonlyMap<number, string>;
  /**
   * Run the tuner in its own worker thread (default true). False runs it on the caller's
   * thread, synchronously: for tests that feed batches and look at the plan right after.
   */
  thread?: boolean;
  /**
   * A saved state to start from (tuner-state-file.ts `restoreTunerState`): the operator's pins
   * and pause, and for an online tuner the saved ramps, thresholds and rows when they passed the
   * guard's re-check.
   */
  restore?: RestoredTuning;
}

/** What LiveTuning needs of a tuner: in a worker (TunerThread) or on this thread (InlineTuner). */
interface TunerHandle {
  readonly thresholds: ReadonlyMap<number, number | null>;
  readonly activeRamps: readonly number[];
  readonly estimates: TunerEstimates;
  /** What the tuner asks of drop mode's probe share (TunerEstimates.feedbackDemand). */
  readonly feedbackDemand: FeedbackDemand;
  onChange: ((events: TunerEvent[]) => void) | undefined;
  observe(records: readonly FeedbackRecord[]): void;
  withdrawRamp(id: number): void;
  /** Tuner.resumePoint with its rows compact; undefined once the tuner is gone. */
  resumePoint(maxRows: number): Promise<CompactResumePoint | undefined>;
  close(): Promise<void>;
}

/** The tuner on the calling thread: `onChange` runs inside `observe`. */
class InlineTuner implements TunerHandle {
  onChange: ((events: TunerEvent[]) => void) | undefined;
  private readonly tuner: Tuner;
  constructor(options: OnlineTunerOptions) {
    this.tuner = createTuner(options);
  }
  get thresholds(): ReadonlyMap<number, number | null> {
    return this.tuner.thresholds;
  }
  get activeRamps(): readonly number[] {
    return this.tuner.activeRamps;
  }
  get estimates(): TunerEstimates {
    return this.tuner.estimates;
  }
  get feedbackDemand(): FeedbackDemand {
    return this.tuner.feedbackDemand;
  }
  observe(records: readonly FeedbackRecord[]): void {
    const events = this.tuner.observe(records);
    if (events.length > 0) this.onChange?.(events);
  }
  withdrawRamp(id: number): void {
    const events = this.tuner.withdrawRamp(id);
    if (events.length > 0) this.onChange?.(events);
  }
  resumePoint(maxRows: number): Promise<CompactResumePoint | undefined> {
    return Promise.resolve(compactResumePoint(this.tuner.resumePoint(maxRows)));
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Ramp id → threshold (null = never). */
export type ThresholdMap = ReadonlyMap<number, number | null>;

export interface TunerState {
  /** The tuner kind the model was loaded with (a reload does not change it). */
  kind: TunerSetting;
  /** An online tuner (guarded, apparate) drives the thresholds. */
  online: boolean;
  paused: boolean;
  /** Thresholds pinned by an operator, in model order. */
  pinned: ThresholdMap;
  /** What the online tuner wants (its active ramps, in model order); undefined without one. */
  proposed: ThresholdMap | undefined;
  estimates: TunerEstimates | undefined;
  /** Share of rows drawn as probes in the plan in force (1 in release mode: every row is one). */
  probeShare: number;
  /** The saved state the model started from (tuner-state-file.ts); null when it started as configured. */
  restored: RestoredState | null;
}

/**
 * Why `threshold` cannot be a threshold under `policy`, or undefined when it can. Scores:
 * confidence and margin in [0, 1], patience compares max p (also [0, 1]), entropy −H ≤ 0 (the
 * config's lower bound, −1000, applies too).
 */
export function thresholdProblem(policy: ExitPolicyKind, threshold: number | null): string | undefined {
  if (threshold === null) return undefined;
  if (!Number.isFinite(threshold)) return `${threshold} is not a finite number`;
  if (policy === 'entropy')
    return threshold <= 0 && threshold >= -1000
      ? undefined
      : `${threshold} is out of range for the entropy policy ([-1000, 0]: the score is −H)`;
  return threshold >= 0 && threshold <= 1
    ? undefined
    : `${threshold} is out of range for the ${policy} policy ([0, 1])`;
}

/** `plan` with the pinned thresholds in place; pinned ramps not in the plan join it. */
export function withPins(plan: ExitPlan, pins: ThresholdMap): ExitPlan {
  if (pins.size === 0) return plan;
  const thresholds = new Map(plan.ramps.map((r) => [r.id, r.threshold]));
  for (const [id, threshold] of pins) thresholds.set(id, threshold);
  return { ...plan, ramps: [...thresholds].sort(([a], [b]) => a - b).map(([id, threshold]) => ({ id, threshold })) };
}

export class LiveTuning {
  readonly kind: TunerSetting;
  /** The online tuner; undefined for `static` and `off`. */
  readonly tuner: TunerHandle | undefined;
  /** The plan without pins: the tuner's (as last applied) or the static one. */
  private base: ExitPlan;
  private readonly pins = new Map<number, number | null>();
  /** Ramp id → why its head cannot serve; no applied plan names these. */
  private readonly disabled = new Map<number, string>();
  /** Ramp sets whose re-split failed, already logged. */
  private readonly failedResplits = new Set<string>();
  private pausedFlag = false;
  /** What the tuner and operators did, for the dashboard (tuning-log.ts). */
  private readonly events = new TuningLog();
  /** The tuner's thresholds as of its last event: a re-tune that repeats them is not logged. */
  private tunerThresholds: ThresholdMap = new Map();
  /** Drop mode's probe share once the tuner has settled (the static plan's), and while it learns. */
  private readonly settledShare: number;
  private readonly learningShare: number;
  /** The saved state this model started from, for /exits; null when it started as configured. */
  private readonly restored: RestoredState | null;
  /** What the tuner learns under (its accuracy settings stay those it started with), for `saveable`. */
  private readonly accuracy: LiveTuningOptions['accuracy'];
  /** Probe rows given to the online tuner so far (a state saver's "is there anything new"). */
  fedRows = 0;
  /**
   * Called after something a state file holds changed: the tuner's thresholds or ramps, a pin,
   * a pause or resume (tuner-state-saver.ts debounces it).
   */
  onStateChange: (() => void) | undefined;

  /** Takes over `host`'s exit plan as it stands (the static plan) and, for an online tuner, its feedback. */
  constructor(
    private readonly host: PlanHost,
    options: LiveTuningOptions,
    private readonly log: (line: string) => void = () => undefined,
  ) {
    this.kind = options.kind;
    this.accuracy = options.accuracy;
    for (const [id, reason] of options.disabledRamps ?? []) {
      this.disabled.set(id, reason);
      this.log(disabledLine(id, reason));
      this.events.record('ramp-disabled', disabledLine(id, reason));
    }
    const kind = this.kind;
    const { restore } = options;
    this.restored = restore?.report ?? null;
    // A resumed online tuner starts from its saved ramps and thresholds instead of the static plan.
    const resume = isOnlineTunerKind(kind) ? restore?.resume : undefined;
    const start = resume
      ? {
          ...host.exitPlan,
          ramps: resume.activeRamps.map((id) => ({ id, threshold: resume.thresholds.get(id) ?? null })),
        }
      : host.exitPlan;
    this.base = this.withoutDisabled(start);
    if (this.base !== host.exitPlan) host.setExitPlan(this.base);
    this.settledShare = this.base.feedbackFraction;
    this.learningShare = Math.max(this.settledShare, options.learningFeedbackFraction ?? this.settledShare);
    if (restore) {
      for (const [id, threshold] of restore.pins) this.pins.set(id, threshold);
      this.pausedFlag = restore.paused && isOnlineTunerKind(kind);
    }
    if (!isOnlineTunerKind(kind)) {
      if (this.pins.size > 0) this.apply();
      return;
    }
    const plan = this.base;
    const tunerOptions: OnlineTunerOptions = {
      kind,
      rule: { policy: plan.policy, patience: plan.patience },
      profile: options.profile,
      budget: options.accuracy.budget,
      confidence: options.accuracy.confidence,
      window: options.accuracy.window,
      activeRamps: plan.ramps.map((r) => r.id),
      thresholds: new Map(plan.ramps.map((r) => [r.id, r.threshold])),
      ...(resume ? { resume } : {}),
      ...(options.rampSet
        ? {
            rampSet: {
              ...options.rampSet,
              availableRamps: options.rampSet.availableRamps.filter((id) => !this.disabled.has(id)),
            },
          }
        : {}),
    };
    const tuner: TunerHandle = options.thread === false ? new InlineTuner(tunerOptions) : new TunerThread(tunerOptions);
    if (tuner instanceof TunerThread)
      tuner.onError = (message) => this.log(`tuner failed on a batch (the plan in force stays): ${message}`);
    this.tuner = tuner;
    this.tunerThresholds = new Map(tuner.thresholds);
    tuner.onChange = (events) => {
      for (const e of events) this.recordTunerEvent(e);
      // What the tuner wants is saved even while paused: it is what a resume would apply.
      this.onStateChange?.();
      // Paused: the tuner keeps observing (its estimates describe the traffic being served), but
      // what it wants is applied only on resume.
      if (this.pausedFlag) return;
      this.base = this.tunerPlan(tuner);
      this.apply();
    };
    // Only probes: in drop mode a row that is not one leaves the batch when a ramp answers it, so
    // the rows that reach the end are those no ramp answered. Fed those too, the tuner would see
    // every hard row but few easy ones, judge early ramps useless and undercount disagreement.
    host.onFeedback = (records) => {
      const probes = records.filter(isProbe);
      if (probes.length > 0) tuner.observe(probes);
      this.fedRows += probes.length;
      // The tuner's state as last heard (a worker's lags by a few batches): a change of share
      // applies from the next batch.
      if (this.probeShare() !== this.host.exitPlan.feedbackFraction) this.apply();
    };
    if (this.probeShare() !== this.base.feedbackFraction || this.pins.size > 0) this.apply();
  }

  /**
   * The probe share the plan should draw now: in drop mode with an online tuner, the learning
   * share while the tuner learns, else the settled share. The plan's share, whatever it is, is
   * ignored in release mode.
   */
  private probeShare(): number {
    // Without a tuner, release mode keeps every row's feedback (for /exits and /metrics).
    if (!this.tuner) return this.base.mode === 'release' ? 1 : this.base.feedbackFraction;
    return probeShareFor(this.tuner.feedbackDemand, this.base.mode, {
      settled: this.settledShare,
      learning: this.learningShare,
    });
  }

  get online(): boolean {
    return this.tuner !== undefined;
  }

  get paused(): boolean {
    return this.pausedFlag;
  }

  /** Stops applying the tuner's changes; the plan in force stays. No-op without an online tuner. */
  pause(): void {
    if (!this.tuner || this.pausedFlag) return;
    this.pausedFlag = true;
    this.events.record('pause', 'paused: the tuner keeps observing; its changes wait for resume');
    this.onStateChange?.();
  }

  /** Applies the tuner's current thresholds from the next batch, and its later changes again. */
  resume(): void {
    if (!this.tuner || !this.pausedFlag) return;
    this.pausedFlag = false;
    this.base = this.tunerPlan(this.tuner);
    this.events.record(
      'resume',
      `resumed: the tuner's thresholds apply (${describeThresholds(this.tuner.thresholds)})`,
    );
    this.apply();
    this.onStateChange?.();
  }

  /** Pins these ramps' thresholds (others pinned earlier stay pinned), from the next batch. Inputs are validated by the caller. */
  pin(thresholds: ThresholdMap): void {
    for (const [id, threshold] of thresholds) this.pins.set(id, threshold);
    this.events.record('pin', `pin: ${describeThresholds(thresholds)}`);
    this.apply();
    this.onStateChange?.();
  }

  /** Drops every pin: the tuner's (or the static plan's) thresholds apply again. */
  unpin(): void {
    const ids = [...this.pins.keys()].sort((a, b) => a - b);
    this.events.record(
      'unpin',
      ids.length > 0
        ? `unpin: ${ids.join(', ')} back to the ${this.tuner ? "tuner's" : "plan's"} thresholds`
        : 'unpin: nothing was pinned',
    );
    this.pins.clear();
    this.apply();
    this.onStateChange?.();
  }

  /** Ramp id → why it is disabled, in model order. */
  get disabledRamps(): ReadonlyMap<number, string> {
    return new Map([...this.disabled].sort(([a], [b]) => a - b));
  }

  /**
   * Ramp `id`'s head failed: no plan applied from now on names it. A pin on it is dropped, the
   * online tuner withdraws it, and the line is logged once.
   */
  disableRamp(id: number, reason: string): void {
    if (this.disabled.has(id)) return;
    this.disabled.set(id, reason);
    this.log(disabledLine(id, reason));
    const unpinned = this.pins.delete(id);
    if (unpinned) {
      this.log(`ramp ${id} unpinned: it is disabled`);
      this.onStateChange?.();
    }
    this.events.record('ramp-disabled', `${disabledLine(id, reason)}${unpinned ? '; its pin is dropped' : ''}`);
    this.base = this.withoutDisabled(this.base);
    this.tuner?.withdrawRamp(id);
    this.apply();
  }

  /** What the executor reports with a batch result: disabled ramps, and re-splits that failed (logged once per ramp set). */
  onExecutorFaults(faults: readonly ExecutorFault[]): void {
    for (const fault of faults) {
      if (fault.kind === 'ramp-disabled') {
        this.disableRamp(fault.ramp, fault.reason);
        continue;
      }
      const key = fault.ramps.join(',');
      if (this.failedResplits.has(key)) continue;
      this.failedResplits.add(key);
      this.log(
        `re-splitting the backbone at ramps ${key} failed (${fault.reason}); that ramp set runs on the prepared segments`,
      );
    }
  }

  /**
   * Config reload of a model without an online tuner: the new static plan, with the pins still
   * on top. Pins the new policy cannot take are dropped; their ramp ids are returned.
   */
  setStaticPlan(plan: ExitPlan): number[] {
    if (this.tuner) return [];
    this.base = plan;
    const dropped = [...this.pins].filter(([, t]) => thresholdProblem(plan.policy, t) !== undefined).map(([id]) => id);
    for (const id of dropped) this.pins.delete(id);
    if (dropped.length > 0) {
      this.events.record('unpin', `unpin: ${dropped.join(', ')} (the reloaded ${plan.policy} policy cannot take them)`);
      this.onStateChange?.();
    }
    this.apply();
    return dropped;
  }

  state(): TunerState {
    const pinned = new Map([...this.pins].sort(([a], [b]) => a - b));
    const plan = this.host.exitPlan;
    const probeShare = plan.mode === 'drop' || isDormant(plan) ? plan.feedbackFraction : 1;
    if (!this.tuner)
      return {
        kind: this.kind,
        online: false,
        paused: false,
        pinned,
        proposed: undefined,
        estimates: undefined,
        probeShare,
        restored: this.restored,
      };
    const thresholds = this.tuner.thresholds;
    const proposed = new Map(this.tuner.activeRamps.map((id) => [id, thresholds.get(id) ?? null]));
    return {
      kind: this.kind,
      online: true,
      paused: this.pausedFlag,
      pinned,
      proposed,
      estimates: this.tuner.estimates,
      probeShare,
      restored: this.restored,
    };
  }

  /**
   * What a state file saves of this model's tuning (tuner-state-file.ts): the tuner's settings,
   * its resume point (as of every batch it was given so far; from its thread, off this one),
   * pins and pause. Undefined once the tuner's thread has stopped.
   */
  async saveable(): Promise<SavedTuning | undefined> {
    const learned = this.tuner ? await this.tuner.resumePoint(MAX_SAVED_ROWS) : null;
    if (learned === undefined) return undefined;
    return {
      tuner: { kind: this.kind, policy: this.base.policy, mode: this.base.mode, ...this.accuracy },
      learned,
      pins: new Map(this.pins),
      paused: this.pausedFlag,
    };
  }

  /**
   * The tuning events numbered after `seq` (0: every one still kept), oldest first, and the
   * newest number, to ask from next time (tuning-log.ts).
   */
  eventsSince(seq: number): TuningEventLog {
    return this.events.since(seq);
  }

  /**
   * One of the tuner's events into the event log (and, but for re-tunes, the server log). A
   * re-tune that leaves every threshold where the tuner had it is not an event worth marking:
   * periodic re-tunes come every quarter window.
   */
  private recordTunerEvent(event: TunerEvent): void {
    if (event.type === 'retune') {
      if (sameThresholds(event.thresholds, this.tunerThresholds)) return;
      this.tunerThresholds = new Map(event.thresholds);
    } else if (event.type === 'tighten') {
      this.tunerThresholds = new Map([...this.tunerThresholds.keys()].map((id) => [id, null]));
    }
    const entry = tunerEventEntry(event);
    if (event.type !== 'retune') this.log(`tuner: ${entry.summary}`);
    // Paused, the tuner's changes wait for resume: the log says so rather than implying a change.
    this.events.record(entry.kind, this.pausedFlag ? `${entry.summary} (paused: not applied)` : entry.summary);
  }

  /** Records a restored state in the tuning event log (the data plane logs the line too). */
  recordRestore(summary: string): void {
    this.events.record('restore', summary);
  }

  /** Stops the tuner's thread (the plan in force stays). */
  async close(): Promise<void> {
    await this.tuner?.close();
  }

  private tunerPlan(tuner: TunerHandle): ExitPlan {
    const thresholds = tuner.thresholds;
    return this.withoutDisabled({
      ...this.base,
      ramps: tuner.activeRamps.map((id) => ({ id, threshold: thresholds.get(id) ?? null })),
    });
  }

  /** `plan` without the disabled ramps (the same object when it names none). */
  private withoutDisabled(plan: ExitPlan): ExitPlan {
    return plan.ramps.some((r) => this.disabled.has(r.id))
      ? { ...plan, ramps: plan.ramps.filter((r) => !this.disabled.has(r.id)) }
      : plan;
  }

  /** The one place a plan reaches the runner: whatever was asked, no disabled ramp is in it. */
  private apply(): void {
    this.host.setExitPlan(
      this.withoutDisabled(withPins({ ...this.base, feedbackFraction: this.probeShare() }, this.pins)),
    );
  }
}

function disabledLine(id: number, reason: string): string {
  return `ramp ${id} disabled: ${reason}; the model serves without it`;
}

/** Whether two threshold maps name the same ramps with the same thresholds. */
function sameThresholds(a: ThresholdMap, b: ThresholdMap): boolean {
  if (a.size !== b.size) return false;
  for (const [id, t] of a) if (!b.has(id) || b.get(id) !== t) return false;
  return true;
}

/**
 * The ramp-set changes a served model's online tuner may make, from its SLO entry (absent for a
 * cascade: its tiers cost far more than the ramp budget allows a head, and which tiers run is the
 * operator's choice). The one definition the server (`attachTuner`) and replay
 * (src/cli/replay-command.ts) build the tuner from, so that a replay changes ramps as the server would.
 */
export function servedRampSet(config: ModelConfig, availableRamps: readonly number[]): RampSetOptions | undefined {
  if (config.cascade) return undefined;
  return {
    availableRamps,
    maxRamps: config.exits.maxRamps,
    rampBudget: config.exits.rampBudget,
    checkEveryBatches: config.tuner.intervalBatches,
  };
}

/** Takes charge of a runner's exit plan: an online tuner for guarded/apparate, pins for every kind. */
export function attachTuner(
  runner: ModelRunner,
  manifest: PreparedManifest,
  config: ModelConfig,
  log?: (line: string) => void,
  disabledRamps?: ReadonlyMap<number, string>,
  restore?: RestoredTuning,
): LiveTuning {
  const rampSet = servedRampSet(
    config,
    manifest.ramps.map((r) => r.id),
  );
  const tuning = new LiveTuning(
    runner,
    {
      kind: config.tuner.kind,
      profile: manifest.profile,
      accuracy: config.accuracy,
      ...(rampSet ? { rampSet } : {}),
      learningFeedbackFraction: config.exits.learningFeedbackFraction,
      ...(disabledRamps ? { disabledRamps } : {}),
      ...(restore ? { restore } : {}),
    },
    log,
  );
  runner.onExecutorFaults = (faults) => tuning.onExecutorFaults(faults);
  return tuning;
}
