/**
 * What the dashboard costs the server (issue 16's target: ≤ 1 % of a core with one viewer at one
 * snapshot a second). A real `offramp serve` (a child process, bench/lib/server-process.ts) serves
 * the bundled image model at the SLO file's defaults — the dashboard at its protocol rate of one
 * snapshot a second — under a steady open-loop Poisson load of test images (its own process,
 * bench/load/open-loop-client.ts). After a warm-up, phases alternate: "off" with nobody watching
 * (the sampler does not run) and "on" with one viewer, a Node client reading /dashboard/events
 * and parsing every snapshot as the page does. Each phase's first `--settle-seconds` are left
 * out (a viewer that opens gets the ring buffer at once; that burst is a page load, not the
 * steady cost), and the server's CPU — user + system, every thread, from /proc/<pid>/stat — is
 * read over the rest. The cost is each "on" phase's cores minus the "off" phase before it, in %
 * of one core: median and spread over the pairs (the load's own noise is in the spread).
 *
 * Also: the page's assets as the browser loads them (dist/dashboard/, raw and gzip -9; source
 * maps listed apart, a browser fetches them only with its developer tools open), and a snapshot's
 * size on the wire.
 *
 *   npx tsx bench/dashboard-cost.ts [--pairs 4] [--phase-seconds 30] [--settle-seconds 5]
 *                                   [--warm-up-seconds 20] [--rate 100] [--model models/fmnist-resnet]
 *                                   [--out bench/results]
 *
 * Needs the build (`npm run build`: bin/offramp.js serves from dist/, the page is dist/dashboard/).
 * Writes bench/results/dashboard-cost-<UTC start>.md and .json with the provenance
 * (bench/lib/machine.ts). Run it on an otherwise idle machine: the difference it looks for is
 * small beside the load's own CPU.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { readManifest } from '../src/model/manifest.js';
import { seededRandom } from '../src/model/numeric.js';
import { poissonArrivals } from './load/arrivals.js';
import { itemsFor, prepareDataset } from './lib/dataset.js';
import { runOpenLoop } from './lib/load-runner.js';
import { finishProvenance, provenance, provenanceLine, writeResultPair } from './lib/machine.js';
import { startServerProcess } from './lib/server-process.js';
import { percentile } from './lib/stats.js';
import { IMAGE_SLO_MS, workloadFor } from './lib/workload.js';

const { values: args } = parseArgs({
  options: {
    pairs: { type: 'string', default: '4' },
    'phase-seconds': { type: 'string', default: '30' },
    'settle-seconds': { type: 'string', default: '5' },
    'warm-up-seconds': { type: 'string', default: '20' },
    rate: { type: 'string', default: '100' },
    model: { type: 'string', default: 'models/fmnist-resnet' },
    out: { type: 'string', default: 'bench/results' },
  },
});

const pairs = Number(args.pairs);
const phaseSeconds = Number(args['phase-seconds']);
const settleSeconds = Number(args['settle-seconds']);
const warmUpSeconds = Number(args['warm-up-seconds']);
const rate = Number(args.rate);
if (!(pairs >= 1 && settleSeconds >= 0 && phaseSeconds > settleSeconds && warmUpSeconds >= 0 && rate > 0))
  throw new Error('--pairs ≥ 1, --phase-seconds > --settle-seconds ≥ 0, --warm-up-seconds ≥ 0 and --rate > 0');
const PAGE_DIR = 'dist/dashboard';
if (!existsSync('bin/offramp.js') || !existsSync('dist/src/cli/main.js') || !existsSync(join(PAGE_DIR, 'index.html')))
  throw new Error('build first: npm run build (the server runs from dist/, the page is dist/dashboard/)');
/** The files a browser fetches for the page (index.html links the rest). */
const PAGE_FILES = ['index.html', 'app.js', 'app.css', 'favicon.svg'];
const SEED = 16;

const started = new Date();
const origin = provenance();
const modelDir = resolve(args.model);
const manifest = await readManifest(modelDir);
const workload = workloadFor(manifest, modelDir);
const stamp = started.toISOString().replace(/[:.]/g, '-');
const workDir = join('tmp', 'bench', `dashboard-cost-${stamp}`);
await mkdir(workDir, { recursive: true });

const plannedSeconds = warmUpSeconds + pairs * 2 * phaseSeconds;
console.log(
  `dashboard cost: ${manifest.name} at ${rate} requests/s, ${warmUpSeconds} s warm-up, then ${pairs} × ` +
    `(${phaseSeconds} s off, ${phaseSeconds} s on); about ${Math.ceil(plannedSeconds / 60)} min`,
);

