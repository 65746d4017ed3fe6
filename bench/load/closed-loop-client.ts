/**
 * Closed-loop (saturating) HTTP load: `concurrency` clients each send one KServe v2 infer request,
 * wait for the answer, send the next, for `seconds`. This measures capacity: the most the server
 * answers per second with this many requests in flight. Runs as its own process so its work does
 * not land on the server's event loop; prints one JSON line (ClosedLoopResult).
 *
 *   node --import tsx bench/load/closed-loop-client.ts URL BODIES CONCURRENCY SECONDS [binary|json]
 *
 * BODIES is a bodies file (one JSON body per line, see load-types.ts), sent as KServe v2 binary
 * tensor bodies (the default) or as the JSON itself (request-body.ts).
 */
import { readFileSync } from 'node:fs';
import { createPoster } from './http-post.js';
import { isBodyFormat, loadBodies } from './request-body.js';
import type { ClosedLoopResult } from './load-types.js';

const [url, bodiesPath, concurrencyArg, secondsArg, formatArg = 'binary'] = process.argv.slice(2);
if (!url || !bodiesPath || !isBodyFormat(formatArg))
  throw new Error('usage: closed-loop-client.ts URL BODIES CONCURRENCY SECONDS [binary|json]');
const bodies = loadBodies(readFileSync(bodiesPath, 'utf8'), formatArg);
const concurrency = Number(concurrencyArg ?? 32);
const seconds = Number(secondsArg ?? 5);
const poster = createPoster(url, concurrency);

const latencies: number[] = [];
const errorsByStatus: Record<string, number> = {};
let errors = 0;
let next = 0;
const deadline = performance.now() + seconds * 1000;
const started = performance.now();

async function client(): Promise<void> {
  while (performance.now() < deadline) {
    const body = bodies[next++ % bodies.length]!;
    const t0 = performance.now();
    const { status } = await poster.post(body);
    if (status === 200) latencies.push(performance.now() - t0);
    else {
      errors++;
      errorsByStatus[status] = (errorsByStatus[status] ?? 0) + 1;
    }
  }
}

await Promise.all(Array.from({ length: concurrency }, () => client()));
const elapsed = (performance.now() - started) / 1000;
latencies.sort((a, b) => a - b);
const q = (p: number): number =>
  latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? Number.NaN;
const result: ClosedLoopResult = {
  requests: latencies.length,
  errors,
  errors_by_status: errorsByStatus,
  seconds: elapsed,
  rps: latencies.length / elapsed,
  p50: q(0.5),
  p99: q(0.99),
};
process.stdout.write(JSON.stringify(result) + '\n');
poster.close();
