/**
 * Model input rows drawn from a NumPy array (src/model/npy.ts): what `offramp prepare` trains
 * heads on and what `offramp record` replays through the engine. Both must turn the same file into
 * the same tensors, or a recorded trace would not describe what prepare measured.
 */
import type { NpyArray } from './npy.js';
import type { SegmentIo } from './split.js';
import type { HostTensor, TensorData } from './tensor.js';

/**
 * Rows a model reads, gathered into one batch's feeds (a tensor per model input). Image data has
 * one input (`InputRows`); text has ids and an attention mask padded per batch (`TextRows`).
 */
export interface RowSource {
  readonly rows: number;
  feeds(indices: ArrayLike<number>): Record<string, HostTensor>;
}

/** Model input rows from a .npy array: uint8 pixels become [0,1] floats, integer ids become int64. */
export class InputRows implements RowSource {
  readonly rows: number;
  private readonly rowSize: number;

  constructor(
    private readonly array: NpyArray,
    private readonly spec: SegmentIo,
    limit?: number,
  ) {
    const rowShape = array.shape.slice(1);
    const wanted = spec.dims.slice(1);
    const matches =
      rowShape.length === wanted.length && wanted.every((d, i) => typeof d !== 'number' || d === rowShape[i]);
    if (!matches) {
      throw new Error(
        `data rows have shape [${rowShape.join(',')}] but model input '${spec.name}' expects [${wanted.join(',')}] per row`,
      );
    }
    this.rows = Math.min(array.shape[0] ?? 0, limit ?? Number.POSITIVE_INFINITY);
    this.rowSize = rowShape.reduce((a, b) => a * b, 1);
  }

  feeds(indices: ArrayLike<number>): Record<string, HostTensor> {
    return { [this.spec.name]: this.gather(indices) };
  }

  /** A batch of the given rows as a model input tensor. */
  gather(indices: ArrayLike<number>): HostTensor {
    const n = indices.length;
    const dims = [n, ...this.array.shape.slice(1)];
    const source = this.array.data;
    let data: TensorData;
    if (this.spec.type === 'float32') {
      const out = new Float32Array(n * this.rowSize);
      const scale = this.array.type === 'uint8' ? 1 / 255 : 1;
      for (let i = 0; i < n; i++) {
        const offset = (indices[i] as number) * this.rowSize;
        for (let j = 0; j < this.rowSize; j++) out[i * this.rowSize + j] = Number(source[offset + j]) * scale;
      }
      data = out;
    } else if (this.spec.type === 'int64') {
      const out = new BigInt64Array(n * this.rowSize);
      for (let i = 0; i < n; i++) {
        const offset = (indices[i] as number) * this.rowSize;
        for (let j = 0; j < this.rowSize; j++)
          out[i * this.rowSize + j] = BigInt(source[offset + j] as number | bigint);
      }
      data = out;
    } else {
      throw new Error(`model input type '${this.spec.type}' is not supported by prepare (float32 or int64)`);
    }
    return { type: this.spec.type, data, dims };
  }
}
