/**
 * docs/commands.md, generated from the oclif command metadata (the same data
 * `--help` and `oclif manifest` use), so the reference cannot drift from the
 * code: a test regenerates it and compares.
 */
import {Config} from '@oclif/core'

type LoadedFlag = {
  name: string
  char?: string
  description?: string
  summary?: string
  type: 'boolean' | 'option'
  default?: unknown
  options?: readonly string[]
  required?: boolean
  multiple?: boolean
  hidden?: boolean
  exactlyOne?: string[]
  exclusive?: string[]
}

type LoadedArg = {name: string; description?: string; required?: boolean}

function flagUsage(f: LoadedFlag): string {
  const name = `--${f.name}${f.char ? ` (-${f.char})` : ''}`
  if (f.type === 'boolean') return name
  const value = f.options ? f.options.join('|') : f.name.toUpperCase().replace(/-/g, '_')
  return `${name} ${value}`
}

/** Markdown for every command of the CLI rooted at `root`. */
export async function renderCommandsDoc(root: string): Promise<string> {
  const config = await Config.load({root})
  const bin = config.bin
  const commands = [...config.commands].filter((c) => !c.hidden).sort((a, b) => a.id.localeCompare(b.id))
  const out: string[] = [
    '# Commands',
    '',
    `Generated from the command definitions by \`npm run docs:commands\`; a test fails when this file is stale. Every command also takes \`--json\` (one JSON document on stdout; errors as \`{"error": {"code", "message", "exitCode"}}\`) and \`--help\`. Exit codes: 0 ok, 1 a quality or regression gate failed, 2 bad input or usage, 3 internal error.`,
    '',
  ]
  for (const c of commands) out.push(`- [\`${bin} ${c.id.replace(/:/g, ' ')}\`](#${`${bin}-${c.id.replace(/:/g, '-')}`})`)
  out.push('')
  for (const c of commands) {
    const id = c.id.replace(/:/g, ' ')
    const args = Object.values(c.args ?? {}) as LoadedArg[]
    const flags = (Object.values(c.flags ?? {}) as LoadedFlag[]).filter((f) => !f.hidden && f.name !== 'json')
    out.push(`## \`${bin} ${id}\``, '', c.summary ?? '', '')
    const usage = [
      `${bin} ${id}`,
      ...args.map((a) => (a.required ? a.name.toUpperCase() : `[${a.name.toUpperCase()}]`)),
      ...flags.map((f) => (f.required ? flagUsage(f) : `[${flagUsage(f)}]`)),
      '[--json]',
    ].join(' ')
    out.push('```', usage, '```', '')
    if (c.description) out.push(c.description, '')
    if (args.length > 0) {
      out.push('| argument | description |', '|---|---|')
      for (const a of args) out.push(`| \`${a.name.toUpperCase()}\` | ${(a.description ?? '').replace(/\|/g, '\\|')}${a.required ? ' (required)' : ''} |`)
      out.push('')
    }
    if (flags.length > 0) {
      out.push('| flag | description | default |', '|---|---|---|')
      for (const f of flags) {
        const notes = [f.required ? 'required' : '', f.exactlyOne ? `exactly one of ${f.exactlyOne.map((x) => `--${x}`).join(', ')}` : '', f.exclusive?.length ? `not with ${f.exclusive.map((x) => `--${x}`).join(', ')}` : '']
          .filter(Boolean)
          .join('; ')
        const description = `${f.summary ?? f.description ?? ''}${notes ? ` (${notes})` : ''}`.replace(/\|/g, '\\|')
        const def = f.default === undefined || typeof f.default === 'function' ? '' : `\`${String(f.default)}\``
        out.push(`| \`${flagUsage(f).replace(/\|/g, '\\|')}\` | ${description} | ${def} |`)
      }
      out.push('')
    }
    const examples = (c.examples ?? []) as Array<string | {command: string; description: string}>
    if (examples.length > 0) {
      out.push('Examples:', '', '```')
      for (const e of examples) {
        if (typeof e === 'string') out.push(e.replace(/<%= config\.bin %>/g, bin))
        else out.push(`# ${e.description}`, `${e.command.replace(/<%= config\.bin %>/g, bin)}`)
      }
      out.push('```', '')
    }
  }
  return `${out.join('\n').trimEnd()}\n`
}
