/**
 * `npm run fuzz`: malformed and mutated inputs through every command that
 * reads files, each in its own process, and what a user must get back:
 * an exit status of 0, 1 or 2 (never 3, a signal or a hang), one `Error:`
 * line on stderr when it fails (never an internal error), and no temporary
 * left beside an output. Then the bounds that must hold in under a second
 * (a FIFO, sizes no machine holds), timed in-process. Not part of `npm test`.
 *
 * The corpus is seeded: the same --seed writes the same files.
 * - hand-made malformed files: safetensors headers, GGUF headers, adapter
 *   configs, special files (a FIFO, a folder, /dev/zero where a file goes);
 * - mutations of valid files: small synthetic adapters, their pack and shared-B
 *   file, a base and its Q4_0 GGUF, and the real adapters and stories260K in
 *   ../shared when present (bytes flipped in the header or the data,
 *   truncation, a wrong header length, a header field changed).
 *
 * Flags: --seed N (default 1), --mutants N per valid file (default 12),
 * --jobs N (default: CPUs), --timeout S per run (default 120), --work DIR
 * (default .bench-work/fuzz), --keep (keep the corpus). Exit 1 on a failure.
 */
import {spawn, spawnSync} from 'node:child_process'
import {cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync} from 'node:fs'
import {availableParallelism} from 'node:os'
import {basename, join, resolve} from 'node:path'
import {Rng} from '../src/core/random.js'
import {runCli} from '../test/helpers/run-cli.js'
import {ROOT, flag} from './script.js'

const BIN = join(ROOT, 'bin/run.js')
const SHARED = resolve(ROOT, '../shared')

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`)
  if (i < 0) return fallback
  const n = Number(process.argv[i + 1])
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer (got ${process.argv[i + 1]})`)
  return n
}
const seed = option('seed', 1)
const mutants = option('mutants', 12)
const jobs = option('jobs', availableParallelism())
const timeoutMs = option('timeout', 120) * 1000
const work = resolve(flag('--work', join(ROOT, '.bench-work/fuzz')))
const rng = new Rng(seed, 'fuzz')
const randInt = (n: number) => Math.floor(rng.next() * n)

// ------------------------------------------------------------------ corpus

/** An input and the commands that read it (`out` is a fresh folder for outputs). */
interface Case {
  label: string
  /** `lora` argument lists, each run in its own process. */
  commands: (out: string) => string[][]
}

const cases: Case[] = []
let n = 0
const place = (name: string) => {
  const dir = join(work, 'corpus', `${String(n++).padStart(4, '0')}-${name}`)
  mkdirSync(dir, {recursive: true})
  return dir
}

async function must(args: string[]): Promise<void> {
  const r = await runCli([...args, '--json'])
  if (r.status !== 0) throw new Error(`corpus: lora ${args.join(' ')} failed: ${r.stdout}${r.stderr}`)
}

/** A safetensors file from a header (object or raw text) and data bytes; `length` overrides the 8-byte prefix. */
function safetensors(header: string | object, data: Uint8Array | number = 0, length?: bigint): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'latin1')
  const prefix = Buffer.alloc(8)
  prefix.writeBigUInt64LE(length ?? BigInt(json.length))
  return Buffer.concat([prefix, json, typeof data === 'number' ? Buffer.alloc(data) : Buffer.from(data)])
}

const TINY_BENCH = ['--rounds', '1', '--steps', '1', '--batch', '2', '--strategies', 'gather']

