/**
 * Runs one batch through a ramped backbone — one prepared model split into segments with exit
 * ramps between them — scoring active ramps after the segment they follow, emitting exits the
 * moment a ramp decides them. Used inside worker threads (executor/worker.ts) and by
 * `offramp record`; it calls onnxruntime, so never on the serving thread. Another kind of
 * execution plan (a cascade of whole models) would get its own runner beside this file.
 *
 * Which segments: the prepared ones cut at every candidate ramp, or — once a ramp set has been
 * in use for a batch — the model re-split at just the active ramps (src/model/split-at-ramps.ts),
 * built in the background and kept for the next batches with that set, each active ramp's head
 * fused into the segment ending at its tensor (src/model/fuse-head.ts) so one call returns the
 * boundary and the head's probabilities. Fewer boundaries and calls run faster; a re-split is
 * paid once and back within tens of batches (bench/segment-granularity.ts measures both). While
 * it is being built, batches run on the prepared segments: a ramp-set change never waits or
 * fails a batch.
 *
 * Faults cost a ramp, never an answer. A ramp whose head fails to load, fails its one-row test
 * (src/model/ramp-head.ts), throws on a batch or scores a non-finite probability for any row is
 * disabled: on that batch it answers no row (its rows go on, as if it were at "never" but
 * without a reading), and from then on the runner leaves it out of every plan it is given. A
 * re-split segment that throws sends its batch back to the prepared segments (the rows still in
 * it restart from the input; ramps that already read them are not read again) and disables the
 * ramp whose head was fused into it. Each fault is reported once, with the next batch result
 * (`BatchResult.faults`), so the serving thread stops planning on it.
 *
 * Drop mode and feedback: an exited row leaves the batch, except probes. Before a batch runs,
 * each row is drawn as a probe with probability `plan.feedbackFraction`; a probe runs to the end
 * whatever its exits, so it carries every active ramp's reading and the final answer. Drawing
 * before any ramp has spoken is what makes probes an unbiased sample: keeping exited rows by a
 * draw at each exit would keep every row no ramp answered but only some that exited, a sample
 * biased toward hard rows.
 *
 * Every ramp at "never" (`isDormant`, either mode): no row can exit, so only probes need the
 * heads (their readings are what the tuner learns from); probes are drawn at the plan's share in
 * release mode too. The other rows take the unsplit model, as with no ramp active, and the probes
 * the ramped segments: a model whose tuner holds every ramp back — after a tightening, or while
 * no ramp pays on current traffic — pays for heads and boundaries on the probe share only
 * (`runDormant`).
 */
import { randomInt } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeModel, encodeModel, type ModelProto } from '../../model/onnx-model.js';
import { HEAD_PROBS_OUTPUT, headOutputProblem, loadRampHead } from '../../model/ramp-head.js';
import { fuseHead, type FusedSegment } from '../../model/fuse-head.js';
import { splitAtRamps } from '../../model/split-at-ramps.js';
import type { Segment, SegmentIo } from '../../model/split.js';
import { OnnxSession, servingSessionOptions, type SessionOptions } from '../../model/onnx-session.js';
import type { HostTensor, TensorData } from '../../model/tensor.js';
import type { PreparedManifest } from '../../model/manifest.js';
import { seededRandom, softmaxRows } from '../../model/numeric.js';
import { drawsProbes, extendStreak, isDormant, readRamp, shouldExit, type Streak } from '../../../tuner/exit-policy.js';
import {
  batchRows,
  type BatchInput,
  type BatchResult,
  type ExecutorFault,
  type ExitPlan,
  type RampReadings,
  type RowExit,
} from '../backend.js';

/** Keeps the listed rows (by position) of a tensor whose first dimension is the batch. */
export function selectRows(t: HostTensor, keep: number[]): HostTensor {
  const rows = t.dims[0] as number;
  const rowSize = rows === 0 ? 0 : t.data.length / rows;
  const Ctor = t.data.constructor as new (n: number) => TensorData;
  const out = new Ctor(keep.length * rowSize);
  keep.forEach((r, i) =>
    (out as Float32Array).set((t.data as Float32Array).subarray(r * rowSize, (r + 1) * rowSize), i * rowSize),
  );
  return { type: t.type, data: out, dims: [keep.length, ...t.dims.slice(1)] };
}

