import {join} from 'node:path'
import {STORIES, agreement, engineDistributions, evalTokenIds, softmax} from './helpers/llama-engine.js'
import {LlamaReference} from './helpers/llama-reference.js'
import {referenceFromGguf} from './helpers/gguf-model-reference.js'
const file = process.argv[2]!
const adapter = process.argv[3]
const ids = await evalTokenIds()
const base = await LlamaReference.fromHfFolder(join(STORIES, 'hf'))
const merged = base.clone()
if (adapter) await merged.mergeAdapter(adapter)
const {model: deq, types} = referenceFromGguf(merged, file)
console.log([...new Set(types.values())])
const P = ids.map((s) => merged.logits(s).map(softmax))
const Q = ids.map((s) => deq.logits(s).map(softmax))
const L = await engineDistributions(file, ids, 512)
console.log('ref||deq', agreement(P, Q), 'ref||llama', agreement(P, L), 'deq vs llama', agreement(Q, L))
