/**
 * The full model's and every ramp's prediction for each test item, from `offramp record` (every
 * ramp scoring, none answering; format in src/engine/recorder.ts). It is the reference the bench
 * compares served answers with, and what the oracle is computed from.
 *
 * Recording the 10k test images takes ~20 s on 2 cores (the 1,182 test emails about as long), so
 * the trace is kept under tmp/bench/, named by a hash of the manifest and the data file's size and
 * mtime: a re-prepared model or new data records afresh.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, readFile, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { FeedbackRecord } from '../../tuner/feedback-record.js';
import type { Workload } from './workload.js';

export interface ItemTrace {
  /** The full model's class. */
  final: number;
  /** Earliest ramp whose class equals the full model's, or -1 when none does. */
  earliestAgreeingRamp: number;
}

async function tracePath(modelDir: string, data: string, cacheDir: string): Promise<string> {
  const manifest = await readFile(join(modelDir, 'manifest.json'));
  const stats = await stat(data);
  const key = createHash('sha256').update(manifest).update(`${stats.size}:${stats.mtimeMs}`).digest('hex').slice(0, 12);
  return join(cacheDir, `trace-${key}.jsonl`);
}

async function record(modelDir: string, dataArgs: readonly string[], out: string): Promise<void> {
  const partial = `${out}.partial`;
  const child = spawn(
    process.execPath,
    ['bin/offramp.js', 'record', '--model', modelDir, ...dataArgs, '--out', partial, '--json'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`offramp record exited with ${code}: ${err.trim()}`);
  await rename(partial, out);
}

/** Per test item, in data order. `recorded` says whether it ran `offramp record` or reused the trace. */
export async function itemTraces(
  modelDir: string,
  workload: Pick<Workload, 'data' | 'recordArgs'>,
  cacheDir: string,
): Promise<{ traces: ItemTrace[]; path: string; recorded: boolean }> {
  await mkdir(cacheDir, { recursive: true });
  const path = await tracePath(modelDir, workload.data, cacheDir);
  const cached = await stat(path).then(
    () => true,
    () => false,
  );
  if (!cached) await record(modelDir, workload.recordArgs, path);
  const lines = (await readFile(path, 'utf8')).split('\n').filter((l) => l.length > 0);
  const traces = lines.slice(1).map((line) => {
    const r = JSON.parse(line) as FeedbackRecord;
    const final = r.final?.argmax ?? -1;
    const agreeing = r.ramps.filter((x) => x.argmax === final).map((x) => x.id);
    return { final, earliestAgreeingRamp: agreeing.length > 0 ? Math.min(...agreeing) : -1 };
  });
  return { traces, path, recorded: !cached };
}
