#!/usr/bin/env node
// Write oclif.manifest.json from the built commands (dist/src/commands), as `oclif manifest` does, with
// @oclif/core's own Plugin loader: with the manifest a start reads one JSON file instead of importing every
// command to list them. Run by `npm run build` after tsc; the file is ignored by git and shipped by npm.
import {renameSync, writeFileSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {Plugin} from '@oclif/core'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const plugin = new Plugin({root, type: 'core', isRoot: true, ignoreManifest: true, errorOnManifestCreate: true, respectNoCacheDefault: true})
await plugin.load()
const file = join(root, 'oclif.manifest.json')
const temp = `${file}.tmp-${process.pid}`
writeFileSync(temp, `${JSON.stringify(plugin.manifest, null, 2)}\n`)
renameSync(temp, file)