/** How each kind of file is read: the commands a mutant of it goes through. */
const READERS = {
  adapter: (base: string) => (dir: string) => (out: string) => [
    ['inspect', dir],
    ['pack', dir, '--out', join(out, 'p.safetensors')],
    ['merge', '--base', base, '--adapter', dir, '--out', join(out, 'm'), '--probe', '8'],
    ['compress', dir, '--rank', '1', '--out', join(out, 'c.safetensors')],
    ['export', dir, '--base', base, '--out', join(out, 'a.gguf')],
  ],
  pack: (file: string) => (out: string) => [
    ['inspect', file],
    ['unpack', file, '--slot', '1', '--out', join(out, 'u')],
    ['compress', file, '--rank', '1', '--out', join(out, 'c.safetensors')],
    ['bench', '--pack', file, ...TINY_BENCH, '--work-dir', join(out, 'w')],
  ],
  sharedB: (pack: string) => (file: string) => (out: string) => [
    ['inspect', file],
    ['unpack', file, '--slot', '1', '--out', join(out, 'u')],
    ['bench', '--pack', pack, '--shared-b', file, '--rounds', '1', '--steps', '1', '--batch', '2', '--strategies', 'shared-b', '--work-dir', join(out, 'w')],
  ],
  base: (adapter: string) => (dir: string) => (out: string) => [
    ['inspect', dir],
    ['merge', '--base', dir, '--adapter', adapter, '--out', join(out, 'm'), '--probe', '8'],
    ['quantize', dir, '--scheme', 'nf4', '--out', join(out, 'q')],
    ['plan', '--base', dir, '--adapters', '4', '--budget', '1MB'],
  ],
  gguf: (adapter: string) => (file: string) => (out: string) => [
    ['inspect', file],
    ['merge', '--base', file, '--from-quantized', '--adapter', adapter, '--out', join(out, 'm.gguf'), '--probe', '8'],
  ],
  decoder: (dir: string) => (out: string) => [
    ['inspect', dir],
    ['generate', '--base', dir, '--prompt', 'Once', '-n', '2'],
    ['eval', '--base', dir, '--text', join(SHARED, 'real-models/stories260K/eval.txt'), '--variants', 'merged:f16', '--ctx', '32'],
  ],
  text: (base: string) => (file: string) => (out: string) => [['eval', '--base', base, '--text', file, '--variants', 'merged:f16', '--ctx', '32']],
}

async function buildCorpus(): Promise<void> {
  const seeds = join(work, 'seeds')
  mkdirSync(seeds, {recursive: true})
  const dims = ['--hidden', '32', '--intermediate', '64', '--layers', '1']
  const ads = join(seeds, 'ad')
  await must(['synth', 'adapters', '--out', ads, '--count', '2', '--rank', '2', '--targets', 'all', ...dims])
  const adapter = join(ads, 'adapter-0000')
  const base = join(seeds, 'base')
  await must(['synth', 'base', '--out', base, '--vocab', '512', '--dtype', 'f32', ...dims])
  const pack = join(seeds, 'pack.safetensors')
  await must(['pack', ads, '--out', pack])
  const sharedB = join(seeds, 'shared-b.safetensors')
  await must(['compress', pack, '--rank', '1', '--out', sharedB])
  const gguf = join(seeds, 'base-q4_0.gguf')
  await must(['quantize', base, '--scheme', 'q4_0', '--out', gguf])

  // valid files and their mutants: [file, how to place a copy, the readers]
  const valid: Array<{label: string; file: string; place: (bytes: Buffer) => string; read: (path: string) => Case['commands']}> = [
    {label: 'adapter', file: join(adapter, 'adapter_model.safetensors'), place: (b) => withFile(adapter, 'adapter_model.safetensors', b), read: READERS.adapter(base)},
    {label: 'adapter-config', file: join(adapter, 'adapter_config.json'), place: (b) => withFile(adapter, 'adapter_config.json', b), read: READERS.adapter(base)},
    {label: 'pack', file: pack, place: (b) => asFile('pack.safetensors', b), read: READERS.pack},
    {label: 'shared-b', file: sharedB, place: (b) => asFile('shared-b.safetensors', b), read: READERS.sharedB(pack)},
    {label: 'base', file: join(base, 'model.safetensors'), place: (b) => withFile(base, 'model.safetensors', b), read: READERS.base(adapter)},
    {label: 'base-config', file: join(base, 'config.json'), place: (b) => withFile(base, 'config.json', b), read: READERS.base(adapter)},
    {label: 'gguf', file: gguf, place: (b) => asFile('base.gguf', b), read: READERS.gguf(adapter)},
  ]
  const real = join(SHARED, 'real-adapters')
  if (existsSync(real)) {
    for (const name of ['qwen2.5-0.5b-qv-r8', 'gpt2-r4a1-cattn-cproj', 'opt-125m-qv-r16-bf16', 'tiny-gpt2-r4', 'distilbert-classifier-target-odd']) {
      const dir = join(real, name)
      if (!existsSync(dir)) continue
      valid.push({label: `real ${name}`, file: join(dir, 'adapter_model.safetensors'), place: (b) => withFile(dir, 'adapter_model.safetensors', b), read: (d) => (out) => READERS.adapter(base)(d)(out).slice(0, 2)})
    }
  }
  const stories = join(SHARED, 'real-models/stories260K')
  if (existsSync(stories)) {
    valid.push({label: 'stories260K hf', file: join(stories, 'hf/model.safetensors'), place: (b) => withFile(join(stories, 'hf'), 'model.safetensors', b), read: READERS.decoder})
    valid.push({label: 'stories260K gguf', file: join(stories, 'gguf/stories260K.gguf'), place: (b) => asFile('stories.gguf', b), read: READERS.decoder})
    valid.push({label: 'eval text', file: join(stories, 'eval.txt'), place: (b) => asFile('eval.txt', b), read: READERS.text(join(stories, 'hf'))})
  }
  for (const v of valid) {
    const bytes = readFileSync(v.file)
    cases.push({label: `${v.label} (valid)`, commands: v.read(v.place(bytes))})
    for (let i = 0; i < mutants; i++) {
      const [how, mutant] = mutate(bytes, v.file)
      cases.push({label: `${v.label}: ${how}`, commands: v.read(v.place(mutant))})
    }
  }
  malformed(adapter, base)
}

