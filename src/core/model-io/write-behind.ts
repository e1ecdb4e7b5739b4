/**
 * One write left running while the caller goes on (the encoded parts of a
 * tensor are written while the next tensor is encoded): at most one write in
 * flight, its failure reported by the next `add` or by `flush`.
 */
export class WriteBehind {
  private pending: Promise<void> | undefined

  /**
   * Wait for the previous write, then start `write` without waiting for it.
   * @throws the previous write's error
   */
  async add(write: () => Promise<void>): Promise<void> {
    await this.flush()
    const started = write()
    // handled at the next add or flush; this keeps it from counting as unhandled meanwhile
    started.catch(() => undefined)
    this.pending = started
  }

  /**
   * Wait for the write in flight.
   * @throws its error
   */
  async flush(): Promise<void> {
    const p = this.pending
    this.pending = undefined
    await p
  }

  /** Wait for the write in flight, ignoring its error (before removing a failed output). */
  async settle(): Promise<void> {
    await this.flush().catch(() => undefined)
  }
}
