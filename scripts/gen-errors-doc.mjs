#!/usr/bin/env node
// Regenerate docs/errors.md from the error-code table and src/ (run after `npm run build`).
import {writeFileSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const {renderErrorsDoc} = await import(join(root, 'dist/test/core/errors/errors-doc.js'))
writeFileSync(join(root, 'docs/errors.md'), renderErrorsDoc())
console.log('wrote docs/errors.md')
process.exit(0)