/** A copy of folder `dir` in the corpus with file `name` replaced by `bytes`; returns the copy. */
function withFile(dir: string, name: string, bytes: Buffer): string {
  const to = join(place(basename(dir)), basename(dir))
  cpSync(dir, to, {recursive: true, dereference: true})
  rmSync(join(to, name), {force: true, recursive: true})
  writeFileSync(join(to, name), bytes)
  return to
}

/** `bytes` as a file named `name` in the corpus. */
function asFile(name: string, bytes: Buffer): string {
  const path = join(place(name), name)
  writeFileSync(path, bytes)
  return path
}

/** One seeded mutation of a valid file, and what it did. */
function mutate(bytes: Buffer, file: string): [string, Buffer] {
  const out = Buffer.from(bytes)
  const isJson = file.endsWith('.json') || file.endsWith('.txt')
  const headerEnd = isJson ? out.length : file.endsWith('.gguf') ? Math.min(out.length, 4096) : Math.min(out.length, 8 + Number(out.readBigUInt64LE(0)))
  switch (isJson ? randInt(2) * 4 : randInt(6)) {
    case 0: {
      const k = 1 + randInt(8)
      for (let i = 0; i < k; i++) out[randInt(headerEnd)] = randInt(256)
      return [`${k} header byte(s) flipped`, out]
    }
    case 1: {
      const at = headerEnd + randInt(Math.max(1, out.length - headerEnd))
      if (at < out.length) out[at] = randInt(256)
      return [`data byte ${at} changed`, out]
    }
    case 2: {
      const at = randInt(out.length)
      return [`truncated at ${at} of ${out.length}`, out.subarray(0, at)]
    }
    case 3: {
      const values = [0n, 1n, 7n, 2n ** 32n, 2n ** 63n - 1n, BigInt(headerEnd) + 1n, BigInt(headerEnd) - 9n]
      const v = values[randInt(values.length)]!
      if (!file.endsWith('.gguf') && v >= 0n) out.writeBigUInt64LE(v, 0)
      else out.writeBigUInt64LE(BigInt(randInt(2 ** 31)) * 2n ** 20n, 8)
      return [`length field set to ${v}`, out]
    }
    case 4: {
      // a header field changed: a number doubled, negated or made huge, a string emptied
      const text = out.subarray(isJson ? 0 : 8, headerEnd).toString('latin1')
      const numbers = [...text.matchAll(/-?\d+(\.\d+)?(e[+-]?\d+)?/g)]
      if (numbers.length === 0) return ['no number to change', out]
      const m = numbers[randInt(numbers.length)]!
      const replacement = ['0', '-1', '1e308', '9007199254740993', String(Number(m[0]) * 2), 'NaN', '"x"'][randInt(7)]!
      const edited = text.slice(0, m.index) + replacement + text.slice(m.index! + m[0].length)
      if (isJson) return [`number ${m[0]} → ${replacement}`, Buffer.from(edited, 'latin1')]
      const body = Buffer.from(edited, 'latin1')
      const prefix = Buffer.alloc(8)
      prefix.writeBigUInt64LE(BigInt(body.length))
      return [`header number ${m[0]} → ${replacement}`, Buffer.concat([prefix, body, out.subarray(headerEnd)])]
    }
    default: {
      // NaN or Infinity written over float data
      const at = headerEnd + 4 * randInt(Math.max(1, Math.floor((out.length - headerEnd) / 4)))
      if (at + 4 <= out.length) out.writeFloatLE([Number.NaN, Number.POSITIVE_INFINITY, -1e38][randInt(3)]!, at)
      return [`a non-finite or huge value at byte ${at}`, out]
    }
  }
}

