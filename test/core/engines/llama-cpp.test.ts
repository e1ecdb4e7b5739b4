/**
 * node-llama-cpp as an optional peer: the one-line refusals when it is absent
 * or another release, and the session's distributions on llama.cpp's own
 * stories260K GGUF against the float64 reference of the same weights.
 */
import {mkdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {NODE_LLAMA_CPP_VERSION, loadLlamaCpp} from '../../../src/core/engines/llama-cpp.js'
import {rejection, skipIf, tempDir} from '../../helpers/index.js'
import {STORIES, agreement, engineDistributions, evalTokenIds, llamaCppMissing, softmax} from '../../helpers/llama-engine.js'
import {LlamaReference} from '../../helpers/llama-reference.js'

const test = suite('engines/llama-cpp')

test('an absent node-llama-cpp is one UsageError line with the install command', async () => {
  const dir = tempDir()
  try {
    const error = await rejection(loadLlamaCpp({searchFrom: [dir.path], purpose: 'test the resolver'}))
    assert.is(error.code, 'ENGINE_NOT_INSTALLED')
    assert.is(error.exitCode, 2)
    assert.is(error.message, `node-llama-cpp is not installed: install node-llama-cpp@${NODE_LLAMA_CPP_VERSION} to test the resolver (npm i -E node-llama-cpp@${NODE_LLAMA_CPP_VERSION})`)
  } finally {
    dir.cleanup()
  }
})

test('another release of node-llama-cpp is refused by name, version and place', async () => {
  const dir = tempDir()
  try {
    const pkg = join(dir.path, 'node_modules', 'node-llama-cpp')
    mkdirSync(pkg, {recursive: true})
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({name: 'node-llama-cpp', version: '3.0.0', main: 'index.js'}))
    writeFileSync(join(pkg, 'index.js'), 'export {}\n')
    const error = await rejection(loadLlamaCpp({searchFrom: [dir.path]}))
    assert.is(error.code, 'ENGINE_VERSION')
    assert.match(error.message, new RegExp(`^node-llama-cpp 3\\.0\\.0 found at .*node-llama-cpp: lora needs exactly ${NODE_LLAMA_CPP_VERSION.replace(/\./g, '\\.')} `))
  } finally {
    dir.cleanup()
  }
})

const real = skipIf(test, llamaCppMissing())

real("llama.cpp's own stories260K GGUF gives the float64 reference's distributions (KL < 1e-5, top-1 ≥ 99%)", async () => {
  const ids = await evalTokenIds()
  const reference = await LlamaReference.fromHfFolder(join(STORIES, 'hf'))
  const expected = ids.map((seq) => reference.logits(seq).map(softmax))
  const got = await engineDistributions(join(STORIES, 'gguf/stories260K.gguf'), ids, reference.config.vocab)
  const a = agreement(expected, got)
  console.log(`\n  stories260K.gguf vs float64 reference: mean KL ${a.meanKl.toExponential(2)}, top-1 ${(100 * a.top1).toFixed(1)}% over ${a.positions} positions`)
  assert.ok(a.positions > 2000, `${a.positions} positions`)
  assert.ok(a.meanKl < 1e-5, `mean KL ${a.meanKl}`)
  assert.ok(a.top1 >= 0.99, `top-1 ${a.top1}`)
})

test.run()
