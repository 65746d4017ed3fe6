/** KServe v2 JSON inference against a running server (real HTTP), for end-to-end tests. */
import type { HostTensor } from '../../src/model/tensor.js';

export interface InferAnswer {
  status: number;
  parameters: Record<string, unknown>;
  /** Each output's data, by output name. */
  outputs: Record<string, unknown[]>;
}

/** POSTs `inputs` to model `model` at `base` (http://host:port). */
export async function postInfer(base: string, model: string, inputs: unknown[]): Promise<InferAnswer> {
  const res = await fetch(`${base}/v2/models/${model}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputs }),
  });
  const json = (await res.json()) as {
    parameters?: Record<string, unknown>;
    outputs?: { name: string; data: unknown[] }[];
  };
  return {
    status: res.status,
    parameters: json.parameters ?? {},
    outputs: Object.fromEntries((json.outputs ?? []).map((o) => [o.name, o.data])),
  };
}

/** An image batch (e.g. testImages) as the bundled image model's `pixels` input, FP32 JSON. */
export function pixelsInput(images: HostTensor): unknown {
  return { name: 'pixels', shape: images.dims, datatype: 'FP32', data: Array.from(images.data as Float32Array) };
}
