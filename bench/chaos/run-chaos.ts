/**
 * `npm run chaos [-- --quick] [--case <name part>] [--seed N] [--out bench/results]`: the chaos
 * suite. Starts real servers (the built CLI, `bin/offramp.js`), does bad things to them — worker
 * crashes and hangs, a corrupt ramp head, fuzzed bodies, ten times the load it can carry, SIGTERM
 * under load, broken starts — and prints one table: requests tried, answers by status, requests
 * lost (must be 0), crashes (must be 0), worst memory, time to recover. Exits 1 when any case
 * missed an expectation. Writes bench/results/chaos-<UTC start>.md and .json with provenance.
 * `.ci/run` runs it with --quick.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { finishProvenance, provenance, provenanceLine } from '../lib/machine.js';
import { CHAOS_CASES } from './cases.js';
import { emptyResult, loadImages, referenceClasses, type CaseContext, type CaseResult } from './chaos-kit.js';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    case: { type: 'string', multiple: true },
    seed: { type: 'string', default: '12' },
    out: { type: 'string', default: 'bench/results' },
  },
});

const started = new Date();
const origin = provenance();
const workDir = await mkdtemp(join(tmpdir(), 'offramp-chaos-'));
const ctx: CaseContext = {
  quick: args.quick,
  workDir,
  seed: Number(args.seed),
  images: await loadImages(args.quick ? 64 : 256),
};
const cases = CHAOS_CASES.filter(
  (c) => !args.case || args.case.some((part) => c.name.toLowerCase().includes(part.toLowerCase())),
);

const results: CaseResult[] = [];
try {
  process.stderr.write(`chaos: reference answers from the full model (${ctx.images.bodies.length} images)\n`);
  await referenceClasses(ctx);
  for (const c of cases) {
    process.stderr.write(`chaos: ${c.name} — ${c.about}\n`);
    const t0 = performance.now();
    let result: CaseResult;
    try {
      result = await c.run(ctx);
    } catch (err) {
      result = emptyResult(c.name);
      result.failures.push(`the case itself failed: ${(err as Error).message.split('\n')[0] ?? ''}`);
    }
    result.notes.push(`case took ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    results.push(result);
    process.stderr.write(`chaos: ${c.name}: ${result.failures.length === 0 ? 'ok' : result.failures.join('; ')}\n`);
  }
} finally {
  await rm(workDir, { recursive: true, force: true });
}

const table = [
  '| case | tried | answers | lost | crashes | worst RSS MiB | recover ms | verdict |',
  '|---|--:|---|--:|--:|--:|--:|---|',
  ...results
    .map((r) =>
      [
        r.name,
        r.tried,
        [...r.outcomes].map(([label, n]) => `${n} × ${label}`).join('<br>'),
        r.lost,
        r.crashes,
        r.worstRssMb ?? '–',
        r.recoverMs ?? '–',
        r.failures.length === 0 ? 'ok' : `**FAILED**: ${r.failures.join('; ')}`,
      ].join(' | '),
    )
    .map((row) => `| ${row} |`),
];
const notes = results.flatMap((r) => r.notes.map((n) => `- ${r.name}: ${n}`));
const done = finishProvenance(origin);
const report = [
  `# Chaos suite, ${started.toISOString()}${args.quick ? ' (--quick)' : ''}`,
  '',
  provenanceLine(done),
  '',
  ...table,
  '',
  ...notes,
  '',
].join('\n');
process.stdout.write(report);

const stamp = started
  .toISOString()
  .replace(/:/g, '-')
  .replace(/\.\d+Z$/, 'Z');
const outDir = resolve(args.out, args.quick ? 'quick' : '.');
await mkdir(outDir, { recursive: true });
await writeFile(join(outDir, `chaos-${stamp}.md`), report);
await writeFile(
  join(outDir, `chaos-${stamp}.json`),
  JSON.stringify(
    {
      provenance: done,
      quick: args.quick,
      seed: ctx.seed,
      results: results.map((r) => ({ ...r, outcomes: Object.fromEntries(r.outcomes) })),
    },
    null,
    2,
  ) + '\n',
);
const failed = results.filter((r) => r.failures.length > 0 || r.lost > 0 || r.crashes > 0);
process.exitCode = failed.length > 0 ? 1 : 0;
