/**
 * Opens the ONNX file a command names, turning the usual mistakes (no such file, a folder, a
 * file that is not ONNX) into one-line errors that name the file.
 */
import { stat } from 'node:fs/promises';
import { readModel, type ModelProto } from '../model/onnx-model.js';
import { CliError } from './errors.js';

export async function readModelFile(path: string): Promise<ModelProto> {
  let isFile: boolean;
  try {
    isFile = (await stat(path)).isFile();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(code === 'ENOENT' ? `${path}: no such file` : `cannot read ${path}: ${(err as Error).message}`);
  }
  if (!isFile) throw new CliError(`${path} is not a file (expected an ONNX model such as model.onnx)`);
  let model: ModelProto;
  try {
    model = await readModel(path);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  // Protobuf decodes many non-ONNX byte strings without complaint, so check there is a model in it.
  const graph = model.graph;
  if (!graph || (graph.node ?? []).length === 0 || (graph.output ?? []).length === 0) {
    throw new CliError(`${path} is not an ONNX model (it holds no graph with nodes and outputs)`);
  }
  return model;
}

/** Fails with "PATH: no such WHAT file" unless `path` is a regular file. */
export async function requireFile(path: string, what: string): Promise<void> {
  const info = await stat(path).catch(() => undefined);
  if (!info?.isFile()) throw new CliError(`${path}: no such ${what} file`);
}
