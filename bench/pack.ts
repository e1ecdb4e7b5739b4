/**
 * `npm run bench:pack`: `lora pack` against `cp -r` of the same input folder,
 * side by side in one run, and pack's peak memory against its 300 MB budget.
 *
 * Synthesizes N adapters (default 1,000; rank 16, hidden 2048, 8 layers,
 * q/k/v/o, F16: 4 MiB each, 4 GiB in all) with seeded random F16 values (a
 * byte copy does not care what the values are, and drawing Gaussians for
 * 4 GiB would take minutes), then runs, interleaved and alternating which
 * goes first, `cp -r`, `cp -r` followed by fsync of every copied file (pack
 * fsyncs its output before renaming it into place, so this is the same
 * durability), and `lora pack` as a child process. Peak RSS of each child
 * comes from `/usr/bin/time -f %M` when present, else from polling
 * /proc/<pid>/status (VmHWM). The input stays in the page cache for every
 * run (it was just written), so all three read from memory alike.
 *
 * Flags (or env): --count N (LORA_BENCH_PACK_COUNT), --hidden, --rank,
 * --layers, --repeats (default 2), --work DIR (default .bench-work/pack),
 * --keep (leave the input folder), --json (one JSON object on stdout).
 */
import {spawn} from 'node:child_process'
import {existsSync, readFileSync, readdirSync, rmSync, statSync} from 'node:fs'
import {mkdir} from 'node:fs/promises'
import {join, resolve} from 'node:path'
import {peftLoraConfig, writeAdapter} from '../src/core/formats/peft-adapter-writer.js'
import {ATTENTION_PROJECTIONS, projectionPath} from '../src/core/models/llama.js'
import {PackFile} from '../src/core/formats/pack-file.js'
import {Rng} from '../src/core/random.js'
import {adapterFolderName} from '../src/core/synth/adapters.js'
import {formatBytes} from '../src/core/units.js'
import {ROOT, flag} from './script.js'

const RSS_BUDGET_BYTES = 300 * 1000 * 1000
const CP_RATIO_TARGET = 1.5

function option(name: string, env: string | undefined, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`)
  const text = i >= 0 ? process.argv[i + 1] : env !== undefined ? process.env[env] : undefined
  if (text === undefined) return fallback
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer (got ${text})`)
  return n
}

const count = option('count', 'LORA_BENCH_PACK_COUNT', 1000)
const hidden = option('hidden', 'LORA_BENCH_PACK_HIDDEN', 2048)
const rank = option('rank', 'LORA_BENCH_PACK_RANK', 16)
const layers = option('layers', 'LORA_BENCH_PACK_LAYERS', 8)
const repeats = option('repeats', 'LORA_BENCH_PACK_REPEATS', 2)
const work = resolve(flag('--work', join(ROOT, '.bench-work/pack')))
const keep = process.argv.includes('--keep')
const json = process.argv.includes('--json')
const say = (line: string) => (json ? process.stderr : process.stdout).write(`${line}\n`)

/** Random F16 bits with |x| < 2 (the exponent's top bit cleared: never Inf or NaN). */
function randomF16(rng: Rng, n: number): Uint16Array {
  const out = new Uint16Array(n)
  const words = new Uint32Array(out.buffer)
  for (let i = 0; i < words.length; i++) words[i] = (rng.nextUint32() & 0xbfffbfff) >>> 0
  return out
}

async function synthesize(dir: string): Promise<number> {
  await mkdir(dir, {recursive: true})
  let bytes = 0
  for (let i = 0; i < count; i++) {
    const rng = new Rng(1234, 'bench-pack', i)
    const tensors = []
    for (let layer = 0; layer < layers; layer++) {
      for (const p of ATTENTION_PROJECTIONS) {
        const module = `base_model.model.${projectionPath(layer, p)}`
        tensors.push({name: `${module}.lora_A.weight`, dtype: 'F16' as const, shape: [rank, hidden], data: randomF16(rng, rank * hidden)})
        tensors.push({name: `${module}.lora_B.weight`, dtype: 'F16' as const, shape: [hidden, rank], data: randomF16(rng, hidden * rank)})
      }
    }
    const config = peftLoraConfig({base_model_name_or_path: `synthetic/bench-h${hidden}-l${layers}`, r: rank, lora_alpha: 2 * rank, target_modules: [...ATTENTION_PROJECTIONS]})
    const folder = join(dir, adapterFolderName(i, count))
    await writeAdapter(folder, config, tensors)
    bytes += statSync(join(folder, 'adapter_model.safetensors')).size
    if ((i + 1) % 100 === 0 || i + 1 === count) process.stderr.write(`\rsynthesized ${i + 1}/${count} adapters`)
  }
  process.stderr.write('\n')
  return bytes
}

const timeBin = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined

interface Run {
  seconds: number
  /** Peak RSS in bytes, when measurable. */
  rss?: number
  stdout: string
}

