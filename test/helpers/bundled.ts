/** The bundled, prepared Fashion-MNIST model and its committed test data (always in the repo). */
import { fileURLToPath } from 'node:url';
import { parseServingConfig, type ServingConfig } from '../../src/config/index.js';
import { readNpy } from '../../src/model/npy.js';
import { readManifest } from '../../src/model/manifest.js';
import { InputRows } from '../../src/model/input-rows.js';
import type { HostTensor } from '../../src/model/tensor.js';

const root = (relative: string): string => fileURLToPath(new URL(`../../${relative}`, import.meta.url));

export const BUNDLED_DIR = root('models/fmnist-resnet');
export const BUNDLED_ONNX = root('models/fmnist-resnet.onnx');
export const TEST_IMAGES = root('models/data/fashion-mnist/test-images.npy.gz');
export const TEST_LABELS = root('models/data/fashion-mnist/test-labels.npy.gz');
export const BOOTSTRAP_IMAGES = root('models/data/fashion-mnist/bootstrap-images.npy.gz');
export const BOOTSTRAP_LABELS = root('models/data/fashion-mnist/bootstrap-labels.npy.gz');

/** The bundled text backbone, its tokenizer, labels and prepared directory, and the SpamAssassin data. */
export const SPAM_BERT_ONNX = root('models/spam-bert.onnx');
export const SPAM_BERT_TOKENIZER = root('models/spam-bert.tokenizer.json');
export const SPAM_BERT_LABELS = root('models/spam-bert.labels.txt');
export const SPAM_BERT_DIR = root('models/spam-bert');
export const SPAM_BOOTSTRAP = root('models/data/spam-assassin/bootstrap.jsonl.gz');
export const SPAM_TEST = root('models/data/spam-assassin/test.jsonl.gz');

/** `count` real test images, scaled to [0,1], as a [count,1,28,28] float tensor. */
export async function testImages(count: number, offset = 0): Promise<HostTensor> {
  return imagesFrom(TEST_IMAGES, count, offset);
}

/** `count` images of a committed Fashion-MNIST .npy (TEST_IMAGES, BOOTSTRAP_IMAGES) from `offset`, as testImages gives them. */
export async function imagesFrom(file: string, count: number, offset = 0): Promise<HostTensor> {
  const manifest = await readManifest(BUNDLED_DIR);
  const rows = new InputRows(await readNpy(file), manifest.model.inputs[0]!);
  return rows.gather(Array.from({ length: count }, (_, i) => offset + i));
}

/** Server fields for a test server on loopback with free ports and one single-thread worker. */
export const TEST_SERVER = 'http_port: 0, grpc_port: 0, host: 127.0.0.1, workers: 1, intra_op_threads: 1';

/**
 * A parsed SLO file serving the bundled model as `fmnist`: `server` holds the server mapping's
 * fields, each of `modelLines` one field of the model (e.g. `tuner: { kind: static }`).
 */
export function bundledConfig(file: string, modelLines: readonly string[], server = TEST_SERVER): ServingConfig {
  const lines = [`server: { ${server} }`, 'models:', '  - name: fmnist', `    path: ${JSON.stringify(BUNDLED_DIR)}`];
  return parseServingConfig([...lines, ...modelLines.map((line) => `    ${line}`)].join('\n'), file);
}

/** The bundled Fashion-MNIST cascade members (models/members/README.md), in the order a tier lists them. */
export const FMNIST_MEMBERS = ['logreg', 'mlp', 'cnn'].map((name) => root(`models/members/fmnist-${name}.onnx`));
/** The bundled text cascade members (input_ids + attention_mask), once they are committed. */
export const SPAM_MEMBERS = ['meanemb', 'cnn1d', 'transformer1'].map((name) =>
  root(`models/members/spam-${name}.onnx`),
);
