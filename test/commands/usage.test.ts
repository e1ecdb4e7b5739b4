/**
 * Issue 15, why 5: every usage error is one line naming the flag and the
 * reason, also under --json; nonsense values are refused. The flag types of
 * every command (src/cli/flags.ts) are swept in-process; a few runs check
 * what a user sees.
 */
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {Config} from '@oclif/core'
import {cliConfig, runCli} from '../helpers/index.js'

const test = suite('commands: usage errors')

/** Values no numeric, list or size flag accepts. */
const GARBAGE = ['', 'abc', 'NaN', 'Infinity', '1e400', '0x10', '--']

interface LoadedFlag {
  name: string
  type: string
  parse?: (input: string, ctx: unknown, opts: unknown) => Promise<unknown>
  options?: readonly string[]
}

async function commands(config: Config): Promise<Array<{id: string; flags: LoadedFlag[]}>> {
  const out = []
  for (const c of config.commands) {
    const cls = await c.load()
    const flags = Object.entries(cls.flags ?? {}).map(([name, f]) => ({...(f as object), name}) as LoadedFlag)
    out.push({id: c.id, flags})
  }
  return out
}

test('every value-taking flag of every command refuses garbage with one line naming it', async () => {
  const config = await cliConfig()
  let checked = 0
  for (const c of await commands(config)) {
    for (const f of c.flags) {
      if (f.type !== 'option' || f.options || !f.parse) continue
      // free text (prompts, adapter names, globs) and paths take any non-empty string
      const garbage = /prompt|adapter$|include|exclude|workload|strategies|targets|variants/.test(f.name) ? [] : GARBAGE
      for (const value of garbage) {
        let error: (Error & {code?: string; exitCode?: number}) | undefined
        let parsed: unknown
        try {
          parsed = await f.parse(value, {}, {name: f.name})
        } catch (e) {
          error = e as Error & {code?: string; exitCode?: number}
        }
        if (error === undefined) {
          // only paths may take such a value, and never an empty one
          assert.ok(value !== '' && typeof parsed === 'string', `${c.id} --${f.name} accepted "${value}" as ${JSON.stringify(parsed)}`)
          continue
        }
        assert.ok(['BAD_FLAG', 'BAD_SIZE'].includes(error.code ?? ''), `${c.id} --${f.name} "${value}": ${error.code} ${error.message}`)
        assert.is(error.exitCode, 2)
        assert.match(error.message, `--${f.name}`)
        assert.not.match(error.message, /\n/)
        checked++
      }
    }
  }
  assert.ok(checked > 150, `checked ${checked} flag values`)
})

test('nonsense values the issue found accepted are refused, with the rule', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['synth', 'adapters', '--out', 'x', '--shared-subspace', '2'], /--shared-subspace must be a number ≥ 0 and ≤ 1 \(got "2"\)/],
    [['synth', 'adapters', '--out', 'x', '--alpha', '0'], /--alpha must be a number > 0/],
    [['synth', 'adapters', '--out', 'x', '--alpha', '-3'], /--alpha must be a number > 0/],
    [['synth', 'adapters', '--out', 'x', '--seed', '-1'], /--seed must be an integer from 0/],
    [['synth', 'adapters', '--out', 'x', '--count', '1.5'], /--count must be an integer from 1/],
    [['synth', 'base', '--out', 'x', '--hidden', '1000000000'], /--hidden must be an integer from 1 to 1048576/],
    [['merge', '--base', 'b', '--adapter', 'a', '--out', 'o', '--weight', '1e308'], /--weight must be a number ≥ -1000 and ≤ 1000/],
    [['merge', '--base', 'b', '--adapter', 'a', '--out', 'o', '--max-loss', '5'], /--max-loss must be a number ≥ 0 and ≤ 1/],
    [['merge', '--base', 'b', '--adapter', 'a', '--out', 'o', '--probe', '0'], /--probe must be an integer from 1/],
    [['bench', '--tolerance', '5'], /--tolerance must be a number > 0 and ≤ 1/],
    [['bench', '--threads', '100000'], /--threads must be an integer from 1 to 4096/],
    [['bench', '--adapters', '10,0'], /--adapters expects comma-separated integers from 1/],
    [['bench', '--max-regression', '1'], /--max-regression must be a number ≥ 0 and < 1/],
    [['generate', '--base', 'b', '--prompt', 'p', '--temperature', '1e308'], /--temperature must be a number ≥ 0 and ≤ 1000/],
    [['compress', 'p', '--out', 'o', '--savings', '0%'], /--savings must be a number > 0 and < 100/],
    [['plan', '--config', 'c', '--adapters', '1', '--budget', '0'], /--budget "0" must be a positive size/],
    [['pack', 'a', '--out', ''], /--out needs a path \(got an empty value\)/],
  ]
  for (const [args, reason] of cases) {
    const plain = await runCli(args)
    assert.is(plain.status, 2, `${args.join(' ')}: ${plain.stderr}`)
    assert.match(plain.stderr, /^Error: [^\n]+\n$/, `one line: ${plain.stderr}`)
    assert.match(plain.stderr, reason)
    const json = await runCli([...args, '--json'])
    assert.is(json.status, 2)
    const error = JSON.parse(json.stdout).error
    assert.match(error.message, reason)
    assert.is(error.exitCode, 2)
  }
})

test('oclif\'s own usage errors are one line too, with the reason, in both modes', async () => {
  const cases: Array<[string[], string, string]> = [
    [['synth', 'adapters', '--count', '3'], 'USAGE', '--out is required'],
    [['synth', 'adapters', '--out', 'x', '--bogus'], 'USAGE', 'Nonexistent flag: --bogus'],
    [['synth', 'adapters', '--out', 'x', '--dtype', 'f8'], 'USAGE', 'Expected --dtype=f8 to be one of: f16, bf16, f32'],
    [['synth', 'adapters', '--out', 'x', '--count', '0'], 'BAD_FLAG', '--count must be an integer from 1 to 2147483647 (got "0")'],
    [['unpack', 'p.safetensors'], 'USAGE', 'Exactly one of the following must be provided: --adapter, --slot; --out is required'],
  ]
  for (const [args, code, message] of cases) {
    const plain = await runCli(args)
    assert.is(plain.status, 2)
    assert.is(plain.stderr, `Error: ${message}\n`)
    const json = await runCli([...args, '--json'])
    assert.equal(JSON.parse(json.stdout).error, {code, message, exitCode: 2})
  }
})

test.run()
