/**
 * Runs one batch through an agreement-based cascade: its tiers of member models in order, then
 * the served model — a ramped backbone (backbone-runner.ts) — for the rows every tier passed on.
 * Used inside worker threads, as the backbone runner is; exit numbering as src/model/cascade.ts
 * says (tiers 0..T−1, then the backbone's ramp r as exit T + r).
 *
 * A tier runs its members on the rows still in the batch (one session call when they are merged),
 * reads each row by its rule (tuner/agreement-rule.ts) and answers the rows whose score reaches
 * its threshold at once — the rest of the batch keeps running. A tier whose threshold is null
 * ("never") still runs and reads every row that reaches it (the tuner learns from those readings)
 * but answers none; a tier not in the plan does not run.
 *
 * Drop mode and feedback work as for ramps, with the probes drawn once, before the first tier: a
 * probe runs through every active tier and the whole backbone whatever answered it, so it
 * carries every exit's reading and the original model's answer — an unbiased sample for the tuner
 * and the online measure of disagreement. The backbone is handed those same probes.
 *
 * Faults cost a tier, never an answer: a tier whose members fail to run or give unreadable
 * probabilities answers no row of that batch (its rows go on) and is disabled like a broken ramp
 * (`ramp-disabled` with the tier's exit id), so the serving thread plans without it.
 */
import { randomInt } from 'node:crypto';
import { readTier } from '../../../tuner/agreement-rule.js';
import { buildTierModels, memberOutput, type TierExecution, type TierSpec } from '../../model/cascade.js';
import type { PreparedManifest } from '../../model/manifest.js';
import { seededRandom } from '../../model/numeric.js';
import { OnnxSession, servingSessionOptions } from '../../model/onnx-session.js';
import { headOutputProblem } from '../../model/ramp-head.js';
import type { HostTensor } from '../../model/tensor.js';
import {
  batchRows,
  type BatchInput,
  type BatchResult,
  type ExecutorFault,
  type ExitPlan,
  type RampReadings,
  type RowExit,
} from '../backend.js';
import { BackboneRunner, errorMessage, selectFeeds } from './backbone-runner.js';

interface Tier {
  spec: TierSpec;
  /** One session (merged members) or one per member; together they write member_0..k−1. */
  sessions: OnnxSession[];
  /** Per session, the member outputs it writes. */
  outputs: string[][];
}

/** Loads a tier's sessions (merged or one per member). */
async function loadTier(
  spec: TierSpec,
  inputs: readonly string[],
  execution: TierExecution,
  intraOpThreads: number,
): Promise<Tier> {
  const models = await buildTierModels(spec, inputs, execution);
  const sessions = await Promise.all(
    models.map((bytes) => OnnxSession.create(bytes, servingSessionOptions(intraOpThreads))),
  );
  // Member i writes member_<i> either way (src/model/cascade.ts, buildTierModels).
  const outputs =
    execution === 'merged'
      ? [spec.members.map((_, i) => memberOutput(i))]
      : spec.members.map((_, i) => [memberOutput(i)]);
  return { spec, sessions, outputs };
}

/** Batch sizes a tier is timed at (those the backbone's profile has); the others are interpolated. */
const TIMED_BATCH_SIZES = [1, 2, 4, 8, 16, 32, 64];
const PROFILE_RUNS = { warmup: 2, timed: 7 } as const;

/**
 * Each tier's time per call at each of the backbone profile's batch sizes (tierMs[t][i]; text
 * models at the profile's sequence length for that size), as the tuner's latency model needs it
 * (tuner/latency-model.ts). Measured when the server loads the cascade — the members are whatever
 * the SLO file names, so nothing measured them before — on the loading thread (the server is not
 * serving yet), with the executor's session settings: the median of a few calls at a few sizes,
 * linear in between. Also the first check that every member runs on the served model's input
 * and gives its number of classes.
 */
export async function profileTiers(
  manifest: PreparedManifest,
  tiers: readonly TierSpec[],
  execution: TierExecution,
  intraOpThreads: number,
): Promise<number[][]> {
  const inputs = manifest.model.inputs.map((io) => io.name);
  const sizes = manifest.profile.batchSizes;
  const classes = manifest.model.classes;
  const out: number[][] = [];
  for (const [t, spec] of tiers.entries()) {
    const tier = await loadTier(spec, inputs, execution, intraOpThreads);
    try {
      const measured = new Map<number, number>();
      for (const [i, size] of sizes.entries()) {
        if (!TIMED_BATCH_SIZES.includes(size) && i !== 0) continue;
        const feeds = profileFeeds(manifest, size, manifest.profile.sequenceLengths?.[i]);
        const times: number[] = [];
        for (let run = 0; run < PROFILE_RUNS.warmup + PROFILE_RUNS.timed; run++) {
          const t0 = performance.now();
          const probs = await CascadeRunner.runTier(tier, feeds);
          if (run >= PROFILE_RUNS.warmup) times.push(performance.now() - t0);
          if (run > 0) continue;
          probs.forEach((p, m) => {
            const problem = headOutputProblem(p, size, classes);
            if (problem !== undefined)
              throw new Error(
                `cascade tier ${t} member ${spec.members[m]}: ${problem} (the served model has ${classes} classes)`,
              );
          });
        }
        times.sort((a, b) => a - b);
        measured.set(size, times[Math.floor(times.length / 2)] as number);
      }
      out.push(sizes.map((size) => interpolate(measured, size)));
    } finally {
      for (const s of tier.sessions) await s.release();
    }
  }
  return out;
}

