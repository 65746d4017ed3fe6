/**
 * npm's `prepare` step, run by `npm ci` and `npm install` in this folder.
 *
 * It builds dist/ when it can: the build tools (dev dependencies) and the sources are both here,
 * as after `npm ci` in a clone. An install without the dev dependencies (`npm ci --omit=dev`, the
 * Dockerfile's runtime stage) cannot build, so there it only checks that a dist/ built elsewhere
 * is in place, and fails the install, saying what to do, when it is not: neither `offramp serve`
 * nor any other command runs without it. It never deletes a dist/ it cannot rebuild (the build
 * starts by removing dist/), which is why the sources must be present too.
 *
 * Plain JavaScript with Node's own modules only: it runs before anything is built, and in an
 * install that has no dev dependencies.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));

/** The dev dependencies `npm run build` runs: tsc, tsx (the dashboard's build script) and esbuild (the page's bundle). */
const BUILD_TOOLS = ['typescript', 'tsx', 'esbuild'];
/** What `npm run build` compiles. */
const BUILD_SOURCES = ['tsconfig.build.json', 'src'];
/** What running offramp needs of the build: the CLI that bin/offramp.js loads, and the dashboard page. */
const BUILD_OUTPUTS = ['dist/src/cli/main.js', 'dist/dashboard/index.html', 'dist/dashboard/app.js'];

const absent = (paths) => paths.filter((path) => !existsSync(join(root, path)));
// Looked up in this package's own node_modules only: a typescript found further up the tree
// (Node's resolution walks up) is not one `npm run build` would run.
const absentTools = BUILD_TOOLS.filter((name) => absent([join('node_modules', name, 'package.json')]).length > 0);
const absentSources = absent(BUILD_SOURCES);

if (absentTools.length === 0 && absentSources.length === 0) {
  // The build runs with the npm that runs this install (npm names its own CLI in npm_execpath).
  const npmCli = process.env.npm_execpath;
  const build = npmCli
    ? spawnSync(process.execPath, [npmCli, 'run', 'build'], { cwd: root, stdio: 'inherit' })
    : spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
  if (build.error) throw build.error;
  process.exit(build.status ?? 1);
}

const absentOutputs = absent(BUILD_OUTPUTS);
const reason =
  absentTools.length > 0
    ? `the build tools are not installed (dev dependencies: ${absentTools.join(', ')})`
    : `the sources are not here (${absentSources.join(', ')})`;
if (absentOutputs.length === 0) {
  process.stderr.write(`offramp: using the dist/ already built here (no build: ${reason})\n`);
} else {
  process.stderr.write(
    [
      `offramp: dist/ cannot be built here, since ${reason}, and no built dist/ is in place (missing ${absentOutputs.join(', ')}).`,
      '  To run from this clone: `npm ci` (with the dev dependencies) builds dist/.',
      '  For a production install: build dist/ where the dev dependencies are (`npm ci` builds it), copy it next to',
      '  package.json here, then run `npm ci --omit=dev` (the Dockerfile does this in its two stages).',
      '',
    ].join('\n'),
  );
  process.exitCode = 1;
}
