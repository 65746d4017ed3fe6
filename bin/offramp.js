#!/usr/bin/env node
// Thin launcher: the CLI is TypeScript compiled to dist/ by `npm run build` (run by `npm ci` via
// `prepare`, bin/prepare.js; a production install brings a dist/ built elsewhere).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/src/cli/main.js', import.meta.url);
// Without the build, the import below would fail with a bare ERR_MODULE_NOT_FOUND.
if (!existsSync(entry)) {
  process.stderr.write('offramp: dist/ is not built: run `npm run build` (it needs the dev dependencies: `npm ci`)\n');
  process.exit(1);
}
const { main } = await import(entry.href);

const code = await main(process.argv.slice(2));
process.exitCode = code;
// A failed command ends the process at once: whatever it leaves running (a worker thread inside
// a batch when `serve` stops a drain short, the models a failed start had loaded) must not keep
// alive a process that has already said why it failed. A command that succeeded ends when it has
// nothing left running, so a leak there shows as a process that does not exit.
if (code !== 0) process.exit(code);
