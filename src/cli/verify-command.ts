/**
 * `offramp verify MODEL.onnx`: splits the model at its candidates (or at `--cuts`) and checks
 * that running the segments in a chain reproduces the whole model on a random input.
 */
import type { Command } from 'commander';
import { analyseGraph, type GraphAnalysis } from '../../ramps/cut-points.js';
import { verifySplit, type VerifyReport } from '../../ramps/verify.js';
import { CliError, UsageError } from './errors.js';
import { collectList, formatDiff, formatTable, parsePositiveInt, writeJson, writeOut } from './format.js';
import { readModelFile } from './model-file.js';

interface VerifyOptions {
  cuts?: string[];
  batch?: number;
  json?: boolean;
}

/** Rejects names that are not cut points here, where the message can name the model and the fix. */
function checkCuts(path: string, analysis: GraphAnalysis, cuts: string[]): void {
  const known = new Set(analysis.allCuts.map((c) => c.tensor));
  for (const cut of cuts) {
    if (known.has(cut)) continue;
    if (analysis.index.producer.has(cut)) {
      throw new UsageError(
        `'${cut}' is a tensor of ${path} but not a cut point: a skip connection or another branch goes around it (see 'offramp inspect --all ${path}')`,
      );
    }
    throw new UsageError(
      `${path} has no tensor named '${cut}' that a node produces (see 'offramp inspect --all ${path}')`,
    );
  }
}

function printReport(path: string, report: VerifyReport): void {
  const rows = report.segments.map((s) => [
    String(s.index),
    String(s.nodes),
    `${s.inputs.join(', ')} -> ${s.outputs.join(', ')}`,
  ]);
  const lines = [
    `model  ${path}`,
    `split  ${report.cuts.length} cut${report.cuts.length === 1 ? '' : 's'} -> ${report.segments.length} segments, batch ${report.batch}`,
    '',
    formatTable(['segment', 'nodes', 'inputs -> outputs'], rows, ['right', 'right', 'left']),
    '',
  ];
  const outputs = Object.entries(report.perOutput);
  if (outputs.length > 1) for (const [name, diff] of outputs) lines.push(`  ${name}: max abs diff ${formatDiff(diff)}`);
  lines.push(
    `max abs diff ${formatDiff(report.maxAbsDiff)} (tolerance ${formatDiff(report.tolerance)}): ${report.ok ? 'PASS' : 'FAIL'}`,
  );
  writeOut(lines.join('\n'));
}

async function verify(path: string, options: VerifyOptions): Promise<void> {
  const model = await readModelFile(path);
  const analysis = await analyseGraph(model);
  const cuts = options.cuts && options.cuts.length > 0 ? options.cuts : undefined;
  if (cuts) checkCuts(path, analysis, cuts);
  const report = await verifySplit(model, { cuts, batch: options.batch, analysis });
  if (options.json) writeJson(report);
  else printReport(path, report);
  if (!report.ok) {
    throw new CliError(
      `split execution of ${path} differs from the whole model by ${formatDiff(report.maxAbsDiff)} (tolerance ${formatDiff(report.tolerance)})`,
    );
  }
}

export function registerVerifyCommand(program: Command): void {
  program
    .command('verify')
    .description('split a model at its cut points and check the segments reproduce its outputs (max abs diff <= 1e-4)')
    .argument('<model>', 'ONNX model file')
    .option(
      '--cuts <tensors>',
      'cut at these tensors (comma-separated or repeated; default: the candidates)',
      collectList,
    )
    .option('--batch <n>', 'rows in the random test input', parsePositiveInt, 2)
    .option('--json', 'print the verification report as JSON')
    .action(async (path: string, options: VerifyOptions) => {
      await verify(path, options);
    });
}