/** One viewer: the event stream read and every snapshot parsed, as the page does. */
class Viewer {
  snapshots = 0;
  /** Bytes of each snapshot event as sent (its id, event and data lines). */
  readonly frameBytes: number[] = [];
  /** Bytes of each snapshot's JSON. */
  readonly jsonBytes: number[] = [];
  /** The stream's HTTP status, once it answered. */
  status: number | undefined;
  private readonly closeStream: () => void;

  constructor(baseUrl: string) {
    const req = request(`${baseUrl}/dashboard/events`, { headers: { accept: 'text/event-stream' } });
    let buffer = '';
    req.on('response', (res) => {
      this.status = res.statusCode;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          this.take(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      });
    });
    req.on('error', () => undefined); // closed by us, or the server stopping
    req.end();
    this.closeStream = () => req.destroy();
  }

  close(): void {
    this.closeStream();
  }

  private take(block: string): void {
    const data = block
      .split('\n')
      .filter((line) => line.startsWith('data: '))
      .map((line) => line.slice(6))
      .join('\n');
    if (!/^event: snapshot$/m.test(block) || data === '') return;
    const snapshot = JSON.parse(data) as { seq?: unknown };
    if (typeof snapshot.seq !== 'number') throw new Error('a snapshot without a seq');
    this.snapshots++;
    this.frameBytes.push(Buffer.byteLength(block) + 2);
    this.jsonBytes.push(Buffer.byteLength(data));
  }
}