/** Keeps the listed rows of every tensor of a batch's feeds. */
export function selectFeeds(input: BatchInput, keep: number[]): Record<string, HostTensor> {
  return Object.fromEntries(Object.entries(input).map(([name, t]) => [name, selectRows(t, keep)]));
}

/** Segments to run, in order: their sessions, what each reads and writes, and where each ends. */
interface Chain {
  /** The ramp set it was re-split at ("0,3,5"); undefined for the prepared segments. */
  rampSet?: string;
  sessions: OnnxSession[];
  inputs: string[][];
  outputs: string[][];
  /** Prepared-segment index each segment ends at: the ramp that may follow it has that id. */
  endsAt: number[];
  /**
   * Per segment, the output holding the following ramp's probabilities when its head is fused
   * into the segment (src/model/fuse-head.ts); undefined where the head runs as its own session.
   */
  fusedProbs: (string | undefined)[];
}

function chainOf(
  sessions: OnnxSession[],
  segments: readonly { inputs: SegmentIo[]; outputs: SegmentIo[] }[],
  endsAt: number[],
  fusedProbs: (string | undefined)[] = [],
  rampSet?: string,
): Chain {
  return {
    ...(rampSet === undefined ? {} : { rampSet }),
    sessions,
    inputs: segments.map((x) => x.inputs.map((io) => io.name)),
    outputs: segments.map((x, j) => [...x.outputs.map((io) => io.name), ...(fusedProbs[j] ? [fusedProbs[j]] : [])]),
    endsAt,
    fusedProbs: segments.map((_, j) => fusedProbs[j]),
  };
}

type SegmentModel = Segment['model'];

/** Re-split chains kept per worker (each holds a session per segment). */
const MAX_CHAINS = 4;

export class BackboneRunner {
  /** Re-split chains by ramp set ("0,3,5"), most recently used last; a promise while being built. */
  private readonly chains = new Map<string, Chain | Promise<Chain | undefined>>();
  /** Faults not yet reported: they go out with the next batch result. */
  private faults: ExecutorFault[] = [];

  private constructor(
    private readonly manifest: PreparedManifest,
    /** The prepared segments, one per candidate cut. */
    private readonly fine: Chain,
    /** Per ramp id, its head's session; undefined for a head that failed to load. */
    private readonly heads: (OnnxSession | undefined)[],
    /** The heads' graphs, fused into the re-split segments. */
    private readonly headModels: (ModelProto | undefined)[],
    /** Ramp id → why it was disabled; such a ramp never runs again (see the file comment). */
    private readonly disabled: Map<number, string>,
    private readonly full: OnnxSession,
    /** Names of tensors whose first dimension is the batch (so drop mode can subset them). */
    private readonly batchTensors: Set<string>,
    private readonly model: ModelProto,
    private readonly sessionOptions: SessionOptions,
    /** Draws drop mode's probes. */
    private readonly random: () => number,
  ) {}