/** The hand-made malformed inputs. */
function malformed(adapter: string, base: string): void {
  const st = (label: string, file: Buffer) => cases.push({label: `safetensors: ${label}`, commands: READERS.adapter(base)(withFile(adapter, 'adapter_model.safetensors', file))})
  const u8 = (a: number, b: number) => ({dtype: 'U8', shape: [b - a], data_offsets: [a, b]})
  st('empty file', Buffer.alloc(0))
  st('2 bytes', Buffer.from('\r\n'))
  st('header length 2^40', safetensors('{}', 0, 2n ** 40n))
  st('header length past the end', safetensors('{}', 0, 100n))
  st('header not JSON', safetensors('{"a":'))
  st('header an array', safetensors('[]'))
  st('duplicate tensor', safetensors(`{"t":${JSON.stringify(u8(0, 1))},"t":${JSON.stringify(u8(0, 1))}}`, 1))
  st('unknown dtype', safetensors({t: {dtype: 'X9', shape: [1], data_offsets: [0, 1]}}, 1))
  st('negative shape', safetensors({t: {dtype: 'U8', shape: [-1], data_offsets: [0, 1]}}, 1))
  st('shape past 2^53', safetensors({t: {dtype: 'F32', shape: [2 ** 30, 2 ** 30, 2 ** 30], data_offsets: [0, 4]}}, 4))
  st('overlapping offsets', safetensors({a: u8(0, 4), b: u8(2, 6)}, 6))
  st('__proto__ tensor', safetensors({['__proto__']: u8(0, 1)}, 1))
  st('NaN in lora_B', safetensors({'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight': {dtype: 'F32', shape: [2, 32], data_offsets: [0, 256]}, 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight': {dtype: 'F32', shape: [32, 2], data_offsets: [256, 512]}}, new Uint8Array(new Float32Array(128).fill(Number.NaN).buffer)))
  const config = (label: string, text: string) => cases.push({label: `adapter_config: ${label}`, commands: READERS.adapter(base)(withFile(adapter, 'adapter_config.json', Buffer.from(text)))})
  const cfg = JSON.parse(readFileSync(join(adapter, 'adapter_config.json'), 'utf8'))
  for (const [k, v] of [['r', 0], ['r', -1], ['r', 1e9], ['r', '2'], ['lora_alpha', 0], ['lora_alpha', -4], ['lora_alpha', 1e308], ['lora_alpha', 'x'], ['target_modules', 5], ['target_modules', ['nothing']], ['rank_pattern', {'(': 2}], ['peft_type', 'IA3'], ['use_dora', true], ['fan_in_fan_out', 'yes']] as const) {
    config(`${k} = ${JSON.stringify(v)}`, JSON.stringify({...cfg, [k]: v}))
  }
  config('not JSON', '{')
  config('an array', '[]')
  config('empty', '')
  // special files where an adapter's file goes
  const special = (label: string, make: (path: string) => void) => {
    const dir = join(place('special'), 'ad')
    cpSync(adapter, dir, {recursive: true})
    rmSync(join(dir, 'adapter_model.safetensors'))
    make(join(dir, 'adapter_model.safetensors'))
    cases.push({label: `special: ${label}`, commands: READERS.adapter(base)(dir)})
  }
  if (spawnSync('mkfifo', ['--version']).status === 0) special('a FIFO', (p) => spawnSync('mkfifo', [p]))
  special('a folder', (p) => mkdirSync(p))
  special('a link to /dev/zero', (p) => symlinkSync('/dev/zero', p))
  special('a link to itself', (p) => symlinkSync(p, p))
  // special files where a text or a list goes
  if (spawnSync('mkfifo', ['--version']).status === 0) {
    const fifo = join(place('special'), 'list.fifo')
    spawnSync('mkfifo', [fifo])
    cases.push({label: 'special: a FIFO as --list and --text', commands: (out) => [['pack', '--list', fifo, '--out', join(out, 'p.safetensors')], ['plan', '--config', fifo, '--adapters', '4', '--budget', '1MB']]})
  }
  // GGUF headers
  const gguf = (label: string, head: number[]) => {
    const b = Buffer.alloc(64)
    head.forEach((v, i) => b.writeUInt32LE(v >>> 0, i * 4))
    cases.push({label: `gguf: ${label}`, commands: READERS.gguf(adapter)(asFile('x.gguf', b))})
  }
  gguf('bad magic', [0x12345678, 3])
  gguf('version 99', [0x46554747, 99])
  gguf('2^60 tensors', [0x46554747, 3, 0, 2 ** 28])
  gguf('2^60 metadata entries', [0x46554747, 3, 0, 0, 0, 2 ** 28])
}

// ------------------------------------------------------------------ running

interface Outcome {
  label: string
  args: string[]
  code: number | null
  signal: string | null
  stderr: string
  ms: number
  leftovers: string[]
  timedOut: boolean
}

const TEMPORARY = /\.(tmp|old)-\d+-[0-9a-f]{8}$|^\.?lora-[a-z0-9-]+-\d+-[0-9a-f]{8}$/

function listRecursive(dir: string): string[] {
  if (!existsSync(dir)) return []
  const out: string[] = []
  for (const e of readdirSync(dir)) {
    out.push(e)
    const p = join(dir, e)
    try {
      if (statSync(p).isDirectory()) out.push(...listRecursive(p))
    } catch {
      // a dangling link
    }
  }
  return out
}

function runOne(label: string, args: string[], out: string): Promise<Outcome> {
  const started = Date.now()
  const tmp = join(out, 'tmp')
  mkdirSync(tmp, {recursive: true})
  const proc = spawn(process.execPath, [BIN, ...args], {env: {...process.env, TMPDIR: tmp, NO_COLOR: '1'}, stdio: ['ignore', 'ignore', 'pipe']})
  let stderr = ''
  proc.stderr.on('data', (d) => (stderr += d))
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    proc.kill('SIGKILL')
  }, timeoutMs)
  return new Promise((done) =>
    proc.once('close', (code, signal) => {
      clearTimeout(timer)
      done({label, args, code, signal, stderr, ms: Date.now() - started, leftovers: listRecursive(out).filter((e) => TEMPORARY.test(e)), timedOut})
    }),
  )
}

function problem(o: Outcome): string | undefined {
  if (o.timedOut) return `no answer within ${timeoutMs / 1000} s`
  if (o.signal) return `killed by ${o.signal}`
  if (o.code === null || ![0, 1, 2].includes(o.code)) return `exit ${o.code}`
  // warnings may come first; the failure itself is one last line
  const lines = o.stderr.split(/(?<=\n)/).filter((l) => !l.startsWith('Warning: '))
  if (o.code !== 0 && !(lines.length === 1 && /^Error: [^\n]+\n$/.test(lines[0]!))) return `not one Error: line: ${JSON.stringify(o.stderr.slice(0, 300))}`
  if (/internal error/.test(o.stderr)) return 'internal error'
  if (o.leftovers.length > 0) return `temporaries left: ${o.leftovers.join(', ')}`
  return undefined
}

async function pool<T>(items: readonly T[], size: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({length: Math.max(1, size)}, async () => {
    while (next < items.length) await fn(items[next++]!)
  }))
}

