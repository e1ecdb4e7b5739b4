/** Shape arithmetic shared by every format. */

/**
 * Number of elements of a tensor of this shape (1 for a scalar `[]`).
 * @throws RangeError when the product is not a safe integer
 */
export function shapeSize(shape: readonly number[]): number {
  let n = 1
  for (const d of shape) {
    n *= d
    if (!Number.isSafeInteger(n)) throw new RangeError(`shape [${shape.join(', ')}] has more elements than 2^53`)
  }
  return n
}

/** `[2, 3]` → `"[2, 3]"`. */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`
}