  /** @param options.seed seeds the probe draws (tests); a random seed otherwise. */
  static async load(
    dir: string,
    manifest: PreparedManifest,
    intraOpThreads: number,
    options: { seed?: number } = {},
  ): Promise<BackboneRunner> {
    // No spinning: between batches the serving thread needs the cores that idle onnxruntime
    // threads would otherwise busy-wait on (measured by bench/serving-overhead.ts).
    const opts = servingSessionOptions(intraOpThreads);
    // A segment that fails to load fails the load: the model cannot be served without it. A head
    // that fails costs only its ramp.
    const segments = await Promise.all(manifest.segments.map((s) => OnnxSession.create(join(dir, s.file), opts)));
    const headLoads = await Promise.all(manifest.ramps.map((r) => loadRampHead(dir, manifest, r, opts)));
    const disabled = new Map<number, string>();
    manifest.ramps.forEach((ramp, i) => {
      const problem = headLoads[i]?.problem;
      if (problem !== undefined) disabled.set(ramp.id, problem);
    });
    const modelBytes = await readFile(join(dir, manifest.model.file));
    const full = await OnnxSession.create(modelBytes, opts);
    const batchTensors = new Set<string>();
    for (const s of manifest.segments)
      for (const io of [...s.inputs, ...s.outputs])
        if (io.dims[0] === 'batch' || io.dims[0] === -1) batchTensors.add(io.name);
    for (const io of manifest.model.inputs) batchTensors.add(io.name);
    const fine = chainOf(
      segments,
      manifest.segments,
      manifest.segments.map((_, k) => k),
    );
    const random = seededRandom(options.seed ?? randomInt(2 ** 32));
    const runner = new BackboneRunner(
      manifest,
      fine,
      headLoads.map((load) => load.head?.session),
      headLoads.map((load) => load.head?.model),
      disabled,
      full,
      batchTensors,
      decodeModel(modelBytes),
      opts,
      random,
    );
    runner.faults = [...disabled].map(([ramp, reason]) => ({ kind: 'ramp-disabled', ramp, reason }));
    return runner;
  }

  /** Ramp id → why the runner disabled it (at load or on a batch). */
  get disabledRamps(): ReadonlyMap<number, string> {
    return this.disabled;
  }

  /** Stops running ramp `id` for good and queues the fault for the next result; a second fault of the same ramp is not reported. */
  private disable(id: number, reason: string): void {
    if (this.disabled.has(id)) return;
    this.disabled.set(id, reason);
    this.faults.push({ kind: 'ramp-disabled', ramp: id, reason });
  }

  /** `plan` without the disabled ramps. */
  private servable(plan: ExitPlan): ExitPlan {
    return plan.ramps.some((r) => this.disabled.has(r.id))
      ? { ...plan, ramps: plan.ramps.filter((r) => !this.disabled.has(r.id)) }
      : plan;
  }

  /**
   * The chain for a plan's ramp set: the re-split one when built, else the prepared segments
   * (and the re-split starts building in the background). With every ramp active the re-split
   * cuts where the prepared segments do, but is still built: its heads are fused.
   */
  private chainFor(plan: ExitPlan): Chain {
    const ids = [...new Set(plan.ramps.map((r) => r.id))].sort((a, b) => a - b);
    const key = ids.join(',');
    const entry = this.chains.get(key);
    if (entry && !(entry instanceof Promise)) {
      // Most recently used last.
      this.chains.delete(key);
      this.chains.set(key, entry);
      return entry;
    }
    if (!entry) this.chains.set(key, this.buildChain(key, ids));
    return this.fine;
  }

  private async buildChain(key: string, ids: number[]): Promise<Chain | undefined> {
    const sessions: OnnxSession[] = [];
    try {
      const segments = splitAtRamps(this.model, this.manifest, ids);
      const fusedProbs: (string | undefined)[] = [];
      for (const [j, segment] of segments.entries()) {
        const fused = j < ids.length ? this.fuse(segment.model, ids[j] as number) : undefined;
        fusedProbs.push(fused?.probs);
        sessions.push(await OnnxSession.create(encodeModel(fused?.model ?? segment.model), this.sessionOptions));
      }
      const chain = chainOf(
        sessions,
        segments,
        segments.map((_, j) => (j < ids.length ? (ids[j] as number) : this.manifest.segments.length - 1)),
        fusedProbs,
        key,
      );
      this.chains.delete(key);
      this.chains.set(key, chain);
      await this.evict();
      return chain;
    } catch (err) {
      // Keep serving on the prepared segments; an entry that is not a chain is never retried, so
      // the fault is reported once.
      for (const x of sessions) await x.release();
      this.chains.set(key, Promise.resolve(undefined));
      this.faults.push({ kind: 'resplit-failed', ramps: ids, reason: errorMessage(err) });
      return undefined;
    }
  }

