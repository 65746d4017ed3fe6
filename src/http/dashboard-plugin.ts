/**
 * The live tuning dashboard on the HTTP port, under `/dashboard` (registered only when
 * `server.dashboard.enabled`): the page, its event stream and its API, as src/dashboard/protocol.ts
 * describes them. What it serves comes from the Dashboard (src/dashboard/dashboard.ts); this
 * plugin only speaks HTTP.
 *
 * - `GET /dashboard` — the page (`index.html` of the bundle `npm run build` writes to
 *   dist/dashboard/); not built → OFFRAMP_DASHBOARD_NOT_BUILT (503).
 * - `GET /dashboard/assets/<file>` — a file of that bundle (its script, styles, source maps);
 *   names are checked before any file is opened: a plain file name with a known extension.
 * - `GET /dashboard/events` — Server-Sent Events; over server.dashboard.max_viewers →
 *   OFFRAMP_DASHBOARD_FULL (503).
 * - `GET /dashboard/api/info`, `/dashboard/api/what-if?model=&budget=`, `/dashboard/api/frontier?model=`.
 *
 * Every answer carries a strict Content-Security-Policy (only this origin's script, styles and
 * connections; no inline script), `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`.
 * The page and its assets are sent with `Cache-Control: no-cache` and an ETag: a browser keeps
 * them and revalidates (304) on each load, so a rebuilt page is never stale.
 */
import { readFile, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type { FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify';
import type { Dashboard } from '../dashboard/dashboard.js';
import { OfframpError } from '../errors.js';
import { notFoundHandler } from './error-handling.js';

export interface DashboardPluginOptions {
  dashboard: Dashboard;
  /** For error answers (error-handling.ts). */
  maxBodyBytes: number;
}

/**
 * `default-src 'self'` covers scripts, styles, connections (the event stream, the API) and
 * images: the bundle loads everything from this origin, and uPlot styles its elements through
 * the CSSOM (`el.style.x = …`), which style-src does not govern. The rest shuts what default-src
 * leaves open: `<base>` rewriting, form posts elsewhere, and framing (the controls act with an
 * admin token: no clickjacking).
 */
export const DASHBOARD_CSP = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** Headers on every /dashboard answer, the event stream's included. */
export const DASHBOARD_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': DASHBOARD_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

const PAGE = 'index.html';

/** What the bundle may hold, by extension. The page itself is only served as /dashboard. */
const ASSET_TYPES: Readonly<Record<string, string>> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
};

/** A file directly in the bundle folder: no separator, no leading dot, so no way out of it. */
const ASSET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export const dashboardPlugin: FastifyPluginCallback<DashboardPluginOptions> = (
  app,
  { dashboard, maxBodyBytes },
  done,
) => {
  app.addHook('onSend', (_request, reply, payload, next) => {
    void reply.headers(DASHBOARD_SECURITY_HEADERS);
    next(null, payload);
  });
  // Unknown paths under /dashboard get the same headers as the rest of it.
  app.setNotFoundHandler(notFoundHandler(maxBodyBytes));

  const serveFile = async (request: FastifyRequest, reply: FastifyReply, name: string, type: string) => {
    // The page tells whether the bundle is there: without it, no asset is either.
    const [page, file] = await Promise.all([
      fileInfo(join(dashboard.assetsDir, PAGE)),
      fileInfo(join(dashboard.assetsDir, name)),
    ]);
    if (!page) throw new OfframpError('OFFRAMP_DASHBOARD_NOT_BUILT');
    if (!file) return notFoundHandler(maxBodyBytes)(request, reply);
    const etag = `W/"${file.size.toString(16)}-${Math.floor(file.mtimeMs).toString(16)}"`;
    void reply.header('cache-control', 'no-cache').header('etag', etag);
    if (request.headers['if-none-match'] === etag) return reply.code(304).send();
    return reply.type(type).send(await readFile(join(dashboard.assetsDir, name)));
  };

  app.get('/', (request, reply) => serveFile(request, reply, PAGE, 'text/html; charset=utf-8'));

  app.get<{ Params: { file: string } }>('/assets/:file', (request, reply) => {
    const name = request.params.file;
    const type = ASSET_TYPES[extname(name)];
    if (!ASSET_NAME.test(name) || type === undefined) return notFoundHandler(maxBodyBytes)(request, reply);
    return serveFile(request, reply, name, type);
  });

  app.get('/api/info', () => dashboard.info());

  app.get<{ Querystring: Query }>('/api/what-if', (request) => {
    const model = param(request.query, 'model');
    const budget = numberParam(request.query, 'budget');
    return dashboard.whatIf(model, budget);
  });

  app.get<{ Querystring: Query }>('/api/frontier', (request) => dashboard.frontier(param(request.query, 'model')));

  app.route({
    method: 'GET',
    url: '/events',
    // A HEAD would open a stream with no body to send it in.
    exposeHeadRoute: false,
    handler: (request, reply) => {
      const lastEventId = parseLastEventId(request.headers['last-event-id']);
      // Refusals (the viewer cap, a server shutting down) are thrown before the reply is taken
      // over, so that they go out as coded errors; after `begin` the raw response is the stream's.
      dashboard.openStream(reply.raw, lastEventId, () => {
        reply.hijack();
        reply.raw.writeHead(200, {
          ...DASHBOARD_SECURITY_HEADERS,
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-cache',
          // Proxies that buffer answers (nginx) would hold the stream back.
          'x-accel-buffering': 'no',
        });
      });
    },
  });

  done();
};

async function fileInfo(path: string): Promise<{ size: number; mtimeMs: number } | null> {
  try {
    const info = await stat(path);
    return info.isFile() ? { size: info.size, mtimeMs: info.mtimeMs } : null;
  } catch {
    return null;
  }
}

type Query = Record<string, string | string[] | undefined>;

function invalid(reason: string): OfframpError {
  return new OfframpError('OFFRAMP_INVALID_DASHBOARD_REQUEST', { reason });
}

/** A query parameter given once; a repeated one is refused rather than guessed. */
function param(query: Query, name: string): string {
  const value = query[name];
  if (value === undefined || value === '') throw invalid(`the query parameter "${name}" is missing`);
  if (Array.isArray(value)) throw invalid(`the query parameter "${name}" is given ${value.length} times`);
  return value;
}

function numberParam(query: Query, name: string): number {
  const text = param(query, name);
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value))
    throw invalid(`"${name}" is ${JSON.stringify(text.slice(0, 40))}, not a number`);
  return value;
}

/** The SSE Last-Event-ID a reconnecting EventSource sends: a snapshot seq; anything else is ignored (a new stream). */
export function parseLastEventId(header: string | string[] | undefined): number | undefined {
  if (typeof header !== 'string' || !/^\s*\d{1,15}\s*$/.test(header)) return undefined;
  return Number(header);
}
