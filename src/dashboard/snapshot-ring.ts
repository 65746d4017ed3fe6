/**
 * The dashboard's ring buffer: the last `capacity` snapshots, each kept as the SSE frame every
 * stream sends (serialised once, whatever the number of viewers). A new stream starts from the
 * oldest; a reconnecting one from the frame after its Last-Event-ID.
 *
 * Invariant: the frames held have consecutive seqs (the sampler numbers its snapshots one by one
 * and every one is pushed), so a seq's place is found by subtraction.
 */

export interface SnapshotFrame {
  seq: number;
  /** The complete SSE event: `id`, `event`, `data` lines and the blank line that ends it. */
  text: string;
}

export class SnapshotRing {
  private readonly frames: SnapshotFrame[] = [];
  /** Index in `frames` of the oldest frame once the ring is full. */
  private start = 0;

  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1)
      throw new RangeError(`SnapshotRing: capacity must be a positive integer, got ${capacity}`);
  }

  get size(): number {
    return this.frames.length;
  }

  /** Seq of the oldest frame held; 0 while empty. */
  get oldestSeq(): number {
    return this.frames[this.start]?.seq ?? 0;
  }

  /** Seq of the newest frame held; 0 while empty. */
  get newestSeq(): number {
    return this.frames[(this.start + this.frames.length - 1) % this.capacity]?.seq ?? 0;
  }

  push(frame: SnapshotFrame): void {
    if (this.frames.length > 0 && frame.seq !== this.newestSeq + 1)
      throw new RangeError(`SnapshotRing: seq ${frame.seq} does not follow ${this.newestSeq}`);
    if (this.frames.length < this.capacity) {
      this.frames.push(frame);
      return;
    }
    this.frames[this.start] = frame;
    this.start = (this.start + 1) % this.capacity;
  }

  /** The frames after `seq`, oldest first: all of them when `seq` is older than the oldest held. */
  since(seq: number): SnapshotFrame[] {
    const skip = Math.max(0, seq - this.oldestSeq + 1);
    const out: SnapshotFrame[] = [];
    for (let i = skip; i < this.frames.length; i++)
      out.push(this.frames[(this.start + i) % this.capacity] as SnapshotFrame);
    return out;
  }
}
