/**
 * Issue 15, parts 4 and 9: faults a user meets, each with its exact outcome.
 * - SIGKILL while pack, compress, merge, synth and bench write (the process
 *   is killed at its first rename, `helpers/kill-at-rename.ts`): the next run
 *   of the same command leaves nothing but its output behind.
 * - A full disk (`ulimit -f` in a child shell): exit 2 naming the file, no
 *   temporary left, and the bench's work folder holds no partial weight set.
 */
import {spawn, spawnSync} from 'node:child_process'
import {mkdirSync, readdirSync} from 'node:fs'
import {join} from 'node:path'
import {pathToFileURL} from 'node:url'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {Fixtures} from '../core/errors/fixtures.js'
import {REPO_ROOT, runCli, skipIf, tempDir} from '../helpers/index.js'

const test = suite('commands: SIGKILL and full-disk faults')
const tmp = tempDir('lora-faults-')
const fx = new Fixtures(join(tmp.path, 'fixtures'))
test.after(async () => {
  await fx.close()
  tmp.cleanup()
})

const BIN = join(REPO_ROOT, 'bin/run.js')
const KILLER = pathToFileURL(join(REPO_ROOT, 'dist/test/helpers/kill-at-rename.js')).href

interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
  stderr: string
}

/** Run `lora args` in a child process (optionally under `shell`, a bash prefix such as `ulimit -f 64;`). */
function child(args: string[], options: {preload?: string; env?: NodeJS.ProcessEnv; shell?: string} = {}): Promise<Exit> {
  const node = [...(options.preload ? ['--import', options.preload] : []), BIN, ...args]
  const proc = options.shell
    ? spawn('bash', ['-c', `${options.shell} exec "$0" "$@"`, process.execPath, ...node], {env: {...process.env, ...options.env}, stdio: ['ignore', 'ignore', 'pipe']})
    : spawn(process.execPath, node, {env: {...process.env, ...options.env}, stdio: ['ignore', 'ignore', 'pipe']})
  let stderr = ''
  proc.stderr.on('data', (d) => (stderr += d))
  return new Promise((resolve) => proc.once('close', (code, signal) => resolve({code, signal, stderr})))
}

/** A fresh folder for one command's output. */
function folder(name: string): string {
  const dir = join(tmp.path, name)
  mkdirSync(dir, {recursive: true})
  return dir
}

test('SIGKILL of pack, compress, merge, synth and bench mid-write: the next run leaves only its output', async () => {
  const [adapters, pack, base, adapter] = [await fx.adapters(), await fx.pack(), await fx.base(), await fx.adapter()]
  const dirs = {pack: folder('k-pack'), compress: folder('k-compress'), merge: folder('k-merge'), synth: folder('k-synth'), bench: folder('k-bench')}
  const runs: Array<{name: keyof typeof dirs; args: string[]; output: string[]}> = [
    {name: 'pack', args: ['pack', adapters, '--out', join(dirs.pack, 'p.safetensors')], output: ['p.safetensors']},
    {name: 'compress', args: ['compress', pack, '--rank', '1', '--out', join(dirs.compress, 'c.safetensors')], output: ['c.safetensors']},
    {name: 'merge', args: ['merge', '--base', base, '--adapter', adapter, '--out', join(dirs.merge, 'merged'), '--no-quality'], output: ['merged']},
    {name: 'synth', args: ['synth', 'adapters', '--out', join(dirs.synth, 'ads'), '--count', '2', '--hidden', '16', '--intermediate', '24', '--layers', '1', '--rank', '2'], output: ['ads']},
    {name: 'bench', args: ['bench', '--model', 'layer', '--hidden', '8', '--adapters', '2', '--strategies', 'gather', '--rounds', '1', '--steps', '1', '--batch', '2'], output: []},
  ]
  // the bench's scratch folder goes to TMPDIR: its own folder here
  const env = (name: string) => (name === 'bench' ? {TMPDIR: dirs.bench} : {})
  const killed = await Promise.all(runs.map((r) => child(r.args, {preload: KILLER, env: env(r.name)})))
  for (const [i, r] of runs.entries()) {
    assert.is(killed[i]!.signal, 'SIGKILL', `${r.name} was killed at its first rename: ${killed[i]!.stderr}`)
    assert.ok(readdirSync(dirs[r.name]).some((e) => /\.tmp-\d+-|^lora-bench-\d+-/.test(e)), `${r.name} left its temporary behind (what SIGKILL does): ${readdirSync(dirs[r.name])}`)
  }
  for (const r of runs) {
    const again = await runCli(r.args, {env: env(r.name)})
    assert.is(again.status, 0, `${r.name} again: ${again.stderr}`)
    assert.equal(readdirSync(dirs[r.name]).sort(), r.output, `${r.name}: nothing but its output`)
  }
})

const haveBash = spawnSync('bash', ['-c', 'ulimit -f 64']).status === 0

skipIf(test, haveBash ? undefined : 'bash with ulimit is not available')('a full disk (ulimit -f): exit 2 naming the file, no temporary, no partial weight set', async () => {
  const adapters = await fx.adapters()
  const out = folder('full-pack')
  const work = folder('full-work')
  const limit = 'ulimit -f 8;' // 8 KiB: the pack and the weight set are larger
  const [pack, bench] = await Promise.all([
    child(['pack', adapters, '--out', join(out, 'p.safetensors')], {shell: limit}),
    child(['bench', '--model', 'layer', '--hidden', '64', '--adapters', '8', '--strategies', 'gather', '--rounds', '1', '--steps', '1', '--batch', '2', '--work-dir', work], {shell: limit}),
  ])
  assert.is(pack.code, 2, pack.stderr)
  assert.match(pack.stderr, /^Error: write .*p\.safetensors: file too large for this file system\n$/)
  assert.equal(readdirSync(out), [], 'no temporary left')
  assert.is(bench.code, 2, bench.stderr)
  assert.match(bench.stderr, /^Error: write .*weights\.bin: file too large for this file system\n$/)
  assert.equal(readdirSync(work), [], 'no partial weight set left')
  // room again: the same run builds the set and succeeds
  const again = await runCli(['bench', '--model', 'layer', '--hidden', '64', '--adapters', '8', '--strategies', 'gather', '--rounds', '1', '--steps', '1', '--batch', '2', '--work-dir', work])
  assert.is(again.status, 0, again.stderr)
})

test.run()
