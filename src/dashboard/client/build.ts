/**
 * Bundles the dashboard page into dist/dashboard/ (run by `npm run build`, after tsc): index.html,
 * app.js (the page and uPlot, minified, with a linked source map), app.css (uPlot's stylesheet
 * and the page's) and favicon.svg (without it the browser asks for /favicon.ico, a 404 in the
 * console). Everything the page needs is in those files, so nothing is fetched from another
 * origin at run time. The server serves index.html at /dashboard and the rest under
 * /dashboard/assets/ (src/dashboard/protocol.ts).
 *
 * Runs in Node (the root tsconfig checks it); the page's own code is checked by this folder's
 * tsconfig, against the DOM.
 */

import { build } from 'esbuild';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const clientDir = dirname(fileURLToPath(import.meta.url));
const outDir = resolve(clientDir, '../../../dist/dashboard');

await rm(outDir, { recursive: true, force: true });
await mkdir(outDir, { recursive: true });
await build({
  entryPoints: { app: join(clientDir, 'app.ts') },
  outdir: outDir,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  // Browsers with EventSource, ES modules, private class fields and ResizeObserver: anything from 2021 on.
  target: ['es2022', 'chrome100', 'firefox100', 'safari15.4'],
  minify: true,
  sourcemap: 'linked',
  // The map points at the sources without embedding them: it stays small, and the page's own
  // code is in this repository for anyone reading it.
  sourcesContent: false,
  // Licence comments (uPlot's MIT notice) are kept, at the end of the bundle.
  legalComments: 'eof',
  tsconfig: join(clientDir, 'tsconfig.json'),
  logLevel: 'warning',
});
for (const file of ['index.html', 'favicon.svg']) await copyFile(join(clientDir, file), join(outDir, file));
