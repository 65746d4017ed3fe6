/**
 * The bench's side of the load generators: writes a job, runs the client in its own process
 * (bench/load/*-client.ts) and reads back what it measured.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BodyFormat } from '../load/request-body.js';
import type { ClosedLoopResult, OpenLoopJob, OpenLoopResult } from '../load/load-types.js';
import { runTsChild } from './child-process.js';
import type { Schedule } from './schedules.js';

export async function runOpenLoop(
  url: string,
  bodiesPath: string,
  body: BodyFormat,
  schedule: Schedule,
  workDir: string,
  name: string,
  opts: { timeoutMs: number },
): Promise<OpenLoopResult> {
  const jobPath = join(workDir, `${name}.job.json`);
  const outPath = join(workDir, `${name}.result.json`);
  const job: OpenLoopJob = {
    url,
    bodiesPath,
    body,
    offsetsMs: schedule.offsetsMs,
    items: schedule.items,
    timeoutMs: opts.timeoutMs,
    outPath,
  };
  await writeFile(jobPath, JSON.stringify(job));
  await runTsChild('bench/load/open-loop-client.ts', [jobPath]);
  const result = JSON.parse(await readFile(outPath, 'utf8')) as OpenLoopResult;
  // Per-request files are large and fully summarised in the results; keep only the job.
  await rm(outPath, { force: true });
  return result;
}

export async function runClosedLoop(
  url: string,
  bodiesPath: string,
  concurrency: number,
  seconds: number,
  body: BodyFormat,
): Promise<ClosedLoopResult> {
  const out = await runTsChild('bench/load/closed-loop-client.ts', [
    url,
    bodiesPath,
    String(concurrency),
    String(seconds),
    body,
  ]);
  return JSON.parse(out.trim()) as ClosedLoopResult;
}