interface Phase {
  pair: number;
  viewer: boolean;
  /** The measured span (after the settle time). */
  seconds: number;
  cpuSeconds: number;
  /** Server CPU over the span, in cores. */
  cores: number;
  /** Snapshots the viewer parsed in the span (on phases). */
  snapshots: number | null;
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

const configPath = join(workDir, 'slo.json');
// JSON is YAML: the SLO file's defaults but the model, its latency objective and loopback.
await writeFile(
  configPath,
  JSON.stringify(
    {
      server: { host: '127.0.0.1' },
      models: [{ name: manifest.name, path: modelDir, slo: { latency_ms: IMAGE_SLO_MS } }],
    },
    null,
    2,
  ) + '\n',
);
const bodiesPath = join(workDir, 'bodies.jsonl');
const dataset = await prepareDataset(workload, bodiesPath, SEED);
const offsetsMs = poissonArrivals(rate, plannedSeconds + 5, seededRandom(SEED));
const schedule = { offsetsMs, items: itemsFor(dataset, 0, offsetsMs.length) };

const server = await startServerProcess(configPath, join(workDir, 'server.log'));
const phases: Phase[] = [];
let load: Awaited<ReturnType<typeof runOpenLoop>>;
let viewerFrames: number[] = [];
let viewerJson: number[] = [];
try {
  const cpu = async (): Promise<number> => {
    const seconds = await server.cpuSeconds();
    if (seconds === null) throw new Error('no /proc/<pid>/stat: this bench needs Linux');
    return seconds;
  };
  const loadDone = runOpenLoop(
    `${server.baseUrl}/v2/models/${manifest.name}/infer`,
    bodiesPath,
    'binary',
    schedule,
    workDir,
    'load',
    { timeoutMs: 10_000 },
  );
  await sleep(warmUpSeconds * 1000);
  for (let pair = 1; pair <= pairs; pair++) {
    for (const withViewer of [false, true]) {
      const viewer = withViewer ? new Viewer(server.baseUrl) : undefined;
      await sleep(settleSeconds * 1000);
      const snapshotsBefore = viewer?.snapshots ?? 0;
      const cpuBefore = await cpu();
      const t0 = performance.now();
      await sleep((phaseSeconds - settleSeconds) * 1000);
      const cpuSeconds = (await cpu()) - cpuBefore;
      const seconds = (performance.now() - t0) / 1000;
      const phase: Phase = {
        pair,
        viewer: withViewer,
        seconds,
        cpuSeconds,
        cores: cpuSeconds / seconds,
        snapshots: viewer ? viewer.snapshots - snapshotsBefore : null,
      };
      phases.push(phase);
      if (viewer) {
        if (viewer.status !== 200 || viewer.snapshots === 0)
          throw new Error(`the viewer received no snapshot (the stream answered ${viewer.status ?? 'nothing'})`);
        viewerFrames = viewerFrames.concat(viewer.frameBytes);
        viewerJson = viewerJson.concat(viewer.jsonBytes);
        viewer.close();
      }
      console.log(
        `pair ${pair}, ${withViewer ? 'one viewer' : 'no viewer'}: server ${(phase.cores * 100).toFixed(2)} % of a core` +
          (phase.snapshots === null ? '' : `, ${phase.snapshots} snapshots`),
      );
    }
  }
  load = await loadDone;
} finally {
  await server.stop();
}

const answered = load.status.filter((status) => status === 200).length;
if (answered === 0) throw new Error('the load got no answer');
/** Answers other than 200 by error code (overload answers on a busy machine; the same in both kinds of phase). */
const failures: Record<string, number> = {};
load.status.forEach((status, i) => {
  if (status === 200) return;
  const code = `${status} ${load.errorCode[i] ?? ''}`.trim();
  failures[code] = (failures[code] ?? 0) + 1;
});
const failureText = Object.entries(failures)
  .map(([code, count]) => `${count} × ${code}`)
  .join(', ');
const sorted = (xs: readonly number[]) => [...xs].sort((a, b) => a - b);
const median = (xs: readonly number[]) => percentile(sorted(xs), 50);
const differences = Array.from({ length: pairs }, (_, i) => {
  const off = phases.find((p) => p.pair === i + 1 && !p.viewer)!;
  const on = phases.find((p) => p.pair === i + 1 && p.viewer)!;
  return (on.cores - off.cores) * 100;
});
const cost = { medianPercentOfCore: median(differences), min: Math.min(...differences), max: Math.max(...differences) };

const files = await readdir(PAGE_DIR);
const assets = await Promise.all(
  files.sort().map(async (name) => {
    const bytes = await readFile(join(PAGE_DIR, name));
    return {
      name,
      bytes: bytes.length,
      gzipBytes: gzipSync(bytes, { level: 9 }).length,
      loaded: PAGE_FILES.includes(name),
    };
  }),
);
const pageTotal = (key: 'bytes' | 'gzipBytes') =>
  assets.filter((a) => a.loaded).reduce((sum, asset) => sum + asset[key], 0);
const snapshotSize = {
  medianJsonBytes: median(viewerJson),
  maxJsonBytes: Math.max(...viewerJson),
  medianFrameBytes: median(viewerFrames),
};

const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;
const pct = (x: number) => `${x.toFixed(2)} %`;
const lines = [
  '# What the dashboard costs the server',
  '',
  provenanceLine(finishProvenance(origin)),
  '',
  `${manifest.name} served at the SLO file's defaults (latency objective ${IMAGE_SLO_MS} ms, dashboard at one ` +
    `snapshot a second); open-loop Poisson load at ${rate} requests/s (${answered} of ${load.status.length} ` +
    `answered 200${failureText === '' ? '' : `; ${failureText}`}). ${warmUpSeconds} s warm-up, then ${pairs} ` +
    `pair${pairs === 1 ? '' : 's'} of ${phaseSeconds} s phases, each measured ` +
    `after its first ${settleSeconds} s; the server's CPU from /proc/<pid>/stat (user + system, every thread).`,
  '',
  `**The dashboard with one viewer: ${pct(cost.medianPercentOfCore)} of one core** (median of the ${pairs} ` +
    `differences "one viewer" − "no viewer"; ${pct(cost.min)} to ${pct(cost.max)}).`,
  '',
  '| pair | no viewer: server CPU | one viewer: server CPU | difference | snapshots parsed |',
  '|---|---|---|---|---|',
  ...differences.map((difference, i) => {
    const off = phases.find((p) => p.pair === i + 1 && !p.viewer)!;
    const on = phases.find((p) => p.pair === i + 1 && p.viewer)!;
    return `| ${i + 1} | ${pct(off.cores * 100)} | ${pct(on.cores * 100)} | ${pct(difference)} | ${on.snapshots} |`;
  }),
  '',
  `A snapshot: ${snapshotSize.medianJsonBytes} bytes of JSON (median; at most ${snapshotSize.maxJsonBytes}), ` +
    `${snapshotSize.medianFrameBytes} bytes as an SSE event, for one model.`,
  '',
  `The page's assets as a browser loads them: ${kb(pageTotal('bytes'))}, ${kb(pageTotal('gzipBytes'))} gzipped ` +
    '(gzip -9; the server sends them uncompressed).',
  '',
  '| file | bytes | gzipped | loaded by the page |',
  '|---|---|---|---|',
  ...assets.map(
    (a) => `| ${a.name} | ${a.bytes} | ${a.gzipBytes} | ${a.loaded ? 'yes' : 'no (developer tools only)'} |`,
  ),
];
const report = lines.join('\n');
console.log(`\n${report}`);
const base = await writeResultPair(resolve(args.out), 'dashboard-cost', started, report, {
  format: 'offramp.dashboard-cost/1',
  provenance: finishProvenance(origin),
  model: { name: manifest.name, dir: args.model },
  plan: { pairs, phaseSeconds, settleSeconds, warmUpSeconds, rateRps: rate, sloMs: IMAGE_SLO_MS },
  load: { requests: load.status.length, answered, failures },
  phases,
  differencesPercentOfCore: differences,
  cost,
  snapshotSize,
  assets,
  pageBytes: { raw: pageTotal('bytes'), gzip: pageTotal('gzipBytes') },
});
console.log(`wrote ${base}.md and .json`);