  /** Gives up a re-split chain that failed a batch: its ramp set runs on the prepared segments from now on. */
  private async dropChain(chain: Chain): Promise<void> {
    if (chain.rampSet === undefined) return;
    this.chains.set(chain.rampSet, Promise.resolve(undefined));
    for (const x of chain.sessions) await x.release();
  }

  /** The segment ending at ramp `id` with that ramp's head fused in; undefined (run apart) if it cannot be fused. */
  private fuse(segment: SegmentModel, id: number): FusedSegment | undefined {
    const ramp = this.manifest.ramps[id];
    const head = this.headModels[id];
    if (this.disabled.has(id)) return undefined;
    if (!ramp || !head) return undefined;
    try {
      return fuseHead(segment, head, ramp.tensor, `offramp.head${id}/`);
    } catch {
      return undefined;
    }
  }

  /** Releases the least recently used chains beyond MAX_CHAINS (never the one a running batch holds: that is the newest). */
  private async evict(): Promise<void> {
    const built = [...this.chains].filter((e): e is [string, Chain] => !(e[1] instanceof Promise));
    for (const [key, chain] of built.slice(0, Math.max(0, built.length - MAX_CHAINS))) {
      this.chains.delete(key);
      for (const x of chain.sessions) await x.release();
    }
  }

