import {join} from 'node:path'
import {STORIES, agreement, engineDistributions, evalTokenIds, softmax} from './helpers/llama-engine.js'
import {LlamaReference} from './helpers/llama-reference.js'
const [file, adapter, lora] = process.argv.slice(2)
const ids = await evalTokenIds()
const base = await LlamaReference.fromHfFolder(join(STORIES, 'hf'))
const merged = base.clone()
if (adapter) await merged.mergeAdapter(adapter)
const P = ids.map((s) => merged.logits(s).map(softmax))
const L = await engineDistributions(file!, ids, 512, lora ? [{path: lora}] : [])
console.log('ref||llama', agreement(P, L))
