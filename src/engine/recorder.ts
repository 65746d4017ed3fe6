/**
 * `offramp record`: runs inputs through a prepared model with every ramp active and no ramp
 * allowed to answer (all thresholds "never"), so each row yields a complete feedback record:
 * every ramp's reading and the final answer. The tuner and the bench replay such traces.
 *
 * Trace format (JSON Lines): the first line is a header
 *   {"offramp_trace":1, "model", "policy", "batch_size", "classes", "labels"?, "ramps":[{id, computeBefore}], "profile"}
 * and every further line is one FeedbackRecord (src/engine/feedback.ts) in input order:
 *   {"t", "batchSize", "exit":-1, "ramps":[{id, argmax, confidence, score}], "final":{argmax, confidence}, "probe":true, "label"?}
 * (release mode runs every row to the end, so every recorded row is a probe; older traces lack "probe").
 */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { readManifest } from '../model/manifest.js';
import type { RowSource } from '../model/input-rows.js';
import type { HostTensor } from '../model/tensor.js';
import type { ExitPolicyKind } from '../../tuner/exit-policy.js';
import { BackboneRunner } from './executor/backbone-runner.js';
import { batchFeedback } from './feedback.js';

export interface RecordOptions {
  modelDir: string;
  /** The inputs, in trace order. */
  rows: RowSource;
  /** True class per row, stored in the records. */
  labels?: Int32Array;
  out: string;
  batchSize: number;
  policy: ExitPolicyKind;
  intraOpThreads: number;
  onProgress?: (done: number, total: number) => void;
}

export interface RecordSummary {
  rows: number;
  ramps: number;
  /** Share of rows on which each ramp agrees with the final layer. */
  agreement: Record<number, number>;
  /** Accuracy of the full model against the labels, when labels were given. */
  accuracy?: number;
}

export async function recordTrace(options: RecordOptions): Promise<RecordSummary> {
  const manifest = await readManifest(options.modelDir);
  const spec = manifest.model.inputs[0];
  if (!spec) throw new Error(`${options.modelDir}: manifest declares no input`);
  const rows = options.rows;
  if (options.labels && options.labels.length < rows.rows) {
    throw new Error(`labels hold ${options.labels.length} rows but the data holds ${rows.rows}`);
  }
  const runner = await BackboneRunner.load(options.modelDir, manifest, options.intraOpThreads);
  const plan = {
    policy: options.policy,
    patience: 1,
    mode: 'release' as const,
    feedbackFraction: 1,
    ramps: manifest.ramps.map((r) => ({ id: r.id, threshold: null })),
  };
  const out = createWriteStream(options.out);
  const write = async (line: string): Promise<void> => {
    if (!out.write(line + '\n')) await once(out, 'drain');
  };
  const agree = new Map<number, number>();
  let correct = 0;
  try {
    await write(
      JSON.stringify({
        offramp_trace: 1,
        model: manifest.name,
        policy: options.policy,
        batch_size: options.batchSize,
        classes: manifest.model.classes,
        ...(manifest.model.labels ? { labels: manifest.model.labels } : {}),
        // The solo-exit curves let replay start a tuner where a served one starts (tuner/calibration.ts).
        ramps: manifest.ramps.map((r) => ({ id: r.id, computeBefore: r.computeBefore, soloCurve: r.soloCurve })),
        profile: manifest.profile,
      }),
    );
    for (let start = 0; start < rows.rows; start += options.batchSize) {
      const indices = Array.from({ length: Math.min(options.batchSize, rows.rows - start) }, (_, i) => start + i);
      const result = await runner.run(rows.feeds(indices)[spec.name] as HostTensor, plan, () => undefined);
      const records = batchFeedback(result, Date.now());
      for (const [i, record] of records.entries()) {
        const label = options.labels?.[indices[i] as number];
        if (label !== undefined) {
          record.label = label;
          if (record.final?.argmax === label) correct++;
        }
        for (const reading of record.ramps)
          if (reading.argmax === record.final?.argmax) agree.set(reading.id, (agree.get(reading.id) ?? 0) + 1);
        await write(JSON.stringify(record));
      }
      options.onProgress?.(start + indices.length, rows.rows);
    }
  } finally {
    out.end();
    await once(out, 'close');
    await runner.release();
  }
  return {
    rows: rows.rows,
    ramps: manifest.ramps.length,
    agreement: Object.fromEntries(manifest.ramps.map((r) => [r.id, (agree.get(r.id) ?? 0) / rows.rows])),
    ...(options.labels ? { accuracy: correct / rows.rows } : {}),
  };
}
