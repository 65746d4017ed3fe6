import { beforeAll, describe, expect, test } from 'vitest';
import { analyseGraph, DEFAULT_CUT_OPTIONS, type CutPoint, type GraphAnalysis } from '../ramps/cut-points.js';
import { ancestorNodes } from '../src/model/graph.js';
import { readModel } from '../src/model/onnx-model.js';
import { bundledModel, titled, zooModel, type TestModel } from './helpers/models.js';

const { minComputeBefore, maxComputeBefore } = DEFAULT_CUT_OPTIONS;

async function analyse(model: TestModel): Promise<GraphAnalysis> {
  return analyseGraph(await readModel(model.path));
}

function expectIncreasingWithinRange(cuts: CutPoint[]): void {
  expect(cuts.length).toBeGreaterThan(0);
  cuts.forEach((cut, i) => {
    expect(cut.computeBefore).toBeGreaterThanOrEqual(minComputeBefore);
    expect(cut.computeBefore).toBeLessThanOrEqual(maxComputeBefore);
    if (i > 0) expect(cut.computeBefore).toBeGreaterThan((cuts[i - 1] as CutPoint).computeBefore);
  });
}

/** torchvision names the last ReLU of a BasicBlock `relu_1` and of a Bottleneck `relu_2`; both follow the residual Add. */
const RESIDUAL_BLOCK_OUTPUT = /^\/layer\d\/layer\d\.\d+\/relu(_\d)?\/Relu_output_0$/;

for (const name of ['resnet18', 'resnet50']) {
  const model = zooModel(name);
  describe.skipIf(model.missing !== undefined)(titled(`${name} cut points`, model), () => {
    let analysis: GraphAnalysis;
    beforeAll(async () => {
      analysis = await analyse(model);
    });

    test('the block-boundary candidates are exactly the residual block outputs within the compute range', () => {
      const blockOutputs = analysis.allCuts.filter(
        (c) =>
          RESIDUAL_BLOCK_OUTPUT.test(c.tensor) &&
          c.computeBefore >= minComputeBefore &&
          c.computeBefore <= maxComputeBefore,
      );
      expect(blockOutputs.length).toBeGreaterThan(0);
      expect(blockOutputs.every((c) => c.blockBoundary && c.producerOp === 'Relu')).toBe(true);
      expect(analysis.candidates.filter((c) => c.blockBoundary).map((c) => c.tensor)).toEqual(
        blockOutputs.map((c) => c.tensor),
      );
    });

    test('a candidate that is not a block output can only be the stem output, before the first block', () => {
      // The stem (conv, pool) leaves a gap before the first block that a plain chain cut may fill.
      const firstBlock = analysis.candidates.find((c) => c.blockBoundary) as CutPoint;
      const others = analysis.candidates.filter((c) => !c.blockBoundary);
      expect(others.length).toBeLessThanOrEqual(1);
      for (const c of others) expect(c.computeBefore).toBeLessThan(firstBlock.computeBefore);
    });

    test('candidates have strictly increasing compute before them, within [0.05, 0.95]', () => {
      expectIncreasingWithinRange(analysis.candidates);
    });
  });
}

for (const name of ['resnet18', 'resnet50', 'mobilenet_v2', 'efficientnet_b0']) {
  const model = zooModel(name);
  test.skipIf(model.missing !== undefined)(titled(`no cut point of ${name} carries a side tensor`, model), async () => {
    const analysis = await analyse(model);
    expect(analysis.allCuts.length).toBeGreaterThan(0);
    expect(analysis.allCuts.filter((c) => c.side.length > 0).map((c) => c.tensor)).toEqual([]);
    expectIncreasingWithinRange(analysis.candidates);
  });
}

const text = zooModel('text_encoder');
describe.skipIf(text.missing !== undefined)(titled('text_encoder cut points', text), () => {
  let analysis: GraphAnalysis;
  beforeAll(async () => {
    analysis = await analyse(text);
  });

  test('the first candidate carries the attention mask, a bool [batch,seq] tensor computed from the token ids', () => {
    const first = analysis.candidates[0] as CutPoint;
    expect(first.side).toHaveLength(1);
    const mask = first.side[0];
    expect(mask).toMatchObject({ type: 'bool', dims: ['batch', 'seq'], modelInput: false });
    const producer = analysis.index.producer.get(mask?.name ?? '');
    expect(producer === undefined ? undefined : analysis.index.nodes[producer]?.opType).toBe('Equal');
  });

  test('a candidate carries the mask exactly when a layer after the cut still reads it, and nothing else', () => {
    const mask = (analysis.candidates[0] as CutPoint).side[0]?.name as string;
    for (const cut of analysis.candidates) {
      const before = ancestorNodes(analysis.index, cut.tensor);
      const readAfter = (analysis.index.consumers.get(mask) ?? []).some((c) => !before.has(c));
      expect({ tensor: cut.tensor, side: cut.side.map((s) => s.name) }).toEqual({
        tensor: cut.tensor,
        side: readAfter ? [mask] : [],
      });
    }
  });

  test('candidates are hidden states [batch,seq,128] with strictly increasing compute before them', () => {
    for (const cut of analysis.candidates) expect(cut.dims).toEqual(['batch', 'seq', 128]);
    expectIncreasingWithinRange(analysis.candidates);
  });
});

const bundled = bundledModel();
describe.skipIf(bundled.missing !== undefined)(titled('bundled fmnist-resnet cut points', bundled), () => {
  let analysis: GraphAnalysis;
  beforeAll(async () => {
    analysis = await analyse(bundled);
  });

  test('every candidate is a residual block output', () => {
    expect(analysis.candidates.length).toBeGreaterThan(0);
    expect(analysis.candidates.filter((c) => !c.blockBoundary).map((c) => c.tensor)).toEqual([]);
  });

  test('candidates carry no side tensors and have strictly increasing compute before them', () => {
    expect(analysis.candidates.every((c) => c.side.length === 0)).toBe(true);
    expectIncreasingWithinRange(analysis.candidates);
  });
});
