/**
 * `lora generate`: streamed text, --json, adapters from a folder or a pack,
 * and exit 2 with one line for bad input in both output modes.
 */
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {STORIES, STORIES_GREEDY, storiesMissing} from '../helpers/decoder-fixtures.js'
import {runCli, skipIf, tempDir} from '../helpers/index.js'

const missing = storiesMissing()
const test = suite('commands/generate')
const real = skipIf(test, missing)
const tmp = tempDir('lora-generate-cmd-')
test.after(() => tmp.cleanup())
const HF = join(STORIES, 'hf')

real('streams the prompt and the greedy continuation to stdout', async () => {
  const r = await runCli(['generate', '--base', HF, '--prompt', 'Once upon a time', '-n', '57'])
  assert.is(r.status, 0, r.stderr)
  assert.ok(r.stdout.startsWith(STORIES_GREEDY), r.stdout)
  assert.is(r.stderr, '')
})

real('--json gives the ids and the text, and nothing else on stdout', async () => {
  const r = await runCli(['generate', '--base', join(STORIES, 'gguf/stories260K.gguf'), '--adapter', join(STORIES, 'adapters/lora_medium'), '--prompt', 'Once upon a time', '-n', '12', '--json'])
  assert.is(r.status, 0, r.stderr)
  const out = JSON.parse(r.stdout) as Record<string, unknown>
  assert.equal(out.prompt_ids, [1, 403, 407, 261, 378])
  assert.is((out.ids as number[]).length, 12)
  assert.is(typeof out.text, 'string')
  assert.equal(out.adapters, ['lora_medium'])
  assert.equal([out.stop, out.temperature, out.merged], ['length', 0, false])
})

real('--pack P --adapter NAME runs the packed adapter like its folder; --merge gives the same greedy ids', async () => {
  const pack = join(tmp.path, 'p.safetensors')
  assert.is((await runCli(['pack', join(STORIES, 'adapters/lora_small'), join(STORIES, 'adapters/lora_medium'), '--out', pack])).status, 0)
  const run = async (args: string[]) => JSON.parse((await runCli(['generate', '--base', HF, '--prompt', 'Once upon a time', '-n', '15', '--json', ...args])).stdout) as {ids: number[]}
  const folder = await run(['--adapter', join(STORIES, 'adapters/lora_medium')])
  assert.equal((await run(['--pack', pack, '--adapter', 'lora_medium'])).ids, folder.ids)
  assert.equal((await run(['--adapter', join(STORIES, 'adapters/lora_medium'), '--merge'])).ids, folder.ids)
  const routed = (await run(['--pack', pack, '--adapter', 'lora_medium', '--strategy', 'segment'])) as {ids: number[]; strategy: string}
  assert.equal([routed.ids, routed.strategy], [folder.ids, 'segment'])
})

real('bad input exits 2 with one line, plain and --json', async () => {
  const plain = await runCli(['generate', '--base', HF, '--prompt', 'x', '--temperature', 'hot'])
  assert.is(plain.status, 2)
  assert.match(plain.stderr, /--temperature must be a number/)
  assert.is(plain.stdout, '')
  const json = await runCli(['generate', '--base', join(tmp.path, 'missing'), '--prompt', 'x', '--json'])
  assert.is(json.status, 2)
  assert.is((JSON.parse(json.stdout) as {error: {code: string}}).error.code, 'IO_ENOENT')
  const pack = await runCli(['generate', '--base', HF, '--prompt', 'x', '--pack', join(tmp.path, 'p.safetensors')])
  assert.is(pack.status, 2)
  assert.match(pack.stderr, /--pack needs exactly one --adapter NAME/)
})

test.run()
