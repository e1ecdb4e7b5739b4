/**
 * The few command tests that need a real `lora` process. Every other command
 * test runs in-process (test/helpers/run-cli.ts); these check what only a
 * process shows: the bin entry and its oclif manifest, exit statuses that go
 * through process.exit and process.exitCode, and a terminal versus a pipe.
 * (Signals: commands/demo.test.ts; a writer killed mid-file:
 * core/formats/safetensors.test.ts.)
 */
import {spawnSync} from 'node:child_process'
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {Plugin} from '@oclif/core'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {REPO_ROOT, runCli, runCliProcess, skipIf, tempDir} from '../helpers/index.js'

const test = suite('command process')

test('bin/run.js --help lists every command (and topic) from oclif.manifest.json, which matches the built commands', async () => {
  const manifest = JSON.parse(readFileSync(join(REPO_ROOT, 'oclif.manifest.json'), 'utf8'))
  const fresh = new Plugin({root: REPO_ROOT, type: 'core', isRoot: true, ignoreManifest: true, errorOnManifestCreate: true, respectNoCacheDefault: true})
  await fresh.load()
  assert.equal(manifest, JSON.parse(JSON.stringify(fresh.manifest)), 'oclif.manifest.json is stale: run `npm run build`')
  const r = runCliProcess(['--help'])
  assert.is(r.status, 0, r.stderr)
  // commands, and topics (synth) for the commands under them
  for (const id of Object.keys(manifest.commands)) assert.match(r.stdout, new RegExp(`\\n  ${id.split(':')[0]}\\s`), `--help lists ${id}`)
})

test('bin/run.js: bad input exits 2 with one line on stderr; under --json the error is on stdout; a usage error is one line too', () => {
  const tmp = tempDir()
  try {
    const bad = join(tmp.path, 'bad.safetensors')
    writeFileSync(bad, Buffer.from('\r\n'))
    const plain = runCliProcess(['inspect', bad])
    assert.equal([plain.status, plain.stdout], [2, ''])
    assert.match(plain.stderr, /^Error: read .*bad\.safetensors: file is 2 bytes, shorter than the 8-byte header length prefix\n$/)
    const json = runCliProcess(['inspect', bad, '--json'])
    assert.equal([json.status, json.stderr], [2, ''])
    assert.equal(JSON.parse(json.stdout).error, {code: 'SAFETENSORS_TOO_SHORT', message: `read ${bad}: file is 2 bytes, shorter than the 8-byte header length prefix`, exitCode: 2})
    const usage = runCliProcess(['synth', 'adapters', '--count', '3'])
    assert.is(usage.status, 2)
    assert.is(usage.stderr, 'Error: --out is required\n')
  } finally {
    tmp.cleanup()
  }
})

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`
const haveScript = spawnSync('script', ['--version'], {encoding: 'utf8'}).status === 0

skipIf(test, haveScript ? undefined : '`script` (util-linux) is not installed, so no pseudo-terminal can be opened')('under --json a warning reaches stderr on a terminal, and not through a pipe', async () => {
  const tmp = tempDir()
  try {
    for (const [dir, dtype] of [['a', 'f16'], ['b', 'bf16']] as const) {
      const s = await runCli(['synth', 'adapters', '--out', join(tmp.path, dir), '--count', '2', '--hidden', '16', '--intermediate', '24', '--layers', '1', '--rank', '2', '--dtype', dtype, '--json'])
      assert.is(s.status, 0, s.stderr)
    }
    const args = (out: string) => ['pack', join(tmp.path, 'a/adapter-0000'), join(tmp.path, 'b/adapter-0001'), '--out', join(tmp.path, out), '--json']
    const pipe = runCliProcess(args('p1.safetensors'))
    assert.is(pipe.status, 0, pipe.stderr)
    assert.is(pipe.stderr, '')
    assert.is(JSON.parse(pipe.stdout).adapters, 2)
    // `script` gives the command a pseudo-terminal for stdin, stdout and stderr (merged into one stream)
    const command = [process.execPath, join(REPO_ROOT, 'bin/run.js'), ...args('p2.safetensors')].map(shellQuote).join(' ')
    const tty = spawnSync('script', ['-qec', command, '/dev/null'], {encoding: 'utf8', env: {...process.env, NO_COLOR: '1'}})
    assert.is(tty.status, 0, tty.stdout)
    assert.match(tty.stdout, /Warning: adapters store different dtypes/)
  } finally {
    tmp.cleanup()
  }
})

test.run()
