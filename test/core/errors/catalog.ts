/**
 * The error-code table as one list (the rows of cases-*.ts, grouped by what
 * they concern), the codes src/ can produce, and the message each code's
 * first throw in src/ prints: what the table test checks and docs/errors.md
 * is generated from (`errors-doc.ts`).
 */
import {readFileSync, readdirSync, statSync} from 'node:fs'
import {join, relative} from 'node:path'
import {REPO_ROOT} from '../../helpers/index.js'
import {BENCH_CASES} from './cases-bench.js'
import {E2E_CASES} from './cases-e2e.js'
import {EVAL_CASES} from './cases-eval.js'
import {FILE_CASES} from './cases-files.js'
import {GGUF_CASES} from './cases-gguf.js'
import {MODEL_CASES} from './cases-model.js'
import {PACK_CASES} from './cases-pack.js'
import {RUNTIME_CASES} from './cases-runtime.js'
import {SAFETY_CASES} from './cases-safety.js'
import type {ErrorCase} from './fixtures.js'

/** The rows, in groups (a heading each in docs/errors.md). */
export const CASE_GROUPS: ReadonlyArray<{title: string; cases: readonly ErrorCase[]}> = [
  {title: 'Reading files: safetensors, GGUF, sharded models, adapter folders, system errors', cases: FILE_CASES},
  {title: 'Packs, unpacking, compress, the demo', cases: PACK_CASES},
  {title: 'Models: merge, quantize, synth, plan, usage', cases: MODEL_CASES},
  {title: 'GGUF: models and adapters llama.cpp loads, lora export', cases: GGUF_CASES},
  {title: 'bench', cases: BENCH_CASES},
  {title: 'bench --e2e', cases: E2E_CASES},
  {title: 'The decoder runtime and generate', cases: RUNTIME_CASES},
  {title: 'eval and merge --eval', cases: EVAL_CASES},
  {title: 'Safety: outputs, finite numbers, adapters, resources', cases: SAFETY_CASES},
]

/** Every row. */
export const CASES: ErrorCase[] = CASE_GROUPS.flatMap((g) => g.cases)

/** The .ts files under src/. */
function sourceFiles(): string[] {
  const files: string[] = []
  const walk = (dir: string) => {
    for (const e of readdirSync(dir)) {
      const p = join(dir, e)
      if (statSync(p).isDirectory()) walk(p)
      else if (p.endsWith('.ts')) files.push(p)
    }
  }
  walk(join(REPO_ROOT, 'src'))
  return files.sort()
}

/** A source file without its comments. */
function code(file: string): string {
  return readFileSync(file, 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/(^|[^:'"`])\/\/.*$/gm, '$1')
}

/** String literals that are not error codes though they look like one. */
const NOT_CODES = new Set([
  'F8_E4M3', // safetensors dtype names
  'F8_E5M2',
  'Q4_0', // GGML type names
  'Q8_0',
  'ALL_F32', // llama.cpp's file type name (general.file_type 0)
  'CAUSAL_LM', // PEFT's task_type
])

/** Every error code src/ can produce: CODE_LIKE literals, first arguments of the error classes, `code:` fields, and the IO_ codes of describeSystemError. */
export function codesInSource(): Set<string> {
  const codes = new Set<string>()
  for (const file of sourceFiles()) {
    const text = code(file)
    for (const m of text.matchAll(/['"]([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)['"]/g)) if (!NOT_CODES.has(m[1]!)) codes.add(m[1]!)
    for (const m of text.matchAll(/new (?:Lora|Input|Usage|Gate)Error\(\s*['"]([A-Z][A-Z0-9_]*)['"]/g)) codes.add(m[1]!)
    for (const m of text.matchAll(/\bcode: ['"]([A-Z][A-Z0-9_]*)['"]/g)) codes.add(m[1]!)
  }
  const errors = readFileSync(join(REPO_ROOT, 'src/core/errors.ts'), 'utf8')
  const table = /const problems[^{]*\{([\s\S]*?)\}/.exec(errors)?.[1] ?? ''
  for (const m of table.matchAll(/^\s*(E[A-Z]+):/gm)) codes.add(`IO_${m[1]}`)
  return codes
}


/** The string literal (quote or template) starting at `text[at]`, with every `${…}` written as `…`. */
function literalAt(text: string, at: number): string | undefined {
  const quote = text[at]
  if (quote !== "'" && quote !== '"' && quote !== '`') return undefined
  let out = ''
  for (let i = at + 1; i < text.length; i++) {
    const c = text[i]!
    if (c === '\\') {
      out += text[i + 1] ?? ''
      i++
      continue
    }
    if (c === quote) return out
    if (quote === '`' && c === '$' && text[i + 1] === '{') {
      let depth = 0
      for (i += 1; i < text.length; i++) {
        if (text[i] === '{') depth++
        else if (text[i] === '}' && --depth === 0) break
        else if (text[i] === '`') {
          // a template inside the expression
          const inner = text.indexOf('`', i + 1)
          if (inner < 0) return undefined
          i = inner
        }
      }
      out += '…'
      continue
    }
    out += c
  }
  return undefined
}

/** For every code, the message of its first throw in src/ (expressions as `…`) and the file it is in. */
export function messagesInSource(): Map<string, {message: string; file: string}> {
  const out = new Map<string, {message: string; file: string}>()
  for (const file of sourceFiles()) {
    const text = code(file)
    for (const m of text.matchAll(/['"]([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)['"]\s*,\s*/g)) {
      if (out.has(m[1]!)) continue
      const message = literalAt(text, m.index! + m[0].length)
      if (message !== undefined) out.set(m[1]!, {message, file: relative(REPO_ROOT, file)})
    }
  }
  const errors = readFileSync(join(REPO_ROOT, 'src/core/errors.ts'), 'utf8')
  const table = /const problems[^{]*\{([\s\S]*?)\}/.exec(errors)?.[1] ?? ''
  for (const m of table.matchAll(/^\s*(E[A-Z]+): '([^']*)'/gm)) out.set(`IO_${m[1]}`, {message: `<action> <path>: ${m[2]}`, file: 'src/core/errors.ts'})
  return out
}
