/**
 * A fixed set of reusable I/O buffers, so that streaming a large input
 * allocates nothing per chunk and memory stays bounded: `acquire` waits
 * while every buffer is in use. Buffers are SharedArrayBuffers, so a worker
 * thread can read them without a copy; they are allocated on first use.
 */
export class BufferPool {
  private readonly free: Uint8Array[] = []
  private readonly waiting: Array<(buffer: Uint8Array) => void> = []
  private created = 0

  /**
   * @param bufferBytes the size of each buffer (the largest view `acquire` can give)
   * @param count how many buffers may exist at once
   */
  constructor(
    readonly bufferBytes: number,
    readonly count: number,
  ) {
    if (!(Number.isSafeInteger(bufferBytes) && bufferBytes > 0 && Number.isSafeInteger(count) && count > 0)) {
      throw new RangeError(`a buffer pool needs a positive size and count (got ${bufferBytes} × ${count})`)
    }
  }

  /** A view of `length` bytes (≤ bufferBytes) at the start of a free buffer; its old contents are left as they were. */
  async acquire(length: number): Promise<Uint8Array> {
    if (length > this.bufferBytes) throw new RangeError(`asked for ${length} bytes from a pool of ${this.bufferBytes}-byte buffers`)
    let buffer = this.free.pop()
    if (!buffer && this.created < this.count) {
      this.created++
      buffer = new Uint8Array(new SharedArrayBuffer(this.bufferBytes))
    }
    if (!buffer) buffer = await new Promise<Uint8Array>((resolve) => this.waiting.push(resolve))
    return buffer.subarray(0, length)
  }

  /** Give back a view from `acquire` (its whole buffer becomes free). */
  release(view: Uint8Array): void {
    const buffer = new Uint8Array(view.buffer, 0, this.bufferBytes)
    const next = this.waiting.shift()
    if (next) next(buffer)
    else this.free.push(buffer)
  }
}