/** The measured value at `size`, or linear between the nearest measured sizes (proportional beyond the last). */
function interpolate(measured: ReadonlyMap<number, number>, size: number): number {
  const known = [...measured.keys()].sort((a, b) => a - b);
  const exact = measured.get(size);
  if (exact !== undefined) return exact;
  const below = known.filter((k) => k < size).at(-1) ?? known[0] ?? size;
  const above = known.find((k) => k > size);
  const low = measured.get(below) as number;
  if (above === undefined) return (low * size) / below;
  const high = measured.get(above) as number;
  return low + ((high - low) * (size - below)) / (above - below);
}

/**
 * A batch to time with: mid-grey pixels for an image model; for a text model, every row `length`
 * ids long (small ids every vocabulary has) with a full mask, type ids zero.
 */
export function profileFeeds(manifest: PreparedManifest, rows: number, length = 128): BatchInput {
  const feeds: BatchInput = {};
  for (const io of manifest.model.inputs) {
    const dims = io.dims.map((d, k) => (k === 0 ? rows : typeof d === 'number' && d > 0 ? d : length));
    const n = dims.reduce((a, b) => a * b, 1);
    if (io.type === 'int64') {
      const text = manifest.model.text;
      const mask = text && io.name === text.inputs.mask;
      const ids = text && io.name === text.inputs.ids;
      feeds[io.name] = {
        type: 'int64',
        dims,
        data: BigInt64Array.from({ length: n }, (_, j) => (mask ? 1n : ids ? BigInt(1 + (j % 50)) : 0n)),
      };
    } else {
      feeds[io.name] = { type: 'float32', dims, data: new Float32Array(n).fill(0.5) };
    }
  }
  return feeds;
}

export class CascadeRunner {
  /** Exit id → why the runner disabled that tier (backbone ramps are the backbone runner's). */
  private readonly disabled = new Map<number, string>();
  private faults: ExecutorFault[] = [];

  private constructor(
    private readonly manifest: PreparedManifest,
    private readonly tiers: Tier[],
    private readonly backbone: BackboneRunner,
    private readonly random: () => number,
  ) {}

  /** @param options.seed seeds the probe draws (tests); a random seed otherwise. */
  static async load(
    dir: string,
    manifest: PreparedManifest,
    tiers: readonly TierSpec[],
    execution: TierExecution,
    intraOpThreads: number,
    options: { seed?: number } = {},
  ): Promise<CascadeRunner> {
    const inputs = manifest.model.inputs.map((io) => io.name);
    const loaded: Tier[] = [];
    try {
      for (const spec of tiers) loaded.push(await loadTier(spec, inputs, execution, intraOpThreads));
      const backbone = await BackboneRunner.load(dir, manifest, intraOpThreads, options);
      return new CascadeRunner(manifest, loaded, backbone, seededRandom(options.seed ?? randomInt(2 ** 32)));
    } catch (err) {
      for (const t of loaded) for (const s of t.sessions) await s.release();
      throw err;
    }
  }

  /**
   * Runs every member of `tier` on `feeds`, returning each member's probabilities. One session
   * call per session (one in all when merged).
   */
  static async runTier(tier: Tier, feeds: BatchInput): Promise<Float32Array[]> {
    const probs: Float32Array[] = [];
    for (const [j, session] of tier.sessions.entries()) {
      const wanted = tier.outputs[j] as string[];
      const own: Record<string, HostTensor> = {};
      for (const name of session.inputNames) own[name] = feeds[name] as HostTensor;
      const out = await session.run(own, wanted);
      for (const name of wanted) probs.push(out[name]?.data as Float32Array);
    }
    return probs;
  }

