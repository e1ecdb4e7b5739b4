import {existsSync, readdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {runCli, tempDir} from '../helpers/index.js'

const test = suite('command pack / unpack')

async function synth(dir: string, extra: string[] = []): Promise<void> {
  const r = await runCli(['synth', 'adapters', '--out', dir, '--count', '3', '--ranks', '4,8', '--hidden', '32', '--intermediate', '48', '--layers', '2', '--json', ...extra])
  assert.is(r.status, 0, r.stderr)
}

test('pack --json prints the documented object alone; unpack and inspect read the pack', async () => {
  const tmp = tempDir()
  try {
    await synth(join(tmp.path, 'ad'))
    const out = join(tmp.path, 'pack.safetensors')
    const r = await runCli(['pack', join(tmp.path, 'ad'), '--out', out, '--json'])
    assert.is(r.status, 0, r.stderr)
    assert.is(r.stderr, '')
    const result = JSON.parse(r.stdout)
    assert.equal(Object.keys(result).sort(), ['adapters', 'bytes_in', 'bytes_out', 'dtype', 'modules', 'out', 'padding_bytes', 'seconds', 'slots', 'warnings'])
    assert.equal({adapters: result.adapters, slots: result.slots, modules: result.modules, dtype: result.dtype}, {adapters: 3, slots: 4, modules: 8, dtype: 'F16'})
    for (const k of ['adapters', 'slots', 'modules', 'bytes_in', 'bytes_out', 'padding_bytes', 'seconds']) assert.type(result[k], 'number', k)
    assert.is(result.bytes_out, readFileSync(out).byteLength)
    // R = 8 everywhere; slot 0 and the rank-4 adapters' columns 4..7 are padding: (4·8 − 4 − 8 − 4)·(32 + 32)·2 bytes per module
    assert.is(result.padding_bytes, 8 * (4 * 8 - 16) * 64 * 2)

    const u = await runCli(['unpack', out, '--adapter', 'adapter-0001', '--out', join(tmp.path, 'u1'), '--json'])
    assert.is(u.status, 0, u.stderr)
    const unpacked = JSON.parse(u.stdout)
    assert.equal(Object.keys(unpacked).sort(), ['bytes', 'dtype', 'exact', 'modules', 'name', 'out', 'slot', 'warnings'])
    assert.equal([unpacked.name, unpacked.slot, unpacked.exact, unpacked.dtype], ['adapter-0001', 2, true, 'F16'])
    assert.ok(readFileSync(join(tmp.path, 'u1/adapter_model.safetensors')).equals(readFileSync(join(tmp.path, 'ad/adapter-0001/adapter_model.safetensors'))))

    const i = await runCli(['inspect', out, '--json'])
    assert.is(i.status, 0, i.stderr)
    const report = JSON.parse(i.stdout)
    assert.is(report.kind, 'pack')
    assert.equal([report.pack.format, report.pack.slots, report.pack.adapters, report.pack.modules.length], ['lora-pack', 4, 3, 8])
    assert.is(report.pack.bytes.padding, result.padding_bytes)
    const human = await runCli(['inspect', out])
    assert.is(human.status, 0)
    assert.match(human.stdout, /lora-pack v1 by lora-toolkit .*: 3 adapters in 4 slots \(slot 0 = no adapter\), 8 modules, F16/)
    assert.match(human.stdout, /padding: 16\.00 KiB of zeros \(\d+\.\d% of the file\): rank padding 8\.00 KiB .*null slot 8\.00 KiB/)
    assert.match(human.stdout, /model\.layers\.1\.self_attn\.v_proj\s+linear\s+32\s+32\s+8\s+3\s+4\.\.8/)
  } finally {
    tmp.cleanup()
  }
})

test('plain output: a summary line on stdout; a glob and --list; warnings on stderr', async () => {
  const tmp = tempDir()
  try {
    await synth(join(tmp.path, 'ad'))
    await synth(join(tmp.path, 'other'), ['--dtype', 'bf16', '--seed', '2'])
    const r = await runCli(['pack', join(tmp.path, 'ad/adapter-000[02]'), '--out', join(tmp.path, 'p.safetensors')])
    assert.is(r.status, 0, r.stderr)
    assert.match(r.stdout, /^packed 2 adapters into .*p\.safetensors: 3 slots \(slot 0 = no adapter\), 8 modules, F16\n/)
    const list = join(tmp.path, 'list.txt')
    writeFileSync(list, `# two sets\n${join(tmp.path, 'ad/adapter-0000')}\n\n${join(tmp.path, 'other')}/adapter-000[1]\n`)
    const listed = await runCli(['pack', '--list', list, '--out', join(tmp.path, 'q.safetensors')])
    assert.is(listed.status, 0, listed.stderr)
    assert.match(listed.stdout, /^packed 2 adapters/)
    assert.match(listed.stderr, /^Warning: adapters store different dtypes \(F16: 8 modules, BF16: 8 modules\); packed as F32 \(exact\); choose with --dtype\n$/)
    // the second set repeats the folder names of the first
    writeFileSync(list, `${join(tmp.path, 'ad')}\n${join(tmp.path, 'other')}/*\n`)
    const clash = await runCli(['pack', '--list', list, '--out', join(tmp.path, 'r.safetensors')])
    assert.is(clash.status, 2)
    assert.match(clash.stderr, /^Error: pack: adapters .*ad\/adapter-0000 and .*other\/adapter-0000 are both named "adapter-0000" \(names must be unique: rename a folder or use --names-from config\)\n$/)
    assert.not.ok(existsSync(join(tmp.path, 'r.safetensors')))
  } finally {
    tmp.cleanup()
  }
})

test('bad input: exit 2, one line on stderr or a JSON error, no output file', async () => {
  const tmp = tempDir()
  try {
    await synth(join(tmp.path, 'ad'))
    const out = join(tmp.path, 'p.safetensors')
    const plain = await runCli(['pack', join(tmp.path, 'nothing-*'), '--out', out])
    assert.is(plain.status, 2)
    assert.is(plain.stdout, '')
    assert.match(plain.stderr, /^Error: glob ".*nothing-\*" matches nothing\n$/)
    const json = await runCli(['pack', join(tmp.path, 'nothing-*'), '--out', out, '--json'])
    assert.is(json.status, 2)
    assert.equal(JSON.parse(json.stdout).error.code, 'PACK_GLOB_NO_MATCH')
    const none = await runCli(['pack', '--out', out])
    assert.is(none.status, 2)
    assert.match(none.stderr, /give adapter folders, globs, or --list FILE/)
    assert.equal(readdirSync(tmp.path), ['ad'])

    const good = await runCli(['pack', join(tmp.path, 'ad'), '--out', out])
    assert.is(good.status, 0)
    const both = await runCli(['unpack', out, '--adapter', 'adapter-0000', '--slot', '1', '--out', join(tmp.path, 'u')])
    assert.is(both.status, 2)
    const slot0 = await runCli(['unpack', out, '--slot', '0', '--out', join(tmp.path, 'u')])
    assert.is(slot0.status, 2)
    const unknown = await runCli(['unpack', out, '--adapter', 'nope', '--out', join(tmp.path, 'u'), '--json'])
    assert.is(unknown.status, 2)
    assert.is(JSON.parse(unknown.stdout).error.code, 'PACK_NO_SUCH_ADAPTER')
    assert.not.ok(existsSync(join(tmp.path, 'u')))
  } finally {
    tmp.cleanup()
  }
})

test.run()
