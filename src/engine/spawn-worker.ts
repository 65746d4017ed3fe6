/**
 * Starts a worker thread from a module next to the caller. The built package runs `name.js`.
 * Source runs (vitest, tsx) must load `name.ts`, and Node 20 does not pass `--import tsx` on to
 * workers, so a two-line bootstrap registers tsx first.
 */
import { Worker } from 'node:worker_threads';

/** @param callerUrl the caller's `import.meta.url`; `name` is resolved next to it, without extension. */
export function spawnWorker(callerUrl: string, name: string, workerData: unknown): Worker {
  if (!callerUrl.endsWith('.ts')) return new Worker(new URL(`./${name}.js`, callerUrl), { workerData });
  const entry = new URL(`./${name}.ts`, callerUrl).href;
  const bootstrap = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(bootstrap, { eval: true, workerData });
}
