/**
 * `offramp inspect MODEL.onnx`: the model's inputs and outputs, its compute, and where exit
 * ramps can go (the cut-point candidates of ramps/cut-points.ts).
 */
import type { Command } from 'commander';
import {
  analyseGraph,
  DEFAULT_CUT_OPTIONS,
  type CutOptions,
  type CutPoint,
  type GraphAnalysis,
} from '../../ramps/cut-points.js';
import { describeValueInfo, ortTypeOfElem, type Dim, type ModelProto } from '../model/onnx-model.js';
import { UsageError } from './errors.js';
import { formatDims, formatFlops, formatPercent, formatTable, parseFraction, writeJson, writeOut } from './format.js';
import { readModelFile } from './model-file.js';
import { PROBE_SIZES } from '../../ramps/probe.js';

const PROBE_OTHER = PROBE_SIZES.other;

export interface TensorInfo {
  name: string;
  type: string;
  dims: Dim[] | undefined;
}

interface InspectOptions {
  all?: boolean;
  json?: boolean;
  minSpacing?: number;
  minCompute?: number;
  maxCompute?: number;
}

function typeName(elemType: number): string {
  try {
    return ortTypeOfElem(elemType);
  } catch {
    return elemType === 0 ? 'unknown' : `onnx-type-${elemType}`;
  }
}

/** Declared inputs (initializers excluded) and outputs, with probed facts where a declaration is missing. */
export function modelInterface(
  model: ModelProto,
  analysis: GraphAnalysis,
): { inputs: TensorInfo[]; outputs: TensorInfo[] } {
  const graph = model.graph ?? {};
  const describe = (info: Parameters<typeof describeValueInfo>[0]): TensorInfo => {
    const d = describeValueInfo(info);
    const probed = analysis.tensors.get(d.name);
    return {
      name: d.name,
      type: d.elemType ? typeName(d.elemType) : (probed?.type ?? 'unknown'),
      dims: d.dims ?? probed?.dims,
    };
  };
  const inputNames = new Set(analysis.index.modelInputs);
  return {
    inputs: (graph.input ?? []).filter((v) => inputNames.has(v.name ?? '')).map(describe),
    outputs: (graph.output ?? []).map(describe),
  };
}

function cutOptions(options: InspectOptions): CutOptions {
  const merged: CutOptions = {
    ...DEFAULT_CUT_OPTIONS,
    ...(options.minSpacing !== undefined && { minSpacing: options.minSpacing }),
    ...(options.minCompute !== undefined && { minComputeBefore: options.minCompute }),
    ...(options.maxCompute !== undefined && { maxComputeBefore: options.maxCompute }),
  };
  if (merged.minComputeBefore > merged.maxComputeBefore) {
    throw new UsageError(
      `--min-compute (${merged.minComputeBefore}) must not exceed --max-compute (${merged.maxComputeBefore})`,
    );
  }
  return merged;
}

function sideText(cut: CutPoint): string {
  return cut.side
    .map((s) => `+ ${s.name} ${formatDims(s.dims)} ${s.type}${s.modelInput ? ' (model input)' : ''}`)
    .join(', ');
}

function cutTable(cuts: CutPoint[], marked?: Set<string>): string {
  const headers = ['#', 'tensor', 'shape', 'op', 'before', 'side'];
  const align: ('left' | 'right')[] = ['right', 'left', 'left', 'left', 'right', 'left'];
  if (marked) {
    headers.splice(1, 0, 'cand');
    align.splice(1, 0, 'left');
  }
  const rows = cuts.map((cut, i) => {
    const row = [
      String(i + 1),
      cut.tensor,
      formatDims(cut.dims),
      cut.producerOp,
      formatPercent(cut.computeBefore),
      sideText(cut),
    ];
    if (marked) row.splice(1, 0, marked.has(cut.tensor) ? '*' : '');
    return row;
  });
  return formatTable(headers, rows, align);
}

async function inspect(path: string, options: InspectOptions): Promise<void> {
  const cut = cutOptions(options);
  const model = await readModelFile(path);
  const analysis = await analyseGraph(model, cut);
  const { inputs, outputs } = modelInterface(model, analysis);
  const flopsPerRow = analysis.flopsPerRow;
  // Beyond the batch, a symbolic size (sequence length) changes the compute: say which was used.
  const otherSymbolic = inputs.some((t) => (t.dims ?? []).some((d, i) => i > 0 && typeof d === 'string'));

  if (options.json) {
    writeJson({
      model: path,
      inputs,
      outputs,
      totalFlops: analysis.totalFlops,
      flopsPerRow,
      probeSizes: PROBE_SIZES,
      cutOptions: cut,
      cutPointCount: analysis.allCuts.length,
      candidates: analysis.candidates,
      ...(options.all && { allCuts: analysis.allCuts }),
    });
    return;
  }

  const label = (text: string): string => text.padEnd(9);
  const ioTable = formatTable(
    ['name', 'type', 'shape'],
    [...inputs, ...outputs].map((t) => [t.name, t.type, formatDims(t.dims)]),
  )
    .split('\n')
    .slice(1); // the column names add nothing here
  const lines = [
    `${label('model')}${path}`,
    ...ioTable.map((row, i) => `${label(i === 0 ? 'inputs' : i === inputs.length ? 'outputs' : '')}${row}`),
    `${label('compute')}${formatFlops(flopsPerRow)} per row${otherSymbolic ? ` (other symbolic sizes at ${PROBE_OTHER}, e.g. sequence length)` : ''}`,
    '',
  ];
  const shown = options.all ? analysis.allCuts : analysis.candidates;
  const ranges =
    `compute before in [${formatPercent(cut.minComputeBefore)}, ${formatPercent(cut.maxComputeBefore)}], ` +
    `spacing >= ${formatPercent(cut.minSpacing)}`;
  if (options.all) {
    lines.push(
      `${analysis.allCuts.length} cut points, ${analysis.candidates.length} of them candidates (* ; ${ranges}):`,
    );
    lines.push(cutTable(shown, new Set(analysis.candidates.map((c) => c.tensor))));
  } else if (shown.length === 0) {
    lines.push(`no candidates (${analysis.allCuts.length} cut points, none with ${ranges}); try --all`);
  } else {
    lines.push(`${shown.length} candidates (of ${analysis.allCuts.length} cut points; ${ranges}):`);
    lines.push(cutTable(shown));
  }
  if (shown.some((c) => c.side.length > 0)) {
    lines.push(
      '',
      'side: small tensors computed from the inputs (such as an attention mask) that layers after the',
      'cut still read; they are carried across the cut together with the cut tensor.',
    );
  }
  writeOut(lines.join('\n'));
}

export function registerInspectCommand(program: Command): void {
  program
    .command('inspect')
    .description("show a model's inputs, outputs, compute and the cut points where exit ramps can go")
    .argument('<model>', 'ONNX model file')
    .option('--all', 'list every cut point, before the distance and spacing filters')
    .option('--json', 'print one JSON object instead of text')
    .option(
      '--min-spacing <fraction>',
      `minimum share of compute between candidates (default ${DEFAULT_CUT_OPTIONS.minSpacing})`,
      parseFraction,
    )
    .option(
      '--min-compute <fraction>',
      `skip cuts with less compute before them (default ${DEFAULT_CUT_OPTIONS.minComputeBefore})`,
      parseFraction,
    )
    .option(
      '--max-compute <fraction>',
      `skip cuts with more compute before them (default ${DEFAULT_CUT_OPTIONS.maxComputeBefore})`,
      parseFraction,
    )
    .action(async (path: string, options: InspectOptions) => {
      await inspect(path, options);
    });
}
