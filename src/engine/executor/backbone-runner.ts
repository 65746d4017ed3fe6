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
 * Drop mode and feedback: an exited row leaves the batch, except probes. Before a batch runs,
 * each row is drawn as a probe with probability `plan.feedbackFraction`; a probe runs to the end
 * whatever its exits, so it carries every active ramp's reading and the final answer. Drawing
 * before any ramp has spoken is what makes probes an unbiased sample: keeping exited rows by a
 * draw at each exit would keep every row no ramp answered but only some that exited, a sample
 * biased toward hard rows.
 */
import { randomInt } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeModel, encodeModel, type ModelProto } from '../../model/onnx-model.js';
import { fuseHead, type FusedSegment } from '../../model/fuse-head.js';
import { splitAtRamps } from '../../model/split-at-ramps.js';
import type { Segment, SegmentIo } from '../../model/split.js';
import { OnnxSession, servingSessionOptions, type SessionOptions } from '../../model/onnx-session.js';
import type { HostTensor, TensorData } from '../../model/tensor.js';
import type { PreparedManifest } from '../../model/manifest.js';
import { seededRandom, softmaxRows } from '../../model/numeric.js';
import { extendStreak, readRamp, shouldExit, type Streak } from '../../../tuner/exit-policy.js';
import type { BatchInput, BatchResult, ExitPlan, RampReadings, RowExit } from '../backend.js';

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

/** Segments to run, in order: their sessions, what each reads and writes, and where each ends. */
interface Chain {
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
): Chain {
  return {
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

  private constructor(
    private readonly manifest: PreparedManifest,
    /** The prepared segments, one per candidate cut. */
    private readonly fine: Chain,
    private readonly heads: OnnxSession[],
    /** The heads' graphs, fused into the re-split segments. */
    private readonly headModels: ModelProto[],
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
    const segments = await Promise.all(manifest.segments.map((s) => OnnxSession.create(join(dir, s.file), opts)));
    const headBytes = await Promise.all(manifest.ramps.map((r) => readFile(join(dir, r.head.file))));
    const heads = await Promise.all(headBytes.map((b) => OnnxSession.create(b, opts)));
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
    const headModels = headBytes.map((b) => decodeModel(b));
    return new BackboneRunner(
      manifest,
      fine,
      heads,
      headModels,
      full,
      batchTensors,
      decodeModel(modelBytes),
      opts,
      random,
    );
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
      );
      this.chains.delete(key);
      this.chains.set(key, chain);
      await this.evict();
      return chain;
    } catch {
      // Keep serving on the prepared segments; an entry that is not a chain is never retried.
      for (const x of sessions) await x.release();
      this.chains.set(key, Promise.resolve(undefined));
      return undefined;
    }
  }

  /** The segment ending at ramp `id` with that ramp's head fused in; undefined (run apart) if it cannot be fused. */
  private fuse(segment: SegmentModel, id: number): FusedSegment | undefined {
    const ramp = this.manifest.ramps[id];
    const head = this.headModels[id];
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
   */
  async run(
    input: BatchInput,
    plan: ExitPlan,
    onExit: (exits: RowExit[]) => void,
    onSegmentDone?: (segment: number) => void,
  ): Promise<BatchResult> {
    const started = performance.now();
    const m = this.manifest;
    const classes = m.model.classes;
    const rows = input.dims[0] as number;
    const inputName = m.model.inputs[0]?.name as string;
    const exitRamp = new Int32Array(rows).fill(-1);
    const segmentMs: number[] = [];
    const headMs: number[] = [];
    const readings: RampReadings[] = [];
    // Probes are drawn before any segment runs (see the file comment). Release mode and the
    // vanilla path run every row to the end: the whole batch is the sample.
    const probe = new Uint8Array(rows).fill(1);
    if (plan.mode === 'drop' && plan.ramps.length > 0)
      for (let i = 0; i < rows; i++) probe[i] = this.random() < plan.feedbackFraction ? 1 : 0;
    /** The batch's result, from the rows that reached the final layer and its output for them. */
    const finish = (finalRows: Int32Array, output: Float32Array): BatchResult => ({
      finalRows,
      finalProbs: this.probabilities(output),
      classes,
      readings,
      exitRamp,
      probe,
      timings: { segmentMs, headMs, totalMs: performance.now() - started },
    });

    // Vanilla path: with no active ramp the unsplit model is the fastest way to the answer.
    if (plan.ramps.length === 0) {
      const t0 = performance.now();
      const out = (await this.full.run({ [inputName]: input }, [m.model.output]))[m.model.output] as HostTensor;
      segmentMs.push(performance.now() - t0);
      return finish(
        Int32Array.from({ length: rows }, (_, i) => i),
        out.data as Float32Array,
      );
    }

    const thresholdOf = new Map(plan.ramps.map((r) => [r.id, r.threshold]));
    let pool: Record<string, HostTensor> = { [inputName]: input };
    /** alive[i] = original row index of the i-th row still in the batch. */
    let alive = Array.from({ length: rows }, (_, i) => i);
    const streaks = new Array<Streak | undefined>(rows);

    const chain = this.chainFor(plan);
    for (let j = 0; j < chain.sessions.length; j++) {
      const feeds: Record<string, HostTensor> = {};
      for (const name of chain.inputs[j] as string[]) feeds[name] = pool[name] as HostTensor;
      const t0 = performance.now();
      Object.assign(pool, await (chain.sessions[j] as OnnxSession).run(feeds, chain.outputs[j]));
      segmentMs.push(performance.now() - t0);
      // A fused head's probabilities are not a tensor later segments read: take them out of the pool.
      const fused = chain.fusedProbs[j];
      const fusedProbs = fused ? pool[fused] : undefined;
      if (fused) delete pool[fused];
      const k = chain.endsAt[j] as number;
      onSegmentDone?.(k);

      const ramp = m.ramps[k];
      if (!ramp || !thresholdOf.has(ramp.id) || alive.length === 0) continue;
      const threshold = thresholdOf.get(ramp.id) ?? null;
      let probs: Float32Array;
      if (fusedProbs) {
        // The head ran inside the segment's call; its time is part of segmentMs.
        probs = fusedProbs.data as Float32Array;
        headMs.push(0);
      } else {
        const h0 = performance.now();
        probs = (await (this.heads[k] as OnnxSession).run({ [ramp.tensor]: pool[ramp.tensor] as HostTensor }))['probs']
          ?.data as Float32Array;
        headMs.push(performance.now() - h0);
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
    for (const s of [...chains.flatMap((c) => c.sessions), ...this.heads, this.full]) await s.release();
  }
}
