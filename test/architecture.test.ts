/**
 * The import graph of src/, checked as a specification of the layers in
 * docs/architecture.md: no file takes part in an import circle, commands sit
 * above the CLI helpers and the CLI helpers above the core library, and inside
 * the core every import points down the table of layers below (or stays inside
 * its own area). Adding a folder to src/core means giving it a row here.
 */
import {readdirSync, readFileSync} from 'node:fs'
import {dirname, join, relative, resolve} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {REPO_ROOT} from './helpers/index.js'

/**
 * The core's layers, lowest first. An area is a folder of src/core (its
 * sub-folders included) or a file at its top. A module may import its own
 * area and the areas of lower layers; areas on the same layer do not import
 * each other.
 */
const CORE_LAYERS: ReadonlyArray<readonly string[]> = [
  ['errors.ts', 'version.ts', 'random.ts', 'progress.ts', 'shape.ts', 'dtype.ts'],
  ['units.ts', 'tensor.ts'],
  ['io'],
  ['formats', 'models', 'onnx'],
  ['quant', 'linalg', 'gguf'],
  ['model-io', 'pack', 'synth', 'plan'],
  ['compress', 'merge'],
  ['serve'],
  ['runtime', 'bench'],
  ['inspect.ts', 'unpack.ts', 'eval', 'engines', 'export'],
  ['demo', 'e2e'],
]

const SRC = join(REPO_ROOT, 'src')

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, {withFileTypes: true}).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  )
}

/** Relative imports of a file (static, re-exports, dynamic), as paths of .ts files under src/. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  const specs = [...text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)'(\.{1,2}\/[^']+)'/g)].map((m) => m[1]!)
  return specs.map((s) => resolve(dirname(file), s).replace(/\.js$/, '.ts'))
}

const files = sourceFiles(SRC)
const graph = new Map(files.map((f) => [f, importsOf(f)]))
const rel = (f: string) => relative(SRC, f)

/** The core area of a file under src/core, or undefined outside the core. */
function coreArea(file: string): string | undefined {
  const r = relative(join(SRC, 'core'), file)
  if (r.startsWith('..')) return undefined
  return r.split('/')[0]!
}

function layerOf(area: string): number {
  const i = CORE_LAYERS.findIndex((row) => row.includes(area))
  return i
}

const test = suite('architecture')

test('every import names a file that exists', () => {
  const missing = [...graph].flatMap(([f, deps]) => deps.filter((d) => !graph.has(d)).map((d) => `${rel(f)} → ${relative(SRC, d)}`))
  assert.equal(missing, [])
})

/** Strongly connected components with more than one member (Tarjan): the import circles of a graph. */
function circlesOf(g: ReadonlyMap<string, readonly string[]>): string[][] {
  let index = 0
  const stack: string[] = []
  const on = new Set<string>()
  const idx = new Map<string, number>()
  const low = new Map<string, number>()
  const circles: string[][] = []
  const visit = (v: string): void => {
    idx.set(v, index)
    low.set(v, index++)
    stack.push(v)
    on.add(v)
    for (const w of g.get(v) ?? []) {
      if (!g.has(w)) continue
      if (!idx.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v)!, low.get(w)!))
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!))
    }
    if (low.get(v) === idx.get(v)) {
      const component: string[] = []
      let w: string
      do {
        w = stack.pop()!
        on.delete(w)
        component.push(w)
      } while (w !== v)
      if (component.length > 1) circles.push(component.sort())
    }
  }
  for (const v of g.keys()) if (!idx.has(v)) visit(v)
  return circles
}

test('no file takes part in an import circle', () => {
  assert.equal(circlesOf(graph).map((c) => c.map(rel)), [])
})

test('commands → cli → core: the core imports no CLI code, the CLI helpers no command', () => {
  const bad: string[] = []
  for (const [f, deps] of graph) {
    const from = rel(f)
    for (const d of deps) {
      const to = rel(d)
      if (from.startsWith('core/') && !to.startsWith('core/')) bad.push(`${from} → ${to}`)
      if (from.startsWith('cli/') && to.startsWith('commands/')) bad.push(`${from} → ${to}`)
    }
  }
  assert.equal(bad, [])
})

test('every core area has a layer', () => {
  const areas = new Set(files.map(coreArea).filter((a): a is string => a !== undefined))
  assert.equal([...areas].filter((a) => layerOf(a) < 0).sort(), [])
})

test('inside the core, imports point down the layers (no upward or sideways arrow)', () => {
  const bad: string[] = []
  for (const [f, deps] of graph) {
    const from = coreArea(f)
    if (!from) continue
    for (const d of deps) {
      const to = coreArea(d)
      if (!to || to === from) continue
      if (layerOf(to) >= layerOf(from)) bad.push(`${rel(f)} (${from}, layer ${layerOf(from)}) → ${rel(d)} (${to}, layer ${layerOf(to)})`)
    }
  }
  assert.equal(bad, [])
})

test('the checker finds a circle when there is one, and reads imports of every form', () => {
  const g = new Map([
    ['a', ['b']],
    ['b', ['c']],
    ['c', ['a']],
    ['d', ['a']],
  ])
  assert.equal(circlesOf(g), [['a', 'b', 'c']])
  assert.ok(layerOf('demo') > layerOf('formats'))
  assert.ok(importsOf(join(SRC, 'core/tensor.ts')).some((p) => p.endsWith('/core/dtype.ts')))
})

test.run()
