/**
 * Paths of the generated test models, and why a test that needs one is skipped when it is not
 * there: the zoo models are gitignored build products (`npm run zoo`).
 *
 * With OFFRAMP_REQUIRE_ZOO=1 (CI sets it: .ci/run) a missing zoo model is an error instead, so
 * the test files that need it fail to load: CI cannot pass with those tests silently skipped.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface TestModel {
  name: string;
  /** Path relative to the repository root, for messages. */
  relative: string;
  path: string;
  /** Why tests on it are skipped; undefined when the file exists. */
  missing: string | undefined;
}

const ZOO_HINT = 'run `npm run zoo` (needs apt-get install python3-torch python3-torchvision)';
const BUNDLED_HINT = 'train it with `/usr/bin/python3 models/recipes/train_fmnist_resnet.py` (needs python3-torch)';

function testModel(name: string, relative: string, hint: string, required = false): TestModel {
  const path = fileURLToPath(new URL(`../../${relative}`, import.meta.url));
  const missing = existsSync(path) ? undefined : `${relative} missing: ${hint}`;
  if (missing && required) throw new Error(`${missing} (OFFRAMP_REQUIRE_ZOO=1: these tests may not be skipped)`);
  if (missing) console.warn(`skipping tests on ${name}: ${missing}`);
  return { name, relative, path, missing };
}

/** Whether a missing zoo model fails the tests instead of skipping them (CI). */
function zooRequired(): boolean {
  return process.env['OFFRAMP_REQUIRE_ZOO'] === '1';
}

export const zooModel = (name: string): TestModel =>
  testModel(name, `models/zoo/${name}.onnx`, ZOO_HINT, zooRequired());
export const bundledModel = (): TestModel => testModel('fmnist-resnet', 'models/fmnist-resnet.onnx', BUNDLED_HINT);

/** A describe/test title that carries the skip reason, so the reporter shows why. */
export function titled(title: string, model: TestModel): string {
  return model.missing ? `${title} (skipped: ${model.missing})` : title;
}
