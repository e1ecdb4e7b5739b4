import {writeQuantizedGguf} from '/work/runtime/dist/test/helpers/decoder-fixtures.js'
import {loadDecoder} from '/work/runtime/dist/src/core/runtime/load-decoder.js'
import {LlamaReference} from '/work/runtime/dist/test/helpers/llama-reference.js'
import {relativeError} from '/work/runtime/dist/test/helpers/decoder-fixtures.js'
const S='/work/shared/real-models/stories260K'
await writeQuantizedGguf(S+'/gguf/stories260K.gguf','/tmp/s-q4.gguf','Q4_0')
const m=await loadDecoder({base:'/tmp/s-q4.gguf'})
const IDS=[1, 403, 407, 261, 378, 432, 383, 286, 261, 315, 421, 395]
const [l]=await m.model.sequenceLogits([IDS])
const f=await LlamaReference.fromHfFolder(S+'/hf')
console.log('q4 vs float ref', relativeError(l, f.logits(IDS), 512))
