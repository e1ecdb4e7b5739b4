/**
 * The reference's adapters: every row of a batch carries its own adapter's
 * factors, fed as graph inputs per call (no stacks, no routing, no strategy
 * of the table), and each adapted projection adds `(x·Aᵣᵀ)·(s·Bᵣ)ᵀ` for
 * its row r: plain LoRA, written from the formula, per request.
 *
 * Inputs per adapted module: `row_a.<module>` `[B, R, in]` and `row_b.<module>`
 * `[B, out, R]` (scaling folded into B, ranks below R zero-padded; a row
 * without adapter is all zeros).
 */
import type {OrtTensor} from '../onnx/session.js'
import {loadOrt} from '../onnx/session.js'
import type {AdapterFactors} from '../runtime/adapter-factors.js'
import type {GraphBuilder} from '../onnx/graph-builder.js'
import type {DeltaContext, ProjectionDeltas, ProjectionSite, RoutingBatch} from '../runtime/projection-delta.js'
import type {AdaptedModule} from './adapter-set.js'

/** A delta provider fed each row's adapter factors (see the module comment). */
export class RowFactorDeltas implements ProjectionDeltas {
  readonly description = "each row's own adapter factors, fed per call"
  private readonly byName: ReadonlyMap<string, AdaptedModule>
  private feedsOfRows: Record<string, OrtTensor> = {}
  private rows = 0

  /** @param rank R: the largest rank any row's factors have */
  constructor(
    readonly modules: readonly AdaptedModule[],
    readonly rank: number,
  ) {
    this.byName = new Map(modules.map((m) => [m.name, m]))
  }

  declareInputs(g: GraphBuilder): void {
    for (const m of this.modules) {
      g.input(`row_a.${m.name}`, 'float32', ['batch', this.rank, m.in])
      g.input(`row_b.${m.name}`, 'float32', ['batch', m.out, this.rank])
    }
  }

  async delta({g}: DeltaContext, site: ProjectionSite): Promise<string | undefined> {
    const m = this.byName.get(site.module)
    if (!m) return undefined
    const a = `row_a.${m.name}`
    const b = `row_b.${m.name}`
    const batch = g.op('Shape', [a], {start: 0, end: 1})
    const x3 = g.op('Reshape', [site.input, g.op('Concat', [batch, g.ints(g.fresh('c'), [-1, m.in])], {axis: 0})])
    const h = g.op('MatMul', [x3, g.op('Transpose', [a], {perm: [0, 2, 1]})])
    const d = g.op('MatMul', [h, g.op('Transpose', [b], {perm: [0, 2, 1]})])
    return g.op('Reshape', [d, g.ints(g.fresh('shape'), [-1, m.out])])
  }

  /**
   * The rows of the next calls: each row's factors (null: no adapter).
   * @throws RangeError when a row's module is not one of `modules`, its dims differ, or its rank exceeds R
   */
  async setRows(rows: readonly (AdapterFactors | null)[]): Promise<void> {
    const ort = await loadOrt()
    const R = this.rank
    const B = rows.length
    const feeds: Record<string, OrtTensor> = {}
    for (const m of this.modules) {
      const a = new Float32Array(B * R * m.in)
      const b = new Float32Array(B * m.out * R)
      rows.forEach((row, i) => {
        const f = row?.modules.get(m.name)
        if (!f) return
        if (f.in !== m.in || f.out !== m.out || f.r > R) throw new RangeError(`reference: ${row!.name} ${m.name} is [${f.out}, ${f.in}] rank ${f.r} (expected [${m.out}, ${m.in}], rank ≤ ${R})`)
        a.set(f.a.subarray(0, f.r * m.in), i * R * m.in)
        for (let o = 0; o < m.out; o++) for (let k = 0; k < f.r; k++) b[(i * m.out + o) * R + k] = f.scaling * f.b[o * f.r + k]!
      })
      feeds[`row_a.${m.name}`] = new ort.Tensor('float32', a, [B, R, m.in])
      feeds[`row_b.${m.name}`] = new ort.Tensor('float32', b, [B, m.out, R])
    }
    for (const [name, m] of [...rows.entries()].flatMap(([, row]) => (row ? [...row.modules.entries()] : []))) {
      if (!this.byName.has(name)) throw new RangeError(`reference: module ${name} of adapter is not adapted by this set (${m.in}→${m.out})`)
    }
    this.feedsOfRows = feeds
    this.rows = B
  }

  async feeds(batch: RoutingBatch): Promise<Record<string, OrtTensor>> {
    if (batch.rows !== this.rows) throw new RangeError(`reference: a call of ${batch.rows} rows, but factors were set for ${this.rows}`)
    return this.feedsOfRows
  }
}
