import {loadDecoder} from '/work/runtime/dist/src/core/runtime/load-decoder.js'
import {LlamaReference} from '/work/runtime/dist/test/helpers/llama-reference.js'
const S='/work/shared/real-models/stories260K'
const ids=[1, 403, 407, 261, 378, 11, 356, 292, 261, 30, 40]
const ref=await LlamaReference.fromHfFolder(S+'/hf')
const R=ref.logits(ids)
for (const base of [S+'/hf', S+'/gguf/stories260K.gguf']) {
  const t0=Date.now()
  const m=await loadDecoder({base})
  console.log(base, 'load ms', Date.now()-t0, m.model.summary)
  const [L]=await m.model.sequenceLogits([ids])
  let maxd=0, maxr=0
  for(let p=0;p<ids.length;p++) for(let v=0;v<512;v++){maxd=Math.max(maxd,Math.abs(L[p*512+v]-R[p][v])); maxr=Math.max(maxr,Math.abs(R[p][v]))}
  console.log('max abs diff', maxd, 'rel', maxd/maxr)
  await m.close()
}
