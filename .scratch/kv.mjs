import {loadDecoder} from '/work/runtime/dist/src/core/runtime/load-decoder.js'
import {KvCache} from '/work/runtime/dist/src/core/runtime/kv-cache.js'
const S='/work/shared/real-models/stories260K'
const m=(await loadDecoder({base:S+'/hf'})).model
const a=[1, 403, 407, 261, 378, 11, 356, 292, 261, 30, 40], b=[1, 300, 301, 302, 303, 304]
const [fa, fb]=await m.sequenceLogits([a,b])
const diff=(x,y)=>{let d=0; for(let i=0;i<x.length;i++) d=Math.max(d,Math.abs(x[i]-y[i])); return d}
// prefill first 4 of a and first 2 of b, then decode one by one together
let r=await m.forward({tokens:[a.slice(0,4), b.slice(0,2)]})
console.log('prefill last a', diff(r.logits[0], fa.subarray(3*512,4*512)), 'b', diff(r.logits[1], fb.subarray(1*512,2*512)))
let cache=r.cache
for(let s=0;s<4;s++){ r=await m.forward({tokens:[[a[4+s]],[b[2+s]]], cache}); cache=r.cache
  console.log('step',s,diff(r.logits[0], fa.subarray((4+s)*512,(5+s)*512)), diff(r.logits[1], fb.subarray((2+s)*512,(3+s)*512)), cache.capacity, cache.lengths) }
// mixed: a gets 3 tokens, b is done → take row 0 only
r=await m.forward({tokens:[a.slice(8,11)], cache:cache.take([0]), logits:'all'})
console.log('chunk', diff(r.logits[0], fa.subarray(8*512,11*512)))
// mixed batch: row0 multi-token with past, row1 new
r=await m.forward({tokens:[[a[8],a[9]], b.slice(0,3)], cache: KvCache.concat([cache.take([0]), m.emptyCache(1)]), logits:'all'})
console.log('mixed', diff(r.logits[0], fa.subarray(8*512,10*512)), diff(r.logits[1], fb.subarray(0,3*512)))
