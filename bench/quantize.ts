/**
 * `npm run bench:quantize`: `lora quantize --scheme q4_0` against llama.cpp's
 * own `llama-quantize --pure … q4_0` on the same weights (issue 12's speed
 * bullet). The model is a synthetic F16 Llama (`lora synth base --hidden 2048
 * --intermediate 5632 --layers 8 --vocab 32000`, 542 M parameters), made once
 * and cached; llama-quantize reads the F16 GGUF `lora` writes of it (llama.cpp
 * names, q/k rows in llama.cpp's order, F32 norms), `lora` reads the Hugging
 * Face folder.
 *
 *   npm run bench:quantize -- [--quick] [--repeats 3] [--threads N] [--llama-threads 2]
 *                             [--cache ~/.cache/lora-bench] [--llama-quantize PATH] [--json FILE]
 *
 * Three commands run in turn, `--repeats` rounds (median reported), each in
 * its own process with its wall time, user + system CPU and peak RSS
 * (`/usr/bin/time`, or the child's VmHWM from /proc where that is missing):
 * - `lora quantize --scheme q4_0` (the default rule: linear weights inside the blocks);
 * - `lora quantize --scheme q4_0 --include '*'` (every 2-D weight, as `--pure` does);
 * - `llama-quantize --pure in.gguf out.gguf q4_0 <llama-threads>`.
 * The ratio is lora ÷ llama.cpp (target ≤ 1.2). Outputs are compared tensor by
 * tensor: every tensor both files hold as Q4_0 must be byte-identical. The
 * load average is printed before and after: on a shared machine the figures
 * are noisy.
 *
 * llama-quantize is built once from the llama.cpp source node-llama-cpp ships
 * (test/engines/node_modules/node-llama-cpp/llama/gitRelease.bundle; run
 * `npm run install:engines` first) into `<cache>/llama.cpp` with cmake
 * (`-DGGML_NATIVE=ON -DLLAMA_CURL=OFF`, `--target llama-quantize -j2`).
 */
import {spawn, spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {open} from 'node:fs/promises'
import {availableParallelism, cpus, homedir, loadavg} from 'node:os'
import {join, resolve} from 'node:path'
import {renderTable} from '../src/cli/table.js'
import {GgufFile} from '../src/core/formats/gguf-reader.js'
import {removeOnExit} from '../src/core/io/exit-cleanup.js'
import {ModelReader} from '../src/core/model-io/model-reader.js'
import {writeModelOutput} from '../src/core/model-io/write-output.js'
import {llamaTensorShapes} from '../src/core/models/llama.js'
import {shapeSize} from '../src/core/shape.js'
import {synthesizeBase} from '../src/core/synth/base.js'
import {ROOT, flag} from './script.js'

const LORA = join(ROOT, 'bin/run.js')
const BUNDLE = join(ROOT, 'test/engines/node_modules/node-llama-cpp/llama/gitRelease.bundle')

const arg = (name: string) => flag(`--${name}`)
function intArg(name: string, fallback: number): number {
  const v = arg(name)
  const n = v === undefined ? fallback : Number(v)
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer (got ${v})`)
  return n
}

/** The issue's model, and a small one for smoke runs. */
const FULL = {hidden: 2048, intermediate: 5632, layers: 8, vocab: 32000}
const QUICK = {hidden: 512, intermediate: 1408, layers: 2, vocab: 1024}

interface Measured {
  seconds: number
  cpu_seconds: number
  max_rss_bytes: number
}

/** Run a command to completion, timed from here, with its CPU time and peak RSS. */
async function measure(command: string, args: string[]): Promise<Measured> {
  const timeBinary = '/usr/bin/time'
  if (existsSync(timeBinary)) {
    const t0 = performance.now()
    const r = spawnSync(timeBinary, ['-f', 'LORA_BENCH %U %S %M', command, ...args], {encoding: 'utf8', maxBuffer: 1 << 26})
    const seconds = (performance.now() - t0) / 1000
    const line = /LORA_BENCH ([\d.]+) ([\d.]+) (\d+)/.exec(r.stderr ?? '')
    if (r.status !== 0 || !line) throw new Error(`${command} ${args.join(' ')} failed (status ${r.status}):\n${r.stdout}\n${r.stderr}`)
    return {seconds, cpu_seconds: Number(line[1]) + Number(line[2]), max_rss_bytes: Number(line[3]) * 1024}
  }
  // no /usr/bin/time: the child's VmHWM and CPU ticks from /proc, polled until it exits
  const t0 = performance.now()
  const child = spawn(command, args, {stdio: ['ignore', 'ignore', 'pipe']})
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  let hwm = 0
  let ticks = 0
  const poll = setInterval(() => {
    try {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8')
      hwm = Math.max(hwm, Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024)
      const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
      ticks = Number(stat[11]) + Number(stat[12])
    } catch {
      // exited between polls
    }
  }, 10)
  const code = await new Promise<number | null>((done) => child.on('exit', done))
  clearInterval(poll)
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} failed (status ${code}):\n${stderr}`)
  return {seconds: (performance.now() - t0) / 1000, cpu_seconds: ticks / 100, max_rss_bytes: hwm}
}