/** Run a command; wall time around the child, and its peak RSS. */
function measure(command: string, args: readonly string[]): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    const argv = timeBin ? [timeBin, '-f', '@@maxrss_kb=%M', command, ...args] : [command, ...args]
    const started = process.hrtime.bigint()
    const child = spawn(argv[0]!, argv.slice(1), {stdio: ['ignore', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    let polled = 0
    const poll = timeBin
      ? undefined
      : setInterval(() => {
          try {
            const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))
            if (m) polled = Math.max(polled, Number(m[1]) * 1024)
          } catch {
            // the child has exited
          }
        }, 20)
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9
      if (poll) clearInterval(poll)
      if (code !== 0) return reject(new Error(`${command} ${args.join(' ')} exited with ${code}: ${stderr.trim().slice(-500)}`))
      const m = /@@maxrss_kb=(\d+)/.exec(stderr)
      resolvePromise({seconds, rss: m ? Number(m[1]) * 1024 : polled || undefined, stdout})
    })
  })
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, {recursive: true, withFileTypes: true})
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath ?? (e as unknown as {path: string}).path, e.name))
}

async function main(): Promise<void> {
  const input = join(work, 'input')
  const cpOut = join(work, 'cp-out')
  const packOut = join(work, 'pack.safetensors')
  rmSync(work, {recursive: true, force: true})
  say(`bench:pack: ${count} adapters, rank ${rank}, hidden ${hidden}, ${layers} layers, q/k/v/o, F16, in ${work}`)
  const bytesIn = await synthesize(input)
  say(`input: ${formatBytes(bytesIn)} of adapter weights (${formatBytes(bytesIn / count)} each)`)
  // write the input to disk now, so its writeback does not land inside a timed run
  await measure('sync', filesUnder(input))
  const runs: Array<{cp: number; cpSync: number; pack: number; packRss?: number; packInternal: number}> = []
  let verified = false
  for (let rep = 0; rep < repeats; rep++) {
    const doCp = async () => {
      const cp = await measure('cp', ['-r', input, cpOut])
      const sync = await measure('sync', filesUnder(cpOut))
      rmSync(cpOut, {recursive: true, force: true})
      return {cp: cp.seconds, cpSync: cp.seconds + sync.seconds}
    }
    const doPack = async () => {
      const run = await measure(process.execPath, [join(ROOT, 'bin/run.js'), 'pack', input, '--out', packOut, '--json'])
      const result = JSON.parse(run.stdout) as {seconds: number; slots: number}
      if (!verified) {
        const pack = await PackFile.open(packOut)
        if (pack.slots !== count + 1) throw new Error(`the pack has ${pack.slots} slots, expected ${count + 1}`)
        await pack.close()
        verified = true
      }
      rmSync(packOut, {force: true})
      return {pack: run.seconds, packRss: run.rss, packInternal: result.seconds}
    }
    // alternate which goes first, so neither always meets a cache or writeback state the other left
    const first = rep % 2 === 0 ? await doCp() : await doPack()
    const second = rep % 2 === 0 ? await doPack() : await doCp()
    const row = {...first, ...second} as (typeof runs)[number]
    runs.push(row)
    say(
      `run ${rep + 1} (${rep % 2 === 0 ? 'cp first' : 'pack first'}): cp -r ${row.cp.toFixed(2)} s, cp -r + fsync ${row.cpSync.toFixed(2)} s, lora pack ${row.pack.toFixed(2)} s (${row.packInternal.toFixed(2)} s inside), peak RSS ${row.packRss === undefined ? 'n/a' : formatBytes(row.packRss)}`,
    )
  }
  const cp = median(runs.map((r) => r.cp))
  const cpSync = median(runs.map((r) => r.cpSync))
  const pack = median(runs.map((r) => r.pack))
  const rssValues = runs.map((r) => r.packRss).filter((x): x is number => x !== undefined)
  const rss = rssValues.length ? Math.max(...rssValues) : undefined
  const summary = {
    adapters: count,
    bytes_in: bytesIn,
    repeats,
    cp_seconds: cp,
    cp_fsync_seconds: cpSync,
    pack_seconds: pack,
    ratio_pack_to_cp: pack / cp,
    ratio_pack_to_cp_fsync: pack / cpSync,
    pack_peak_rss_bytes: rss ?? null,
    rss_source: timeBin ? '/usr/bin/time %M' : '/proc VmHWM polling',
    runs,
  }
  say('')
  say(`median of ${repeats}: cp -r ${cp.toFixed(2)} s, cp -r + fsync ${cpSync.toFixed(2)} s, lora pack ${pack.toFixed(2)} s`)
  say(`ratio pack / cp -r = ${(pack / cp).toFixed(2)} (target ≤ ${CP_RATIO_TARGET}: ${pack / cp <= CP_RATIO_TARGET ? 'met' : 'NOT met'}); pack / (cp -r + fsync) = ${(pack / cpSync).toFixed(2)}`)
  say(
    rss === undefined
      ? 'peak RSS: not measurable here'
      : `peak RSS of lora pack: ${(rss / 1e6).toFixed(1)} MB (budget ${RSS_BUDGET_BYTES / 1e6} MB: ${rss <= RSS_BUDGET_BYTES ? 'within' : 'OVER'})`,
  )
  if (json) process.stdout.write(`${JSON.stringify(summary)}\n`)
  if (!keep) rmSync(work, {recursive: true, force: true})
}

main().catch((error: Error) => {
  process.stderr.write(`bench:pack failed: ${error.message}\n`)
  if (!keep) rmSync(work, {recursive: true, force: true})
  process.exitCode = 1
})