// ------------------------------------------------------------------ bounds, timed

/** Refusals the issue wants in under a second, run in-process (no Node start in the time). */
async function timedBounds(): Promise<Array<{label: string; ms: number; ok: boolean; detail: string}>> {
  const dir = join(work, 'bounds')
  mkdirSync(dir, {recursive: true})
  const adapter = join(work, 'seeds/ad/adapter-0000')
  const fifo = join(dir, 'fifo-ad')
  cpSync(adapter, fifo, {recursive: true})
  rmSync(join(fifo, 'adapter_model.safetensors'))
  spawnSync('mkfifo', [join(fifo, 'adapter_model.safetensors')])
  const checks: Array<[string, string[], string]> = [
    ['inspect a FIFO adapter', ['inspect', fifo], 'NOT_A_FILE'],
    ['pack a FIFO adapter', ['pack', fifo, '--out', join(dir, 'p.safetensors')], 'NOT_A_FILE'],
    ['bench --adapters 100000000', ['bench', '--adapters', '100000000'], 'NOT_ENOUGH_DISK'],
    ['bench --adapters 1000000000', ['bench', '--adapters', '1000000000'], 'NOT_ENOUGH_DISK'],
    ['bench --batch 1000000000', ['bench', '--batch', '1000000000'], 'NOT_ENOUGH_MEMORY'],
    ['merge --probe 100000000', ['merge', '--base', join(work, 'seeds/base'), '--adapter', adapter, '--out', join(dir, 'm'), '--probe', '100000000'], 'NOT_ENOUGH_MEMORY'],
    ['synth adapters --count 1000000000', ['synth', 'adapters', '--out', join(dir, 'a'), '--count', '1000000000'], 'NOT_ENOUGH_DISK'],
    ['bench --e2e --requests 1000000 --prompt-tokens 2147483647', ['bench', '--e2e', '--requests', '1000000', '--prompt-tokens', '2147483647'], 'CONTEXT_TOO_LONG'],
    ['bench --e2e --hidden 1048576 --layers 1024', ['bench', '--e2e', '--hidden', '1048576', '--layers', '1024', '--vocab', '16777216'], 'NOT_ENOUGH_MEMORY'],
  ]
  const out = []
  for (const [label, args, code] of checks) {
    const started = performance.now()
    const r = await runCli([...args, '--json'], {env: {TMPDIR: dir}})
    const ms = performance.now() - started
    const got = (() => {
      try {
        return JSON.parse(r.stdout).error?.code as string | undefined
      } catch {
        return undefined
      }
    })()
    out.push({label, ms, ok: r.status === 2 && got === code && ms < 1000, detail: `exit ${r.status}, ${got}`})
  }
  return out
}

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  if (!process.argv.includes('--keep-corpus')) rmSync(work, {recursive: true, force: true})
  mkdirSync(work, {recursive: true})
  console.log(`lora fuzz: seed ${seed}, ${mutants} mutants per valid file, ${jobs} jobs, in ${work}`)
  await buildCorpus()
  const runs = cases.flatMap((c, i) => {
    const outs = join(work, 'out', String(i))
    return c.commands(outs).map((args, j) => ({label: c.label, args, out: join(outs, String(j))}))
  })
  console.log(`${cases.length} inputs, ${runs.length} runs`)
  const outcomes: Outcome[] = []
  let done = 0
  await pool(runs, jobs, async (r) => {
    mkdirSync(r.out, {recursive: true})
    outcomes.push(await runOne(r.label, r.args, r.out))
    if (++done % 50 === 0) console.log(`  ${done} / ${runs.length}`)
  })
  const byCommand = new Map<string, Record<string, number>>()
  for (const o of outcomes) {
    const row = byCommand.get(o.args[0]!) ?? {}
    const key = o.timedOut ? 'hang' : o.signal ? `signal ${o.signal}` : `exit ${o.code}`
    row[key] = (row[key] ?? 0) + 1
    byCommand.set(o.args[0]!, row)
  }
  console.log('\nruns by command and outcome:')
  for (const [command, row] of [...byCommand].sort()) console.log(`  ${command.padEnd(9)} ${Object.entries(row).sort().map(([k, v]) => `${k}: ${v}`).join(', ')}`)
  const slowest = [...outcomes].sort((a, b) => b.ms - a.ms).slice(0, 3)
  console.log(`slowest: ${slowest.map((o) => `${o.ms} ms (${o.args[0]} ${o.label})`).join('; ')}`)
  const failures = outcomes.map((o) => ({o, why: problem(o)})).filter((f) => f.why !== undefined)
  const bounds = await timedBounds()
  console.log('\nbounds, in-process:')
  for (const b of bounds) console.log(`  ${b.ok ? 'ok  ' : 'FAIL'} ${b.label}: ${b.ms.toFixed(0)} ms, ${b.detail}`)
  if (failures.length > 0) {
    console.log(`\n${failures.length} failure(s):`)
    for (const {o, why} of failures.slice(0, 50)) console.log(`  ${o.label}: lora ${o.args.join(' ')}\n    ${why}`)
  } else console.log(`\nno failure in ${outcomes.length} runs`)
  if (!process.argv.includes('--keep') && failures.length === 0) rmSync(work, {recursive: true, force: true})
  if (failures.length > 0 || bounds.some((b) => !b.ok)) process.exitCode = 1
}

await main()
