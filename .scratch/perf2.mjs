import {loadDecoder} from '/work/runtime/dist/src/core/runtime/load-decoder.js'
const m=await loadDecoder({base:'/tmp/synth1k', maxPositions: 1024})
const prompt=Array.from({length:128},(_, i)=>(i*7+1)%32000)
const rows=Array.from({length:8},()=>prompt)
for (const cap of [undefined, 256]) {
  let r=await m.model.forward({tokens:rows, cache: m.model.emptyCache(8, cap)})
  let t=Date.now(); for(let i=0;i<10;i++) r=await m.model.forward({tokens:rows.map(()=>[5]), cache:r.cache}); console.log('decode step b8 cap', cap, (Date.now()-t)/10)
}
await m.close()
