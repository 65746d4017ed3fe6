/**
 * Re-measures a prepared model's latency profile on this machine and writes it into its
 * manifest. The profile feeds the tuner's savings estimates and the batcher's deadline checks;
 * it belongs to the machine that serves, so a model prepared elsewhere (or profiled while the
 * machine was busy) should be re-profiled where it runs: `offramp profile --model DIR`.
 * Inputs are seeded random rows of the model's input shape: convolution and matrix cost does
 * not depend on the values. A text model's rows are as long as prepare measured them at
 * (`profile.sequenceLengths`), so the figures stay comparable.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { indexGraph } from '../src/model/graph.js';
import { profileLatency } from './latency-profile.js';
import { MANIFEST_FILE, readManifest, type LatencyProfile } from '../src/model/manifest.js';
import { decodeModel } from '../src/model/onnx-model.js';
import { OnnxSession, servingSessionOptions } from '../src/model/onnx-session.js';
import { randomInputs } from './random-input.js';

export interface ReprofileOptions {
  intraOpThreads: number;
  /** Largest batch size (1…maxBatch); default: the sizes the manifest has. */
  maxBatch?: number;
  /** Timed runs per measurement, at most (default 50). */
  runs?: number;
  /** Passes over every batch size (default 3; see ProfileOptions.rounds). */
  rounds?: number;
  onStep?: (done: number, total: number) => void;
}

export async function reprofilePrepared(
  dir: string,
  options: ReprofileOptions,
): Promise<{ before: LatencyProfile; after: LatencyProfile }> {
  const manifest = await readManifest(dir);
  const modelPath = join(dir, manifest.model.file);
  const graph = decodeModel(await readFile(modelPath)).graph;
  if (!graph) throw new Error(`${modelPath}: no graph`);
  const index = indexGraph(graph);
  const session = (file: string): Promise<OnnxSession> =>
    OnnxSession.create(join(dir, file), servingSessionOptions(options.intraOpThreads));
  const segments = await Promise.all(manifest.segments.map((s) => session(s.file)));
  const heads = await Promise.all(manifest.ramps.map((r) => session(r.head.file)));
  const full = await session(manifest.model.file);
  const batchSizes = options.maxBatch
    ? Array.from({ length: options.maxBatch }, (_, i) => i + 1)
    : manifest.profile.batchSizes;
  const runs = options.runs ?? 50;
  // Past the batch sizes prepare measured, a text batch is taken to be padded to the longest length it measured.
  const measured = manifest.profile.sequenceLengths;
  const lengthAt = (batch: number): number => {
    if (!measured) return 1;
    const i = manifest.profile.batchSizes.indexOf(batch);
    return measured[i] ?? Math.max(...measured);
  };
  const sequenceLengths = measured ? batchSizes.map(lengthAt) : undefined;
  try {
    const after = await profileLatency(
      {
        segments: manifest.segments.map((s, k) => ({
          session: segments[k] as OnnxSession,
          inputs: s.inputs.map((i) => i.name),
          outputs: s.outputs.map((o) => o.name),
        })),
        heads: manifest.ramps.map((r, k) => ({ session: heads[k] as OnnxSession, tensor: r.tensor })),
        full,
      },
      (batch) => randomInputs(index, { batch, other: lengthAt(batch) }),
      {
        batchSizes,
        intraOpThreads: options.intraOpThreads,
        maxRuns: runs,
        minRuns: Math.min(5, runs),
        budgetMs: 100,
        rounds: options.rounds ?? 3,
        ...(sequenceLengths ? { sequenceLengths } : {}),
      },
      options.onStep,
    );
    const before = manifest.profile;
    await writeFile(join(dir, MANIFEST_FILE), JSON.stringify({ ...manifest, profile: after }, null, 2) + '\n');
    return { before, after };
  } finally {
    for (const s of [...segments, ...heads, full]) await s.release();
  }
}
