#!/usr/bin/env node
// Installs the real engines the tests run (test/engines: node-llama-cpp, pinned in its own lock) when missing.
// Kept out of lora's own dependencies: node-llama-cpp brings about 730 MB of prebuilt llama.cpp binaries.
// `npm test` runs this first; it does nothing when the pinned version is already installed.
import {spawnSync} from 'node:child_process'
import {existsSync, readFileSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'test', 'engines')
const wanted = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).dependencies['node-llama-cpp']
const installed = join(dir, 'node_modules', 'node-llama-cpp', 'package.json')
if (existsSync(installed) && JSON.parse(readFileSync(installed, 'utf8')).version === wanted) process.exit(0)

console.error(`install-engines: installing node-llama-cpp@${wanted} into test/engines (about 730 MB, once)`)
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const result = spawnSync(npm, ['ci', '--no-audit', '--no-fund'], {cwd: dir, stdio: ['ignore', 'inherit', 'inherit']})
if (result.status !== 0) {
  console.error(`install-engines: npm ci in ${dir} failed (exit ${result.status ?? result.signal}); the llama.cpp tests will report a skip (or fail under LORA_REQUIRE_ENGINES=1)`)
  process.exit(process.env.LORA_REQUIRE_ENGINES === '1' ? 1 : 0)
}