  async run(input: BatchInput, plan: ExitPlan, onExit: (exits: RowExit[]) => void): Promise<BatchResult> {
    const started = performance.now();
    const T = this.tiers.length;
    const classes = this.manifest.model.classes;
    const rows = batchRows(input);
    const tierPlan = plan.ramps.filter((r) => r.id < T && !this.disabled.has(r.id)).sort((a, b) => a.id - b.id);
    const rampPlan: ExitPlan = {
      ...plan,
      ramps: plan.ramps.filter((r) => r.id >= T).map((r) => ({ ...r, id: r.id - T })),
    };
    const exitRamp = new Int32Array(rows).fill(-1);
    const readings: RampReadings[] = [];
    const segmentMs: number[] = [];
    const probe = new Uint8Array(rows).fill(1);
    if (plan.mode === 'drop' && tierPlan.length + rampPlan.ramps.length > 0)
      for (let i = 0; i < rows; i++) probe[i] = this.random() < plan.feedbackFraction ? 1 : 0;

    /** alive[i] = original row index of the i-th row still in the batch. */
    let alive = Array.from({ length: rows }, (_, i) => i);
    let feeds = input;
    for (const { id, threshold } of tierPlan) {
      if (alive.length === 0) break;
      const tier = this.tiers[id] as Tier;
      const t0 = performance.now();
      let memberProbs: Float32Array[];
      try {
        memberProbs = await CascadeRunner.runTier(tier, feeds);
      } catch (err) {
        this.disable(id, `its members failed on a batch of ${alive.length} row(s) (${errorMessage(err)})`);
        continue;
      }
      segmentMs.push(performance.now() - t0);
      const problem = memberProbs.map((p) => headOutputProblem(p, alive.length, classes)).find((x) => x !== undefined);
      if (problem !== undefined) {
        this.disable(id, `a member on a batch of ${alive.length} row(s): ${problem}`);
        continue;
      }
      const reading: RampReadings = {
        ramp: id,
        rows: Int32Array.from(alive),
        argmax: new Int32Array(alive.length),
        confidence: new Float32Array(alive.length),
        score: new Float32Array(alive.length),
      };
      const exits: RowExit[] = [];
      alive.forEach((row, i) => {
        const r = readTier(tier.spec.rule, memberProbs, i, classes);
        reading.argmax[i] = r.argmax;
        reading.confidence[i] = r.confidence;
        reading.score[i] = r.score;
        if (exitRamp[row] === -1 && threshold !== null && r.score >= threshold) {
          exitRamp[row] = id;
          exits.push({
            row,
            ramp: id,
            argmax: r.argmax,
            confidence: r.confidence,
            probs: r.probs,
            votes: r.votes,
            agreement: r.agreement,
          });
        }
      });
      readings.push(reading);
      if (exits.length > 0) onExit(exits);
      if (plan.mode === 'drop' && exits.length > 0) {
        alive = alive.filter((row) => exitRamp[row] === -1 || probe[row] === 1);
        feeds = alive.length === rows ? input : selectFeeds(input, alive);
      }
    }

    const faults = (): ExecutorFault[] => {
      const own = this.faults;
      this.faults = [];
      return own;
    };
    if (alive.length === 0) {
      const all = faults();
      return {
        finalRows: new Int32Array(0),
        finalProbs: new Float32Array(0),
        classes,
        readings,
        exitRamp,
        probe,
        timings: { segmentMs, headMs: [], totalMs: performance.now() - started },
        ...(all.length > 0 ? { faults: all } : {}),
      };
    }
    // The served model, on the rows every tier passed on (and the probes).
    const passed = alive;
    const result = await this.backbone.run(
      feeds,
      rampPlan,
      (exits) => {
        // A probe a tier answered runs on for its readings; it is answered once, by that tier.
        const own = exits
          .map((e) => ({ ...e, row: passed[e.row] as number, ramp: e.ramp + T }))
          .filter((e) => exitRamp[e.row] === -1);
        if (own.length > 0) onExit(own);
      },
      undefined,
      Uint8Array.from(passed, (row) => probe[row] as number),
    );
    for (const r of result.readings)
      readings.push({ ...r, ramp: r.ramp + T, rows: Int32Array.from(r.rows, (i) => passed[i] as number) });
    result.exitRamp.forEach((ramp, i) => {
      const row = passed[i] as number;
      if (ramp >= 0 && exitRamp[row] === -1) exitRamp[row] = ramp + T;
    });
    const all = [
      ...faults(),
      ...(result.faults ?? []).map((f): ExecutorFault =>
        f.kind === 'ramp-disabled' ? { ...f, ramp: f.ramp + T } : { ...f, ramps: f.ramps.map((r) => r + T) },
      ),
    ];
    return {
      finalRows: Int32Array.from(result.finalRows, (i) => passed[i] as number),
      finalProbs: result.finalProbs,
      classes,
      readings,
      exitRamp,
      probe,
      timings: {
        segmentMs: [...segmentMs, ...result.timings.segmentMs],
        headMs: result.timings.headMs,
        totalMs: performance.now() - started,
      },
      ...(all.length > 0 ? { faults: all } : {}),
    };
  }

  private disable(id: number, reason: string): void {
    if (this.disabled.has(id)) return;
    this.disabled.set(id, reason);
    this.faults.push({ kind: 'ramp-disabled', ramp: id, reason });
  }

  async release(): Promise<void> {
    for (const t of this.tiers) for (const s of t.sessions) await s.release();
    await this.backbone.release();
  }
}
