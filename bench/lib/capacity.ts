/**
 * Vanilla's capacity on this machine, now: a fresh vanilla server saturated by a closed-loop
 * client in its own process. Every open-loop rate in the run is a fraction of it, so the loads
 * mean the same thing on a fast machine, a slow one or a busy one.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BenchPlan } from './bench-plan.js';
import { runClosedLoop } from './load-runner.js';
import { MODEL_NAME, servingConfig, type ServedPolicy } from './policies.js';
import { loopLag } from './policy-run.js';
import { parseMetrics } from './prometheus.js';
import type { BenchResults } from './results.js';
import { startServerProcess } from './server-process.js';

export async function measureCapacity(
  vanilla: ServedPolicy,
  opts: { modelDir: string; workDir: string; bodiesPath: string; plan: BenchPlan['capacity'] },
): Promise<BenchResults['capacity']> {
  const configPath = join(opts.workDir, 'capacity.yaml');
  await writeFile(configPath, JSON.stringify(servingConfig(opts.modelDir, vanilla), null, 2) + '\n');
  const server = await startServerProcess(configPath, join(opts.workDir, 'capacity.server.log'));
  try {
    const url = `${server.baseUrl}/v2/models/${MODEL_NAME}/infer`;
    await runClosedLoop(url, opts.bodiesPath, opts.plan.concurrency, opts.plan.warmSeconds);
    await server.getText('/metrics'); // starts the lag gauge's interval at the measured run
    const measured = await runClosedLoop(url, opts.bodiesPath, opts.plan.concurrency, opts.plan.seconds);
    const lag = loopLag(parseMetrics(await server.getText('/metrics')));
    if (!(measured.rps > 0))
      throw new Error(
        `vanilla answered nothing under closed-loop load (${measured.errors} errors): see ${server.logPath}`,
      );
    return { ...measured, concurrency: opts.plan.concurrency, server_event_loop_lag: lag };
  } finally {
    await server.stop();
  }
}
