import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {runCli, tempDir} from '../helpers/index.js'

const test = suite('command plan')

// hidden 8, intermediate 12, 1 layer, vocab 10, GQA: the hand-worked case of test/core/plan/placement-plan.test.ts
const config = {hidden_size: 8, intermediate_size: 12, num_hidden_layers: 1, vocab_size: 10, num_attention_heads: 2, num_key_value_heads: 1}

test('--json: the ladder with the budget boundary at the + MLP stage (2272 bytes fit exactly, one byte less does not)', async () => {
  const tmp = tempDir()
  try {
    const path = join(tmp.path, 'config.json')
    writeFileSync(path, JSON.stringify(config))
    const exact = await runCli(['plan', '--config', path, '--adapters', '3', '--rank', '2', '--budget', '2272B', '--json'])
    assert.is(exact.status, 0, exact.stderr)
    const report = JSON.parse(exact.stdout)
    assert.is(report.furthest_fitting, '+ MLP')
    assert.equal(report.stages.map((s: {bytes: number}) => s.bytes).slice(0, 4), [960, 1264, 2272, 2576])
    const under = await runCli(['plan', '--config', path, '--adapters', '3', '--rank', '2', '--budget', '2271B', '--json'])
    assert.is(JSON.parse(under.stdout).furthest_fitting, '+ embeddings')
    const none = await runCli(['plan', '--config', path, '--adapters', '3', '--rank', '2', '--budget', '959B'])
    assert.is(none.status, 0)
    assert.match(none.stdout, /Nothing fits/)
  } finally {
    tmp.cleanup()
  }
})

for (const bad of ['-1GB', '12XB']) {
  test(`--budget ${bad}: one clear line, exit 2`, async () => {
    const tmp = tempDir()
    try {
      const path = join(tmp.path, 'config.json')
      writeFileSync(path, JSON.stringify(config))
      const r = await runCli(['plan', '--config', path, '--adapters', '3', '--budget', bad])
      assert.is(r.status, 2)
      assert.is(r.stdout, '')
      assert.is(r.stderr.trim().split('\n').length, 1, r.stderr)
      assert.match(r.stderr, /--budget/)
    } finally {
      tmp.cleanup()
    }
  })
}

test('a missing config file is named in the error, exit 2', async () => {
  const r = await runCli(['plan', '--config', '/nonexistent/config.json', '--adapters', '3', '--budget', '1GB'])
  assert.is(r.status, 2)
  assert.match(r.stderr, /\/nonexistent\/config\.json/)
})

test.run()
