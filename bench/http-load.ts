/**
 * Closed-loop HTTP load for the bench: `concurrency` clients each send one KServe v2 infer
 * request, wait for the answer, send the next, for `seconds`. Runs as its own process so its
 * work does not land on the server's event loop. Prints one JSON line with what it measured.
 *
 *   node --import tsx bench/http-load.ts URL BODIES.json CONCURRENCY SECONDS
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';

const [url, bodiesPath, concurrencyArg, secondsArg] = process.argv.slice(2);
if (!url || !bodiesPath) throw new Error('usage: http-load.ts URL BODIES.json CONCURRENCY SECONDS');
const bodies = (JSON.parse(readFileSync(bodiesPath, 'utf8')) as unknown[]).map((b) => Buffer.from(JSON.stringify(b)));
const concurrency = Number(concurrencyArg ?? 32);
const seconds = Number(secondsArg ?? 5);
const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
const target = new URL(url);

function post(body: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: target.hostname, port: target.port, path: target.pathname, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': body.length } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const latencies: number[] = [];
let errors = 0;
let next = 0;
const deadline = performance.now() + seconds * 1000;
const started = performance.now();

async function client(): Promise<void> {
  while (performance.now() < deadline) {
    const body = bodies[next++ % bodies.length] as Buffer;
    const t0 = performance.now();
    const status = await post(body).catch(() => 0);
    if (status === 200) latencies.push(performance.now() - t0);
    else errors++;
  }
}

await Promise.all(Array.from({ length: concurrency }, () => client()));
const elapsed = (performance.now() - started) / 1000;
latencies.sort((a, b) => a - b);
const q = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? Number.NaN;
process.stdout.write(JSON.stringify({ requests: latencies.length, errors, seconds: elapsed, rps: latencies.length / elapsed, p50: q(0.5), p99: q(0.99) }) + '\n');
agent.destroy();
