/**
 * Validates a request's input tensor against the model and converts it to the model's input
 * type, once, at the boundary: every failure is a coded error that names the
 * input, and nothing past this point re-checks.
 *
 * Accepted: the model's own type (FP32 for image models, INT64 for token ids), plus the
 * conveniences FP64 → FP32, UINT8 pixels 0..255 → FP32 in [0,1] (divided by 255), and
 * INT32 → INT64.
 */
import { OfframpError } from '../errors.js';
import type { PreparedManifest } from '../model/manifest.js';
import type { RequestRows } from '../engine/request.js';
import type { InputTensor, Parameters, TensorMetadata } from './types.js';
import { textInputMetadata } from './convert-text-input.js';
import { shapeText } from './tensor-bytes.js';

const FLOAT_SOURCES = ['FP32', 'FP64', 'UINT8'];
const INT_SOURCES = ['INT64', 'INT32'];

export function inputMetadata(manifest: PreparedManifest): TensorMetadata[] {
  if (manifest.model.text) return textInputMetadata(manifest.model.text);
  return manifest.model.inputs.map((io) => ({
    name: io.name,
    datatype: io.type === 'int64' ? 'INT64' : 'FP32',
    shape: io.dims.map((d) => (typeof d === 'number' ? d : -1)),
  }));
}

/** An image model's (single, fixed-shape) input; text models go through convert-text-input.ts. */
export function convertInput(
  modelName: string,
  manifest: PreparedManifest,
  inputs: InputTensor[],
): Extract<RequestRows, { kind: 'dense' }> {
  const spec = manifest.model.inputs[0];
  if (!spec) throw new OfframpError('OFFRAMP_INTERNAL', { reason: `model '${modelName}' declares no input` });
  const expectedShape = inputMetadata(manifest)[0]?.shape ?? [];
  for (const input of inputs) {
    if (input.name !== spec.name)
      throw new OfframpError('OFFRAMP_UNKNOWN_INPUT', { model: modelName, input: input.name, expected: spec.name });
  }
  if (inputs.length > 1)
    throw new OfframpError('OFFRAMP_INVALID_REQUEST', {
      reason: `input '${spec.name}' is given ${inputs.length} times`,
    });
  const input = inputs[0];
  if (!input) throw new OfframpError('OFFRAMP_MISSING_INPUT', { model: modelName, input: spec.name });

  const isInt = spec.type === 'int64';
  const accepted = isInt ? INT_SOURCES : FLOAT_SOURCES;
  if (!accepted.includes(input.datatype)) {
    throw new OfframpError('OFFRAMP_WRONG_DATATYPE', {
      input: input.name,
      got: input.datatype,
      expected: accepted.join(' or '),
    });
  }
  const shape = input.shape;
  const shapeOk =
    shape.length === expectedShape.length &&
    shape.every(
      (d, i) => Number.isInteger(d) && d >= (i === 0 ? 1 : 0) && (expectedShape[i] === -1 || expectedShape[i] === d),
    );
  if (!shapeOk)
    throw new OfframpError('OFFRAMP_WRONG_SHAPE', {
      input: input.name,
      got: shapeText(shape),
      expected: shapeText(expectedShape),
    });
  const count = shape.reduce((a, b) => a * b, 1);
  if (input.data.length !== count) {
    throw new OfframpError('OFFRAMP_ELEMENT_COUNT_MISMATCH', {
      input: input.name,
      got: input.data.length,
      shape: shapeText(shape),
      expected: count,
    });
  }

  const values = input.data;
  const bad = (index: number, what: string): never => {
    throw new OfframpError('OFFRAMP_WRONG_DATATYPE', {
      input: input.name,
      got: `${input.datatype} with ${what} at element ${index}`,
      expected: accepted.join(' or '),
    });
  };
  let data: Float32Array | BigInt64Array;
  if (isInt) {
    const out = new BigInt64Array(count);
    for (let i = 0; i < count; i++) {
      const v = values[i];
      if (typeof v === 'bigint') out[i] = v;
      else if (typeof v === 'number' && Number.isSafeInteger(v)) out[i] = BigInt(v);
      else bad(i, `the value ${String(v)}`);
    }
    data = out;
  } else {
    const out = new Float32Array(count);
    const scale = input.datatype === 'UINT8' ? 1 / 255 : 1;
    for (let i = 0; i < count; i++) {
      const v = values[i];
      if (typeof v !== 'number' || !Number.isFinite(v)) bad(i, `the value ${String(v)}`);
      const n = v as number;
      if (input.datatype === 'UINT8' && (!Number.isInteger(n) || n < 0 || n > 255))
        bad(i, `${n} (UINT8 pixels are 0..255)`);
      out[i] = n * scale;
      // A finite FP64 (or JSON) value beyond FP32's range (±3.4e38) becomes ±Infinity in the
      // model's input, and the model answers NaN: refuse it like a non-finite value.
      if (!Number.isFinite(out[i])) bad(i, `the value ${n}, beyond the FP32 range of the model's input`);
    }
    data = out;
  }
  return { kind: 'dense', data, rows: shape[0] as number, rowShape: shape.slice(1) };
}

export interface RequestOptions {
  priority: number;
  timeoutMs?: number;
}

/** `priority` (integer ≥ 0, lower = more urgent, 0 = default) and `timeout` (µs, as in Triton). */
export function requestOptions(parameters: Parameters): RequestOptions {
  const options: RequestOptions = { priority: 0 };
  const priority = parameters['priority'];
  if (priority !== undefined) {
    if (typeof priority !== 'number' || !Number.isInteger(priority) || priority < 0) {
      throw new OfframpError('OFFRAMP_BAD_PARAMETER', {
        parameter: 'priority',
        got: JSON.stringify(priority),
        expected: 'an integer ≥ 0 (lower is more urgent)',
      });
    }
    options.priority = priority;
  }
  const timeout = parameters['timeout'];
  if (timeout !== undefined) {
    if (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout <= 0) {
      throw new OfframpError('OFFRAMP_BAD_PARAMETER', {
        parameter: 'timeout',
        got: JSON.stringify(timeout),
        expected: 'a positive integer number of microseconds',
      });
    }
    options.timeoutMs = timeout / 1000;
  }
  return options;
}
