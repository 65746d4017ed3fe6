/**
 * The dashboard's server side on a real server (startServer, the bundled model, real sockets):
 * the page and its assets with their security headers, the API, and the event stream — its
 * framing, the ring buffer a new stream gets, resuming with Last-Event-ID, the viewer cap, a
 * sampler that does nothing while nobody watches, snapshots that follow the load, and a shutdown
 * that an open stream does not hold back. The page's own (browser) tests are elsewhere.
 *
 * The page is a stand-in written to a temp folder (the real one is built by `npm run build`).
 */
import { request, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../src/server.js';
import type { DashboardInfo, FrontierReport, Snapshot } from '../src/dashboard/protocol.js';
import { bundledConfig, testImages, TEST_SERVER } from './helpers/bundled.js';
import { pixelsInput, postInfer } from './helpers/infer.js';

/** Fast enough for a test to see many snapshots; the protocol's rate is 1 s. */
const INTERVAL_MS = 200;
const BUFFER_SECONDS = 4; // 20 snapshots
const MAX_VIEWERS = 3;

interface SseEvent {
  id: string | undefined;
  event: string | undefined;
  data: string;
}

/** A minimal EventSource over node:http: parses the stream as it comes. */
class SseClient {
  readonly events: SseEvent[] = [];
  retry: number | undefined;
  status = 0;
  headers: IncomingHttpHeaders = {};
  /** The body of a refusal (a status other than 200). */
  body = '';
  readonly ended: Promise<void>;
  private response: IncomingMessage | undefined;
  private readonly opened: Promise<void>;

  constructor(base: string, lastEventId?: number) {
    let endedResolve!: () => void;
    this.ended = new Promise((resolve) => (endedResolve = resolve));
    this.opened = new Promise((resolve, reject) => {
      const req = request(`${base}/dashboard/events`, {
        headers: {
          accept: 'text/event-stream',
          ...(lastEventId !== undefined ? { 'last-event-id': String(lastEventId) } : {}),
        },
      });
      req.on('error', (err) => {
        reject(err);
        endedResolve();
      });
      req.on('response', (res) => {
        this.response = res;
        this.status = res.statusCode ?? 0;
        this.headers = res.headers;
        res.setEncoding('utf8');
        let buffer = '';
        res.on('data', (chunk: string) => {
          if (this.status !== 200) {
            this.body += chunk;
            return;
          }
          buffer += chunk;
          let end: number;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            this.parse(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
        });
        res.on('close', () => endedResolve());
        resolve();
      });
      req.end();
    });
  }

  async open(): Promise<this> {
    await this.opened;
    return this;
  }

  snapshots(): Snapshot[] {
    return this.events.filter((e) => e.event === 'snapshot').map((e) => JSON.parse(e.data) as Snapshot);
  }

  seqs(): number[] {
    return this.snapshots().map((s) => s.seq);
  }

  close(): Promise<void> {
    this.response?.destroy();
    return this.ended;
  }

  private parse(block: string): void {
    const event: SseEvent = { id: undefined, event: undefined, data: '' };
    let fields = 0;
    for (const line of block.split('\n')) {
      const colon = line.indexOf(':');
      if (colon === 0) continue; // a comment
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      fields++;
      if (field === 'retry') this.retry = Number(value);
      else if (field === 'id') event.id = value;
      else if (field === 'event') event.event = value;
      else if (field === 'data') event.data += event.data === '' ? value : `\n${value}`;
    }
    if (fields > 0 && (event.data !== '' || event.event !== undefined)) this.events.push(event);
  }
}

/** Polls `condition` until it holds; generous by default (CI machines are slow). */
async function until(what: string, condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** `promise`, or an error once `ms` passed: a test of something that must not hang fails instead of hanging. */
async function within<T>(what: string, promise: Promise<T>, ms = 15_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function consecutive(seqs: readonly number[]): boolean {
  return seqs.every((s, i) => i === 0 || s === (seqs[i - 1] as number) + 1);
}

async function getJson<T>(url: string): Promise<{ status: number; headers: Headers; json: T }> {
  const res = await fetch(url);
  return { status: res.status, headers: res.headers, json: (await res.json()) as T };
}

let server: RunningServer;
/** The last test closes the server itself (a shutdown with a stream open). */
let serverClosed = false;
let base: string;
let assets: string;
let results: string;
const clients: SseClient[] = [];
const client = (lastEventId?: number) => {
  const c = new SseClient(base, lastEventId);
  clients.push(c);
  return c.open();
};

beforeAll(async () => {
  assets = await mkdtemp(join(tmpdir(), 'offramp-dashboard-page-'));
  await writeFile(
    join(assets, 'index.html'),
    '<!doctype html><title>offramp</title><script src="/dashboard/assets/app.js"></script>',
  );
  await writeFile(join(assets, 'app.js'), 'console.log("dashboard");');
  await writeFile(join(assets, 'app.css'), 'body { margin: 0 }');
  results = await mkdtemp(join(tmpdir(), 'offramp-dashboard-results-'));
  await writeFile(
    join(results, 'run.json'),
    JSON.stringify({
      format: 'offramp.bench/2',
      started_at: '2026-01-01T00:00:00Z',
      provenance: { commit: 'c0ffee' },
      model: { name: 'fmnist' },
      runs: [
        { label: 'vanilla', computed: false, pattern: 'poisson', rate_rps: 100, p50_ms: 5, p95_ms: 9, p99_ms: 12 },
        { label: 'vanilla', computed: false, pattern: 'poisson', rate_rps: 200, p50_ms: 6, p95_ms: 11, p99_ms: 15 },
      ],
    }),
  );
  const config = bundledConfig(
    'dashboard.test.yaml',
    // A wide SLO: this machine may be busy, and the load is here to be seen, not to be refused.
    ['tuner: { kind: static }', 'batching: { max_batch_size: 8 }', 'slo: { latency_ms: 2000 }'],
    `${TEST_SERVER}, dashboard: { buffer_seconds: ${BUFFER_SECONDS}, max_viewers: ${MAX_VIEWERS}, results_dir: ${JSON.stringify(results)} }`,
  );
  server = await startServer(config, {
    version: 'test',
    dashboard: { assetsDir: assets, sampleIntervalMs: INTERVAL_MS },
  });
  base = `http://127.0.0.1:${server.httpPort}`;
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  if (!serverClosed) await server?.close();
  await rm(assets, { recursive: true, force: true });
  await rm(results, { recursive: true, force: true });
});

describe('the page and its assets', () => {
  it('serves the page with a strict CSP, nosniff, no referrer, and revalidation', async () => {
    const res = await fetch(`${base}/dashboard`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('content-security-policy')).toMatch(/^default-src 'self';/);
    expect(res.headers.get('content-security-policy')).not.toMatch(/unsafe/);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(res.headers.get('cache-control')).toBe('no-cache');
    expect(await res.text()).toContain('<title>offramp</title>');
    const etag = res.headers.get('etag');
    expect(etag).toBeTruthy();
    const again = await fetch(`${base}/dashboard/`, { headers: { 'if-none-match': etag! } });
    expect(again.status).toBe(304);
    // The page keeps its model picker in the query.
    expect((await fetch(`${base}/dashboard?model=fmnist`)).status).toBe(200);
  });

  it('serves known assets with their content type; anything else under /dashboard is a coded 404 with the same headers', async () => {
    const js = await fetch(`${base}/dashboard/assets/app.js`);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(js.headers.get('content-security-policy')).toMatch(/^default-src 'self'/);
    const css = await fetch(`${base}/dashboard/assets/app.css`);
    expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8');
    for (const path of [
      '/dashboard/assets/missing.js',
      '/dashboard/assets/index.html',
      '/dashboard/assets/..%2F..%2Fpackage.json',
      '/dashboard/assets/.hidden.js',
      '/dashboard/nothing-here',
    ]) {
      const res = await fetch(`${base}${path}`);
      expect(res.status, path).toBe(404);
      expect(((await res.json()) as { code: string }).code, path).toBe('OFFRAMP_ROUTE_NOT_FOUND');
      expect(res.headers.get('content-security-policy'), path).toMatch(/^default-src 'self'/);
      expect(res.headers.get('x-content-type-options'), path).toBe('nosniff');
    }
  });

  it('answers a coded 503 while the page is not built', async () => {
    await rename(join(assets, 'index.html'), join(assets, 'index.html.away'));
    try {
      for (const path of ['/dashboard', '/dashboard/assets/app.js']) {
        const res = await fetch(`${base}${path}`);
        expect(res.status, path).toBe(503);
        const body = (await res.json()) as { code: string; error: string };
        expect(body.code).toBe('OFFRAMP_DASHBOARD_NOT_BUILT');
        expect(body.error).toContain('npm run build');
      }
    } finally {
      await rename(join(assets, 'index.html.away'), join(assets, 'index.html'));
    }
  });
});

describe('the API', () => {
  it('describes the server and its models (api/info)', async () => {
    const { status, headers, json } = await getJson<DashboardInfo>(`${base}/dashboard/api/info`);
    expect(status).toBe(200);
    expect(headers.get('content-security-policy')).toMatch(/^default-src 'self'/);
    expect(json).toMatchObject({
      version: 'test',
      adminEnabled: false,
      sampleIntervalMs: INTERVAL_MS,
      bufferSeconds: BUFFER_SECONDS,
    });
    expect(json.models).toHaveLength(1);
    const model = json.models[0]!;
    expect(model).toMatchObject({
      name: 'fmnist',
      tunerKind: 'static',
      online: false,
      slo: { latencyMs: 2000, percentile: 95 },
      accuracy: { budget: 0.01 },
      batchSizeBuckets: [1, 2, 4, 8, 16, 32, 64, 128],
    });
    expect(model.exits.map((e) => e.key)).toEqual(['0', '1', '2', '3', '4', '5', '6', '7']);
    expect(model.exits.every((e) => e.kind === 'ramp' && e.label === `ramp ${e.key}`)).toBe(true);
  });

  it('gives the frontier: predicted from the profile, measured from the newest bench results for the model', async () => {
    const { status, json } = await getJson<FrontierReport>(`${base}/dashboard/api/frontier?model=fmnist`);
    expect(status).toBe(200);
    expect(json.model).toBe('fmnist');
    expect(json.slo).toEqual({ latencyMs: 2000, percentile: 95 });
    expect(json.predicted.map((c) => c.label)).toEqual(['vanilla', 'plan in force']);
    for (const curve of json.predicted) {
      // Batch sizes 1..8 of the profile (max_batch_size 8).
      expect(curve.points).toHaveLength(8);
      for (const p of curve.points) expect(p.throughputRps > 0 && p.latencyMs > 0).toBe(true);
    }
    expect(json.measured).toMatchObject({
      commit: 'c0ffee',
      startedAt: '2026-01-01T00:00:00Z',
      percentile: 95,
      curves: [
        {
          label: 'vanilla',
          points: [
            { throughputRps: 100, latencyMs: 9 },
            { throughputRps: 200, latencyMs: 11 },
          ],
        },
      ],
    });
    expect(json.measured?.source).toMatch(/run\.json$/);
  });

  it('refuses bad queries with coded errors', async () => {
    const cases: [string, number, string][] = [
      ['/dashboard/api/frontier', 400, 'OFFRAMP_INVALID_DASHBOARD_REQUEST'],
      ['/dashboard/api/frontier?model=nope', 404, 'OFFRAMP_MODEL_NOT_FOUND'],
      ['/dashboard/api/what-if?model=fmnist', 400, 'OFFRAMP_INVALID_DASHBOARD_REQUEST'],
      ['/dashboard/api/what-if?model=fmnist&budget=lots', 400, 'OFFRAMP_INVALID_DASHBOARD_REQUEST'],
      ['/dashboard/api/what-if?model=fmnist&budget=0.1&budget=0.2', 400, 'OFFRAMP_INVALID_DASHBOARD_REQUEST'],
      ['/dashboard/api/what-if?model=nope&budget=0.02', 404, 'OFFRAMP_MODEL_NOT_FOUND'],
    ];
    for (const [path, status, code] of cases) {
      const res = await getJson<{ code: string; error: string }>(`${base}${path}`);
      expect([res.status, res.json.code], path).toEqual([status, code]);
    }
    // A valid query reaches the engine's what-if: a report, or the engine's coded refusal.
    const res = await getJson<{ model?: string; code?: string }>(
      `${base}/dashboard/api/what-if?model=fmnist&budget=0.02`,
    );
    expect(res.status === 200 ? res.json.model : res.json.code).toMatch(/^(fmnist|OFFRAMP_[A-Z_]+)$/);
  });
});

describe('the event stream', () => {
  it('samples nothing while nobody watches', async () => {
    const dashboard = server.dashboard!;
    expect(dashboard.sampling).toBe(false);
    const before = dashboard.samplesTaken;
    await sleep(INTERVAL_MS * 3);
    expect(dashboard.samplesTaken).toBe(before);
  });

  it('frames snapshots as SSE: retry hint, id = seq, event: snapshot, JSON data, with the security headers', async () => {
    const c = await client();
    expect(c.status).toBe(200);
    expect(c.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(c.headers['cache-control']).toBe('no-cache');
    expect(c.headers['content-security-policy']).toMatch(/^default-src 'self'/);
    expect(c.headers['x-content-type-options']).toBe('nosniff');
    expect(server.dashboard!.sampling).toBe(true);
    await until('3 snapshots', () => c.events.length >= 3);
    expect(c.retry).toBe(INTERVAL_MS);
    for (const e of c.events) {
      expect(e.event).toBe('snapshot');
      expect((JSON.parse(e.data) as Snapshot).seq).toBe(Number(e.id));
    }
    const seqs = c.seqs();
    expect(consecutive(seqs)).toBe(true);
    const first = c.snapshots()[0]!;
    // The first snapshot of all follows no earlier one: no gap to mark.
    expect(first.afterGap).toBe(false);
    expect(first.intervalS).toBeGreaterThan(0);
    expect(Object.keys(first.models)).toEqual(['fmnist']);
    expect(first.models['fmnist']).toMatchObject({ queueDepth: 0, paused: false, pinned: [], events: [] });
    expect(first.models['fmnist']!.batchSizes).toHaveLength(9);
    await c.close();
  });

  it('stops sampling when the last stream closes; the next snapshot says it follows a gap', async () => {
    const dashboard = server.dashboard!;
    await until('no viewer', () => dashboard.viewers === 0);
    expect(dashboard.sampling).toBe(false);
    const taken = dashboard.samplesTaken;
    await sleep(INTERVAL_MS * 3);
    expect(dashboard.samplesTaken).toBe(taken);

    const c = await client();
    const buffered = c.events.length;
    await until('a new snapshot', () => c.events.length > buffered);
    const fresh = c.snapshots()[buffered]!;
    expect(fresh.afterGap).toBe(true);
    await c.close();
  });

  it('fills a new stream with the ring buffer at once, then goes on live', async () => {
    const capacity = (BUFFER_SECONDS * 1000) / INTERVAL_MS;
    const a = await client();
    // Once `a` has seen more snapshots than the ring holds, the ring is full.
    await until('a full ring', () => a.events.length >= capacity + 2);
    const newestBefore = Math.max(...a.seqs());
    const b = await client();
    // At once: live, that many snapshots would take buffer_seconds.
    await until('the buffer', () => b.events.length >= capacity, (BUFFER_SECONDS * 1000) / 4);
    const buffered = b.seqs().slice(0, capacity);
    expect(consecutive(buffered)).toBe(true);
    expect(buffered.at(-1)).toBeGreaterThanOrEqual(newestBefore);
    await until('a live snapshot', () => b.events.length > capacity);
    expect(consecutive(b.seqs())).toBe(true);
    await Promise.all([a.close(), b.close()]);
  });

  it('resumes after Last-Event-ID with no snapshot lost or repeated, also when the server drops the stream', async () => {
    const first = await client();
    await until('3 snapshots', () => first.events.length >= 3);
    await first.close();
    const last = Math.max(...first.seqs());
    // Gone a moment (sampling goes on for the other viewer, so nothing is missed).
    const keeper = await client();
    await sleep(INTERVAL_MS * 2);
    const second = await client(last);
    await until('3 snapshots', () => second.events.length >= 3);
    expect(second.seqs()[0]).toBe(last + 1);
    expect(consecutive(second.seqs())).toBe(true);

    // The server ends every stream (the page's EventSource reconnects with its last id).
    server.dashboard!.dropStreams();
    await Promise.all([second.ended, keeper.ended]);
    const resumedFrom = Math.max(...second.seqs());
    const third = await client(resumedFrom);
    await until('3 snapshots', () => third.events.length >= 3);
    const all = [...second.seqs(), ...third.seqs()];
    expect(new Set(all).size).toBe(all.length);
    expect(consecutive(all)).toBe(true);
    await third.close();
  });

  it('refuses a stream over max_viewers with a coded 503', async () => {
    const open = await Promise.all(Array.from({ length: MAX_VIEWERS }, () => client()));
    await until('every viewer counted', () => server.dashboard!.viewers === MAX_VIEWERS);
    const refused = await client();
    await refused.ended;
    expect(refused.status).toBe(503);
    expect(refused.headers['content-security-policy']).toMatch(/^default-src 'self'/);
    expect(JSON.parse(refused.body)).toMatchObject({ code: 'OFFRAMP_DASHBOARD_FULL' });
    await open[0]!.close();
    await until('a free place', () => server.dashboard!.viewers === MAX_VIEWERS - 1);
    const admitted = await client();
    expect(admitted.status).toBe(200);
    await Promise.all([...open.map((c) => c.close()), admitted.close()]);
  });

  it('shows the load: answers per second, latency, exits, batches and CPU', async () => {
    const c = await client();
    await until('a live snapshot', () => c.events.length > 0);
    const images = await testImages(4, 0);
    const stop = Date.now() + INTERVAL_MS * 4;
    while (Date.now() < stop) {
      const answers = await Promise.all([0, 1, 2, 3].map(() => postInfer(base, 'fmnist', [pixelsInput(images)])));
      expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
    }
    await until('a snapshot with answers', () => c.snapshots().some((s) => s.models['fmnist']!.answersPerS > 0));
    const busy = c.snapshots().find((s) => s.models['fmnist']!.answersPerS > 0)!;
    const model = busy.models['fmnist']!;
    expect(model.latencyMs).not.toBeNull();
    expect(model.latencyMs!.p50).toBeGreaterThan(0);
    expect(model.latencyMs!.p50).toBeLessThanOrEqual(model.latencyMs!.p95);
    expect(model.latencyMs!.p95).toBeLessThanOrEqual(model.latencyMs!.p99);
    expect(model.errorsPerS).toBe(0);
    const shares = Object.values(model.exitShares);
    expect(shares.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
    expect(model.batchSizes.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    expect(busy.cpuCores).toBeGreaterThan(0);
    expect(busy.cpuMsPerAnswer).toBeGreaterThan(0);
    expect(model.window.rows).toBeGreaterThan(0);
    expect(Object.keys(model.thresholds).length).toBeGreaterThan(0);
    await c.close();
  });

  it('does not hold a shutdown back: open streams end and close() completes', async () => {
    const c = await client();
    await until('a snapshot', () => c.events.length > 0);
    serverClosed = true;
    await within('close()', server.close());
    await within('the end of the stream', c.ended);
    expect(server.dashboard!.viewers).toBe(0);
    expect(server.dashboard!.sampling).toBe(false);
  });
});

describe('server.dashboard.enabled: false', () => {
  it('registers no /dashboard routes', async () => {
    const config = bundledConfig(
      'dashboard-off.test.yaml',
      ['tuner: { kind: static }'],
      `${TEST_SERVER}, dashboard: { enabled: false }`,
    );
    const off = await startServer(config, { version: 'test' });
    try {
      expect(off.dashboard).toBeNull();
      for (const path of ['/dashboard', '/dashboard/events', '/dashboard/api/info']) {
        const res = await fetch(`http://127.0.0.1:${off.httpPort}${path}`);
        expect(res.status, path).toBe(404);
        expect(((await res.json()) as { code: string }).code).toBe('OFFRAMP_ROUTE_NOT_FOUND');
      }
    } finally {
      await off.close();
    }
  });
});