  /**
   * @param onSegmentDone called after each segment finishes (tests use it to check that exits are
   *   emitted between segments, i.e. before the batch is done).
   * @param drawnProbes the probes, when a caller drew them before the rows came here (a cascade
   *   draws once, before its first tier: executor/cascade-runner.ts); drawn here otherwise.
   */
  async run(
    input: BatchInput,
    requested: ExitPlan,
    onExit: (exits: RowExit[]) => void,
    onSegmentDone?: (segment: number) => void,
    drawnProbes?: Uint8Array,
  ): Promise<BatchResult> {
    const started = performance.now();
    const m = this.manifest;
    const classes = m.model.classes;
    const rows = batchRows(input);
    const plan = this.servable(requested);
    const exitRamp = new Int32Array(rows).fill(-1);
    const segmentMs: number[] = [];
    const headMs: number[] = [];
    const readings: RampReadings[] = [];
    // Probes are drawn before any segment runs (see the file comment). Release mode and the
    // vanilla path run every row to the end: the whole batch is the sample.
    const probe = drawnProbes ? Uint8Array.from(drawnProbes) : new Uint8Array(rows).fill(1);
    if (!drawnProbes && drawsProbes(plan))
      for (let i = 0; i < rows; i++) probe[i] = this.random() < plan.feedbackFraction ? 1 : 0;
    /** The batch's result, from the rows that reached the final layer and its output for them. */
    const finish = (finalRows: Int32Array, output: Float32Array): BatchResult => {
      const faults = this.faults;
      this.faults = [];
      return {
        finalRows,
        finalProbs: this.probabilities(output),
        classes,
        readings,
        exitRamp,
        probe,
        timings: { segmentMs, headMs, totalMs: performance.now() - started },
        ...(faults.length > 0 ? { faults } : {}),
      };
    };

    if (!drawnProbes && isDormant(plan) && probe.includes(0) && probe.includes(1))
      return this.runDormant(input, plan, probe, onExit, onSegmentDone, started);

    // Vanilla path: with no active ramp the unsplit model is the fastest way to the answer.
    if (plan.ramps.length === 0) {
      const t0 = performance.now();
      const out = (await this.full.run(input, [m.model.output]))[m.model.output] as HostTensor;
      segmentMs.push(performance.now() - t0);
      return finish(
        Int32Array.from({ length: rows }, (_, i) => i),
        out.data as Float32Array,
      );
    }

    const thresholdOf = new Map(plan.ramps.map((r) => [r.id, r.threshold]));
    let pool: Record<string, HostTensor> = { ...input };
    /** alive[i] = original row index of the i-th row still in the batch. */
    let alive = Array.from({ length: rows }, (_, i) => i);
    const streaks = new Array<Streak | undefined>(rows);
    /** Ramps that have read this batch: a batch restarted on the prepared segments does not read them again. */
    const read = new Set<number>();

    let chain = this.chainFor(plan);
    for (let j = 0; j < chain.sessions.length; j++) {
      const feeds: Record<string, HostTensor> = {};
      for (const name of chain.inputs[j] as string[]) feeds[name] = pool[name] as HostTensor;
      const t0 = performance.now();
      let outputs: Record<string, HostTensor>;
      try {
        outputs = await (chain.sessions[j] as OnnxSession).run(feeds, chain.outputs[j]);
      } catch (err) {
        // The prepared segments are the model itself: if they fail, the batch fails.
        if (chain === this.fine) throw err;
        // A re-split segment failed: suspect the head fused into it, give up the chain, and
        // restart the rows still in the batch from the input on the prepared segments.
        const fusedRamp = chain.fusedProbs[j] === undefined ? undefined : chain.endsAt[j];
        if (fusedRamp !== undefined)
          this.disable(
            fusedRamp,
            `the re-split segment its head is fused into failed on a batch of ${alive.length} row(s) (${errorMessage(err)})`,
          );
        else
          this.faults.push({
            kind: 'resplit-failed',
            ramps: plan.ramps.map((r) => r.id),
            reason: `a re-split segment failed on a batch of ${alive.length} row(s) (${errorMessage(err)})`,
          });
        await this.dropChain(chain);
        chain = this.fine;
        pool = alive.length === rows ? { ...input } : selectFeeds(input, alive);
        j = -1;
        continue;
      }
      Object.assign(pool, outputs);
      segmentMs.push(performance.now() - t0);
      // A fused head's probabilities are not a tensor later segments read: take them out of the pool.
      const fused = chain.fusedProbs[j];
      const fusedProbs = fused ? pool[fused] : undefined;
      if (fused) delete pool[fused];
      const k = chain.endsAt[j] as number;
      onSegmentDone?.(k);

      const ramp = m.ramps[k];
      if (!ramp || !thresholdOf.has(ramp.id) || read.has(ramp.id) || alive.length === 0) continue;
      read.add(ramp.id);
      const threshold = thresholdOf.get(ramp.id) ?? null;
      let probs: Float32Array;
      if (fusedProbs) {
        // The head ran inside the segment's call; its time is part of segmentMs.
        probs = fusedProbs.data as Float32Array;
        headMs.push(0);
      } else {
        const head = this.heads[k];
        if (!head || this.disabled.has(ramp.id)) continue;
        const h0 = performance.now();
        try {
          const out = await head.run({ [ramp.tensor]: pool[ramp.tensor] as HostTensor }, [HEAD_PROBS_OUTPUT]);
          probs = out[HEAD_PROBS_OUTPUT]?.data as Float32Array;
        } catch (err) {
          this.disable(ramp.id, `its head failed on a batch of ${alive.length} row(s) (${errorMessage(err)})`);
          continue;
        }
        headMs.push(performance.now() - h0);
      }
      // Scores that cannot be read answer no row: the ramp sits this batch out and is disabled.
      const problem = headOutputProblem(probs, alive.length, classes);
      if (problem !== undefined) {
        this.disable(ramp.id, `its head on a batch of ${alive.length} row(s): ${problem}`);
        continue;
      }
      const reading: RampReadings = {
        ramp: ramp.id,
        rows: Int32Array.from(alive),
        argmax: new Int32Array(alive.length),
        confidence: new Float32Array(alive.length),
        score: new Float32Array(alive.length),
      };
      const exits: RowExit[] = [];
      alive.forEach((row, i) => {
        const r = readRamp(plan.policy, probs, i, classes);
        reading.argmax[i] = r.argmax;
        reading.confidence[i] = r.confidence;
        reading.score[i] = r.score;
        const streak = extendStreak(streaks[row], r.argmax);
        streaks[row] = streak;
        if (exitRamp[row] === -1 && shouldExit(plan, threshold, r, streak)) {
          exitRamp[row] = ramp.id;
          exits.push({
            row,
            ramp: ramp.id,
            argmax: r.argmax,
            confidence: r.confidence,
            probs: probs.slice(i * classes, (i + 1) * classes),
          });
        }
      });
      readings.push(reading);
      // Answer now: the rest of the batch keeps running, but these rows are done.
      if (exits.length > 0) onExit(exits);

      if (plan.mode === 'drop' && exits.length > 0) {
        const keep: number[] = [];
        alive.forEach((row, i) => {
          if (exitRamp[row] === -1 || probe[row] === 1) keep.push(i);
        });
        if (keep.length < alive.length) {
          const next: Record<string, HostTensor> = {};
          for (const [name, t] of Object.entries(pool))
            if (this.batchTensors.has(name)) next[name] = selectRows(t, keep);
          pool = next;
          alive = keep.map((i) => alive[i] as number);
        }
        if (alive.length === 0) break; // every row answered: nothing left to compute
      }
    }

    const out = pool[m.model.output];
    return finish(Int32Array.from(alive), out ? (out.data as Float32Array) : new Float32Array(0));
  }