/** llama.cpp's llama-quantize: the given one, the cached build, or a build made now from node-llama-cpp's bundled source. */
function llamaQuantize(cache: string): string {
  const given = arg('llama-quantize')
  if (given) return given
  const src = join(cache, 'llama.cpp')
  const binary = join(src, 'build', 'bin', 'llama-quantize')
  if (existsSync(binary)) return binary
  if (!existsSync(BUNDLE)) throw new Error(`llama-quantize is not built and llama.cpp's source is missing (${BUNDLE}): run \`npm run install:engines\` first, or pass --llama-quantize PATH`)
  console.log(`llama-quantize is missing: building it once from node-llama-cpp's llama.cpp source into ${src} (cmake, 2 jobs: several minutes)`)
  const step = (command: string, args: string[], cwd?: string) => {
    const r = spawnSync(command, args, {cwd, stdio: 'inherit'})
    if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (status ${r.status})`)
  }
  if (!existsSync(join(src, 'CMakeLists.txt'))) {
    rmSync(src, {recursive: true, force: true})
    step('git', ['clone', '--quiet', BUNDLE, src])
  }
  step('cmake', ['-B', 'build', '-DGGML_NATIVE=ON', '-DLLAMA_CURL=OFF', '-DCMAKE_BUILD_TYPE=Release'], src)
  step('cmake', ['--build', 'build', '--target', 'llama-quantize', '-j2'], src)
  return binary
}

/** Read a file once so both tools start from the page cache. */
async function warm(path: string): Promise<void> {
  const handle = await open(path, 'r')
  try {
    const buf = new Uint8Array(16 << 20)
    for (let at = 0; ; at += buf.length) if ((await handle.read(buf, 0, buf.length, at)).bytesRead === 0) break
  } finally {
    await handle.close()
  }
}

/** Tensors held as Q4_0 in both files, and how many of them have identical bytes (the rest listed). */
async function compareQ4_0(a: string, b: string): Promise<{q4_0_both: number; identical: number; different: string[]; only_in_one: string[]}> {
  const fa = await GgufFile.open(a)
  const fb = await GgufFile.open(b)
  try {
    const different: string[] = []
    const onlyInOne: string[] = []
    let both = 0
    let identical = 0
    for (const t of fa.tensors.values()) {
      const u = fb.tensors.get(t.name)
      if (!u) {
        onlyInOne.push(t.name)
        continue
      }
      if (t.type.name !== 'Q4_0' || u.type.name !== 'Q4_0') continue
      both++
      if (Buffer.from(await fa.readBytes(t.name)).equals(await fb.readBytes(t.name))) identical++
      else different.push(t.name)
    }
    return {q4_0_both: both, identical, different, only_in_one: onlyInOne}
  } finally {
    await fa.close()
    await fb.close()
  }
}

function median(values: number[]): number {
  const s = [...values].sort((x, y) => x - y)
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick')
  const dims = quick ? QUICK : FULL
  const repeats = intArg('repeats', quick ? 1 : 3)
  const llamaThreads = intArg('llama-threads', 2)
  const threads = arg('threads')
  const cache = resolve(arg('cache') ?? process.env.LORA_BENCH_CACHE ?? join(homedir(), '.cache', 'lora-bench'))
  const tag = `h${dims.hidden}-i${dims.intermediate}-l${dims.layers}-v${dims.vocab}-f16`
  const base = join(cache, `base-${tag}`)
  const f16Gguf = join(cache, `base-${tag}.gguf`)
  const work = join(cache, `work-${process.pid}`)
  mkdirSync(cache, {recursive: true})
  const parameters = llamaTensorShapes(dims).reduce((s, t) => s + shapeSize(t.shape), 0)
  console.log(`model: synthetic Llama, hidden ${dims.hidden}, intermediate ${dims.intermediate}, ${dims.layers} layers, vocab ${dims.vocab}: ${(parameters / 1e6).toFixed(1)} M parameters, F16${quick ? ' (--quick)' : ''}`)
  if (!existsSync(base)) {
    console.log(`synthesizing the base into ${base} (once)`)
    await synthesizeBase({out: base, ...dims, dtype: 'F16', seed: 0})
  }
  if (!existsSync(f16Gguf)) {
    console.log(`writing its F16 GGUF for llama-quantize with lora's GGUF writer: ${f16Gguf} (once)`)
    const source = await ModelReader.open(base)
    try {
      await writeModelOutput({source, out: f16Gguf, format: 'gguf', jobs: new Map()})
    } finally {
      await source.close()
    }
  }
  const llama = llamaQuantize(cache)
  await warm(join(base, 'model.safetensors'))
  await warm(f16Gguf)
  mkdirSync(work, {recursive: true})
  // outputs of 0.5 GiB each: removed on a signal too
  const release = removeOnExit(work)

  const threadArgs = threads ? ['--threads', threads] : []
  const loraDefault = join(work, 'lora-default.gguf')
  const loraAll = join(work, 'lora-all.gguf')
  const llamaOut = join(work, 'llama.gguf')
  const commands: Array<{name: string; out: string; command: string; args: string[]}> = [
    {name: 'lora quantize (default rule)', out: loraDefault, command: process.execPath, args: [LORA, 'quantize', base, '--out', loraDefault, '--scheme', 'q4_0', ...threadArgs]},
    {name: "lora quantize --include '*'", out: loraAll, command: process.execPath, args: [LORA, 'quantize', base, '--out', loraAll, '--scheme', 'q4_0', '--include', '*', ...threadArgs]},
    {name: `llama-quantize --pure (${llamaThreads} threads)`, out: llamaOut, command: llama, args: ['--pure', f16Gguf, llamaOut, 'q4_0', String(llamaThreads)]},
  ]
  const load = {before: loadavg().map((x) => Number(x.toFixed(2))), after: [] as number[]}
  console.log(`machine: ${cpus()[0]?.model ?? 'unknown CPU'}, ${availableParallelism()} cores; load average before: ${load.before.join(', ')}`)
  console.log(`lora threads: ${threads ?? `default (${availableParallelism()})`}; ${repeats} round${repeats === 1 ? '' : 's'}, the commands in turn`)
  const runs = new Map<string, Measured[]>(commands.map((c) => [c.name, []]))
  try {
    for (let round = 0; round < repeats; round++) {
      for (const c of commands) {
        // a fresh output each time: neither tool pays for removing the previous one
        rmSync(c.out, {force: true})
        const m = await measure(c.command, c.args)
        runs.get(c.name)!.push(m)
        console.log(`  round ${round + 1}: ${c.name}: ${m.seconds.toFixed(2)} s, CPU ${m.cpu_seconds.toFixed(2)} s, peak RSS ${(m.max_rss_bytes / 2 ** 20).toFixed(0)} MiB`)
      }
    }
    load.after = loadavg().map((x) => Number(x.toFixed(2)))
    const same = {default_rule: await compareQ4_0(loraDefault, llamaOut), all_weights: await compareQ4_0(loraAll, llamaOut)}
    const llamaSeconds = median(runs.get(commands[2]!.name)!.map((m) => m.seconds))
    const rows = commands.map((c) => {
      const ms = runs.get(c.name)!
      const seconds = median(ms.map((m) => m.seconds))
      return {
        command: c.name,
        seconds,
        min_seconds: Math.min(...ms.map((m) => m.seconds)),
        max_seconds: Math.max(...ms.map((m) => m.seconds)),
        cpu_seconds: median(ms.map((m) => m.cpu_seconds)),
        max_rss_bytes: Math.max(...ms.map((m) => m.max_rss_bytes)),
        ratio: seconds / llamaSeconds,
      }
    })
    console.log(`\nq4_0 of ${(parameters / 1e6).toFixed(1)} M parameters (median of ${repeats}; peak RSS the largest seen):`)
    console.log(
      renderTable(
        ['command', 'wall s', 'min–max s', 'CPU s', 'peak RSS MiB', '÷ llama.cpp'],
        rows.map((r) => [r.command, r.seconds.toFixed(2), `${r.min_seconds.toFixed(2)}–${r.max_seconds.toFixed(2)}`, r.cpu_seconds.toFixed(2), (r.max_rss_bytes / 2 ** 20).toFixed(0), r.ratio.toFixed(2)]),
      ),
    )
    console.log('target: lora ÷ llama.cpp ≤ 1.20')
    for (const [rule, s] of Object.entries(same)) {
      const ok = s.identical === s.q4_0_both && s.q4_0_both > 0
      console.log(`same weights (${rule}): ${s.identical} of ${s.q4_0_both} tensors Q4_0 in both files are byte-identical${ok ? '' : ` — DIFFERENT: ${s.different.join(', ')}`}${s.only_in_one.length ? `; only in lora's file: ${s.only_in_one.join(', ')}` : ''}`)
    }
    console.log(`load average after: ${load.after.join(', ')} (1, 5, 15 min)`)
    const jsonPath = arg('json')
    if (jsonPath) {
      writeFileSync(jsonPath, `${JSON.stringify({dims, parameters, repeats, lora_threads: threads ?? availableParallelism(), llama_threads: llamaThreads, cpu: cpus()[0]?.model, cores: availableParallelism(), load, rows, runs: Object.fromEntries(runs), same}, null, 2)}\n`)
      console.log(`wrote ${jsonPath}`)
    }
    if (!Object.values(same).every((s) => s.identical === s.q4_0_both && s.q4_0_both > 0)) process.exitCode = 1
  } finally {
    rmSync(work, {recursive: true, force: true})
    release()
  }
}

await main()
