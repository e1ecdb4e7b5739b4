/**
 * `npm run bench:compress`: `lora compress` against a NumPy/LAPACK
 * implementation of the same computation (bench/compress.py), side by side
 * in one run, and the savings/error table at K = 8, 16, 32.
 *
 * Synthesizes N adapters (default 256, rank 16, hidden 2048, 4 layers,
 * q/k/v/o, F16, `--shared-subspace 0.5`: B drawn half from a basis shared per
 * module), packs them, then times
 *   - lora: `compressFile` at --k (default 16) in this process: read the pack,
 *     basis, A′, measured errors, write the lora-pack-shared-b file;
 *   - numpy: bench/compress.py doing the same (batched QR, Gram, eigh, A′,
 *     errors, write), timed inside Python;
 * alternating which goes first over --repeats runs (medians reported), and
 * prints the ratio lora / numpy (target ≤ 1.5). Then, untimed, the errors at
 * every K of --ks from both, compared per adapter against NumPy's float64
 * optimum (target: within 1e-4), and the table.
 *
 * Flags: --count --rank --hidden --layers --targets q,k,v,o --shared-subspace F
 * --k 16 --ks 8,16,32 --repeats 1 --threads (ORT, default all cores)
 * --work DIR (default .bench-work/compress; inputs are reused when their
 * parameters match) --no-numpy --json (one JSON object on stdout).
 */