  /**
   * A dormant batch (see the file comment): the probes through the ramped segments (a batch of
   * their own), the other rows through the unsplit model; one result in the batch's row numbering.
   */
  private async runDormant(
    input: BatchInput,
    plan: ExitPlan,
    probe: Uint8Array,
    onExit: (exits: RowExit[]) => void,
    onSegmentDone: ((segment: number) => void) | undefined,
    started: number,
  ): Promise<BatchResult> {
    const probes: number[] = [];
    const others: number[] = [];
    probe.forEach((p, row) => (p === 1 ? probes : others).push(row));
    const toBatchRow = (rows: ArrayLike<number>): Int32Array => Int32Array.from(rows, (i) => probes[i] as number);
    const ramped = await this.run(
      selectFeeds(input, probes),
      plan,
      (exits) => onExit(exits.map((e) => ({ ...e, row: probes[e.row] as number }))),
      onSegmentDone,
      new Uint8Array(probes.length).fill(1),
    );
    const t0 = performance.now();
    const m = this.manifest;
    const out = (await this.full.run(selectFeeds(input, others), [m.model.output]))[m.model.output] as HostTensor;
    const fullMs = performance.now() - t0;
    const exitRamp = new Int32Array(probe.length).fill(-1);
    ramped.exitRamp.forEach((ramp, i) => (exitRamp[probes[i] as number] = ramp));
    const otherProbs = this.probabilities(out.data as Float32Array);
    const finalProbs = new Float32Array(ramped.finalProbs.length + otherProbs.length);
    finalProbs.set(ramped.finalProbs);
    finalProbs.set(otherProbs, ramped.finalProbs.length);
    return {
      ...ramped,
      finalRows: Int32Array.from([...toBatchRow(ramped.finalRows), ...others]),
      finalProbs,
      readings: ramped.readings.map((r) => ({ ...r, rows: toBatchRow(r.rows) })),
      exitRamp,
      probe,
      timings: {
        segmentMs: [...ramped.timings.segmentMs, fullMs],
        headMs: ramped.timings.headMs,
        totalMs: performance.now() - started,
      },
    };
  }

  /** The model's output as class probabilities (a copy: the result is transferred to the serving thread). */
  private probabilities(output: Float32Array): Float32Array {
    return this.manifest.model.outputIsProbability
      ? Float32Array.from(output)
      : softmaxRows(output, this.manifest.model.classes);
  }

  async release(): Promise<void> {
    const chains: Chain[] = [this.fine];
    for (const entry of this.chains.values()) {
      const chain = await entry;
      if (chain) chains.push(chain);
    }
    this.chains.clear();
    for (const s of [...chains.flatMap((c) => c.sessions), ...this.heads, this.full]) await s?.release();
  }
}

/** An error's message, for fault reasons (whatever was thrown). */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
