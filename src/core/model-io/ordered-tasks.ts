/**
 * Chunk tasks of one tensor started in row order and run concurrently: the
 * first failure stops new ones (`failed`), and the error reported is the one
 * of the first failing chunk in row order, whatever finished first, so it is
 * the same error a single thread would have met.
 */
export class OrderedTasks {
  private readonly all: Array<Promise<void>> = []
  private readonly errors: Array<{index: number; error: unknown}> = []
  /** Some task failed: start no more. */
  failed = false

  /** Track the next task (in row order). */
  add(task: Promise<void>): void {
    const index = this.all.length
    this.all.push(
      task.catch((error: unknown) => {
        this.failed = true
        this.errors.push({index, error})
      }),
    )
  }

  /** Every task has finished (none still reads or writes anything). */
  async settled(): Promise<void> {
    await Promise.all(this.all)
  }

  /**
   * Wait for every task, then report the first failure in row order.
   * @throws the error of the first failing task
   */
  async done(): Promise<void> {
    await this.settled()
    if (this.errors.length > 0) throw this.errors.reduce((a, b) => (b.index < a.index ? b : a)).error
  }
}