import {spawnSync} from 'node:child_process'
import {existsSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {mkdir} from 'node:fs/promises'
import {availableParallelism} from 'node:os'
import {join, resolve} from 'node:path'
import {performance} from 'node:perf_hooks'
import {compressFile} from '../src/core/compress/compress-file.js'
import {maxOf, meanOf, sweepModule} from '../src/core/compress/compress-module.js'
import {packModuleSource} from '../src/core/compress/pack-module-source.js'
import {bytesAfter, bytesBefore, savingsPercent} from '../src/core/compress/rank-selection.js'
import {SharedBFile} from '../src/core/formats/shared-b-file.js'
import {DTYPES} from '../src/core/dtype.js'
import {MatMulEngine} from '../src/core/linalg/matmul-engine.js'
import {parseTargets} from '../src/cli/llama-flags.js'
import {packAdapters} from '../src/core/pack/pack-adapters.js'
import {PackFile} from '../src/core/formats/pack-file.js'
import {synthesizeAdapters} from '../src/core/synth/adapters.js'
import {formatBytes} from '../src/core/units.js'
import {ROOT, flag} from './script.js'

const RATIO_TARGET = 1.5
const ERROR_TARGET = 1e-4

function arg(name: string): string | undefined {
  return flag(`--${name}`)
}
function intArg(name: string, fallback: number): number {
  const text = arg(name)
  if (text === undefined) return fallback
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer (got ${text})`)
  return n
}

const params = {
  count: intArg('count', 256),
  rank: intArg('rank', 16),
  hidden: intArg('hidden', 2048),
  layers: intArg('layers', 4),
  targets: parseTargets(arg('targets') ?? 'q,k,v,o'),
  sharedSubspace: Number(arg('shared-subspace') ?? 0.5),
  seed: 7,
}
const k = intArg('k', 16)
const ks = (arg('ks') ?? '8,16,32').split(',').map(Number)
const repeats = intArg('repeats', 1)
const threads = intArg('threads', availableParallelism())
const work = resolve(arg('work') ?? join(ROOT, '.bench-work/compress'))
const numpy = !process.argv.includes('--no-numpy')
const json = process.argv.includes('--json')
const say = (line = '') => (json ? process.stderr : process.stdout).write(`${line}\n`)

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!

async function inputs(): Promise<string> {
  const stamp = join(work, 'params.json')
  const pack = join(work, 'pack.safetensors')
  const wanted = JSON.stringify(params)
  if (existsSync(pack) && existsSync(stamp) && readFileSync(stamp, 'utf8') === wanted) return pack
  rmSync(work, {recursive: true, force: true})
  await mkdir(work, {recursive: true})
  const t0 = performance.now()
  await synthesizeAdapters({
    out: join(work, 'adapters'),
    count: params.count,
    ranks: [params.rank],
    hidden: params.hidden,
    intermediate: Math.round((params.hidden * 11) / 4),
    layers: params.layers,
    targets: params.targets,
    dtype: 'F16',
    seed: params.seed,
    sharedSubspace: params.sharedSubspace,
  })
  await packAdapters({inputs: [join(work, 'adapters')], out: pack})
  rmSync(join(work, 'adapters'), {recursive: true, force: true})
  writeFileSync(stamp, wanted)
  say(`synthesized and packed ${params.count} adapters in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  return pack
}

function runNumpy(pack: string, errorsPath: string): number {
  const r = spawnSync('python3', [join(ROOT, 'bench/compress.py'), '--pack', pack, '--rank', String(k), '--ks', ks.join(','), '--out', join(work, 'numpy.safetensors'), '--errors', errorsPath], {encoding: 'utf8', maxBuffer: 1 << 26})
  if (r.status !== 0) throw new Error(`bench/compress.py failed: ${r.stderr}`)
  return (JSON.parse(r.stdout.trim().split('\n').pop()!) as {seconds: number}).seconds
}

async function main(): Promise<void> {
  const pack = await inputs()
  const engine = new MatMulEngine(threads)
  const tsOut = join(work, 'lora.safetensors')
  const errorsPath = join(work, 'numpy-errors.json')
  const tsSeconds: number[] = []
  const npSeconds: number[] = []
  const runTs = async () => {
    const t0 = performance.now()
    await compressFile({inputs: [pack], out: tsOut, selection: {rank: k}, engine, force: true})
    return (performance.now() - t0) / 1000
  }
  for (let i = 0; i < repeats; i++) {
    if (i % 2 === 0 || !numpy) {
      tsSeconds.push(await runTs())
      if (numpy) npSeconds.push(runNumpy(pack, errorsPath))
    } else {
      npSeconds.push(runNumpy(pack, errorsPath))
      tsSeconds.push(await runTs())
    }
    say(`run ${i + 1}: lora ${tsSeconds.at(-1)!.toFixed(2)} s${numpy ? `, numpy ${npSeconds.at(-1)!.toFixed(2)} s` : ''}`)
  }

  // Errors at every K: lora's dry runs (what --rank K measures) against NumPy's.
  const file = await PackFile.open(pack)
  const np = numpy ? (JSON.parse(readFileSync(errorsPath, 'utf8')) as Record<string, Record<string, {K: number; slots: number[]; stored: number[]; optimum: number[]}>>) : undefined
  const rows = ks.map((K) => ({K, before: 0, after: 0, errors: [] as number[], npStored: [] as number[], vsOptimum: 0, vsStored: 0}))
  const sweepStart = performance.now()
  for (const entry of file.manifest.modules) {
    const source = packModuleSource(file, entry)
    const options = {engine, dtype: file.manifest.dtype as 'F16', inputBytesPerElement: DTYPES[file.manifest.dtype].bytes, slots: file.slots}
    const sweep = await sweepModule(source, ks, options)
    const shape = {name: entry.name, in: entry.in, out: entry.out, R: entry.R, rankSum: source.adapters.reduce((s, a) => s + a.r, 0), slots: file.slots}
    sweep.points.forEach((p, j) => {
      const row = rows[j]!
      row.before += bytesBefore(shape, options.inputBytesPerElement)
      row.after += bytesAfter(shape, p.K, DTYPES[options.dtype].bytes)
      row.errors.push(...p.errors)
      const ref = np?.[entry.name]?.[String(ks[j])]
      if (ref) {
        p.errors.forEach((e, i) => {
          row.vsOptimum = Math.max(row.vsOptimum, Math.abs(e - ref.optimum[i]!))
          row.vsStored = Math.max(row.vsStored, Math.abs(e - ref.stored[i]!))
        })
        row.npStored.push(...ref.stored)
      }
    })
  }
  const sweepSeconds = (performance.now() - sweepStart) / 1000
  await file.close()
  const written = await SharedBFile.open(tsOut)
  let fileVsNumpy = 0
  if (np) {
    for (const [name, e] of Object.entries(written.errors)) {
      const ref = np[name]![String(k)]
      if (ref) ref.slots.forEach((slot, i) => (fileVsNumpy = Math.max(fileVsNumpy, Math.abs(e.errors[slot]! - ref.optimum[i]!))))
    }
  }
  await written.close()
  await engine.release()

  const ts = median(tsSeconds)
  const npMedian = numpy ? median(npSeconds) : undefined
  const ratio = npMedian ? ts / npMedian : undefined
  say('')
  say(`${params.count} adapters × ${params.layers * params.targets.length} modules (hidden ${params.hidden}, rank ${params.rank}, shared subspace ${params.sharedSubspace}), F16, ORT threads ${threads}`)
  say(`compress --rank ${k}: lora ${ts.toFixed(2)} s${npMedian ? `, numpy ${npMedian.toFixed(2)} s, ratio ${ratio!.toFixed(2)} (target ≤ ${RATIO_TARGET}: ${ratio! <= RATIO_TARGET ? 'met' : 'NOT met'})` : ''} (${repeats > 1 ? `lower median of ${repeats}` : '1 run'})`)
  if (np) say(`errors of the written file vs the NumPy float64 optimum at K = ${k}: max |Δ| = ${fileVsNumpy.toExponential(2)} (target ≤ ${ERROR_TARGET}: ${fileVsNumpy <= ERROR_TARGET ? 'met' : 'NOT met'})`)
  say('')
  say(['K', 'before', 'after', 'saved', 'error mean', 'error max', ...(np ? ['numpy mean', 'numpy max', 'max |Δ| vs optimum'] : [])].join('\t'))
  for (const row of rows) {
    say(
      [
        row.K,
        formatBytes(row.before),
        formatBytes(row.after),
        `${savingsPercent(row.before, row.after).toFixed(1)}%`,
        meanOf(row.errors).toFixed(4),
        maxOf(row.errors).toFixed(4),
        ...(np ? [meanOf(row.npStored).toFixed(4), maxOf(row.npStored).toFixed(4), row.vsOptimum.toExponential(2)] : []),
      ].join('\t'),
    )
  }
  say(`(table: lora dry runs at each K in ${sweepSeconds.toFixed(1)} s; errors measured on F16-stored values)`)
  if (json) {
    process.stdout.write(
      `${JSON.stringify({
        params,
        k,
        threads,
        lora_seconds: tsSeconds,
        numpy_seconds: npSeconds,
        ratio,
        written_vs_numpy_optimum: np ? fileVsNumpy : null,
        table: rows.map((r) => ({K: r.K, bytes_before: r.before, bytes_after: r.after, savings_pct: savingsPercent(r.before, r.after), error_mean: meanOf(r.errors), error_max: maxOf(r.errors), numpy_error_mean: np ? meanOf(r.npStored) : null, numpy_error_max: np ? maxOf(r.npStored) : null, max_abs_diff_vs_numpy_optimum: np ? r.vsOptimum : null, max_abs_diff_vs_numpy_stored: np ? r.vsStored : null})),
      })}\n`,
    )
  }
}

await main()
