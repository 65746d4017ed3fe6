/**
 * Loading one ramp's head so that a broken head costs its ramp, never the model: the file is
 * read, decoded as ONNX, given a session and run once on one row before the ramp may serve. Any
 * failure is returned as a reason (`problem`), and the caller serves the model without that ramp.
 * The executor (src/engine/executor/backbone-runner.ts) loads its heads through this, and the
 * serving thread checks a model's heads with it at load (`rampHeadProblems`) so that its exit
 * plans never name a ramp the executor cannot run.
 *
 * The one-row run feeds zeros shaped like the ramp's tensor (symbolic sizes as 1). It catches a
 * head that reads another shape than the backbone gives it, returns the wrong number of classes,
 * or has non-finite weights (a NaN weight makes every output NaN, zero input or not). A head that
 * fails only on some inputs or batch sizes is caught at run time, where the executor disables it
 * the same way.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PreparedManifest, RampEntry } from './manifest.js';
import { decodeModel, type ModelProto } from './onnx-model.js';
import { OnnxSession, servingSessionOptions, type SessionOptions } from './onnx-session.js';
import type { HostTensor, TensorData } from './tensor.js';

/** The output of a head graph holding its class probabilities (ramps/heads/head-onnx.ts names it). */
export const HEAD_PROBS_OUTPUT = 'probs';

export interface RampHead {
  session: OnnxSession;
  /** The head's graph (fused into re-split segments). */
  model: ModelProto;
}

export type RampHeadLoad = { head: RampHead; problem?: undefined } | { head?: undefined; problem: string };

/**
 * Why a head's probabilities for `rows` rows cannot be read, or undefined when they can: the
 * right count (rows × classes), every value finite. The executor applies it to every batch.
 */
export function headOutputProblem(probs: TensorData | undefined, rows: number, classes: number): string | undefined {
  if (!probs) return `it returned no '${HEAD_PROBS_OUTPUT}' output`;
  if (probs.length !== rows * classes)
    return `it returned ${probs.length} values for ${rows} row(s) of ${classes} classes`;
  for (let i = 0; i < probs.length; i++)
    if (!Number.isFinite(probs[i])) return `it returned a non-finite probability (${String(probs[i])})`;
  return undefined;
}

/** One row of zeros shaped and typed like ramp `ramp`'s tensor, as the backbone hands it to the head. */
function oneRowOf(manifest: PreparedManifest, ramp: RampEntry): HostTensor {
  const io = manifest.segments.flatMap((s) => s.outputs).find((x) => x.name === ramp.tensor);
  const dims = (io?.dims ?? ramp.dims).map((d, i) => (i === 0 || typeof d !== 'number' ? 1 : d));
  const size = dims.reduce((a, b) => a * b, 1);
  const type = io?.type ?? 'float32';
  const data: TensorData =
    type === 'int64' ? new BigInt64Array(size) : type === 'int32' ? new Int32Array(size) : new Float32Array(size);
  return { type, data, dims };
}

/** Loads and checks ramp `ramp`'s head from prepared model directory `dir`; never throws. */
export async function loadRampHead(
  dir: string,
  manifest: PreparedManifest,
  ramp: RampEntry,
  options: SessionOptions,
): Promise<RampHeadLoad> {
  const file = ramp.head.file;
  let bytes: Uint8Array;
  try {
    bytes = await readFile(join(dir, file));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return {
      problem:
        code === 'ENOENT' ? `head file ${file} is missing` : `head file ${file} cannot be read (${message(err)})`,
    };
  }
  let model: ModelProto;
  try {
    model = decodeModel(bytes);
    if (!model.graph || (model.graph.node ?? []).length === 0) throw new Error('it has no graph');
  } catch (err) {
    return { problem: `head file ${file} is not a valid ONNX model (${message(err)})` };
  }
  let session: OnnxSession;
  try {
    session = await OnnxSession.create(bytes, options);
  } catch (err) {
    return { problem: `head file ${file} does not load in onnxruntime (${message(err)})` };
  }
  let problem: string | undefined;
  try {
    const out = await session.run({ [ramp.tensor]: oneRowOf(manifest, ramp) }, [HEAD_PROBS_OUTPUT]);
    problem = headOutputProblem(out[HEAD_PROBS_OUTPUT]?.data, 1, manifest.model.classes);
  } catch (err) {
    problem = `it failed (${message(err)})`;
  }
  if (problem === undefined) return { head: { session, model } };
  await session.release();
  return { problem: `head file ${file} failed a one-row test run: ${problem}` };
}

/**
 * Ramp id → why its head cannot serve, for every ramp of the model whose head fails
 * `loadRampHead`; empty when all are sound. Runs each head once, on one thread, and releases it.
 */
export async function rampHeadProblems(dir: string, manifest: PreparedManifest): Promise<Map<number, string>> {
  const problems = new Map<number, string>();
  for (const ramp of manifest.ramps) {
    const load = await loadRampHead(dir, manifest, ramp, servingSessionOptions(1));
    if (load.head) await load.head.session.release();
    else problems.set(ramp.id, load.problem);
  }
  return problems;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
