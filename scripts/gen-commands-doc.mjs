#!/usr/bin/env node
// Regenerate docs/commands.md from the command definitions (run after `npm run build`).
import {writeFileSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const {renderCommandsDoc} = await import(join(root, 'dist/src/cli/commands-doc.js'))
writeFileSync(join(root, 'docs/commands.md'), await renderCommandsDoc(root))
console.log('wrote docs/commands.md')
