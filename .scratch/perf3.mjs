import {loadDecoder} from '/work/runtime/dist/src/core/runtime/load-decoder.js'
const m=await loadDecoder({base:'/tmp/synth1k', maxPositions: 1024})
const prompt=Array.from({length:128},(_, i)=>(i*7+1)%32000)
const rows=Array.from({length:8},()=>prompt)
const caches={}
for (const cap of ['grow', 160, 512]) caches[cap]=(await m.model.forward({tokens:rows, cache: cap==='grow'?undefined:m.model.emptyCache(8, cap)})).cache
const times={grow:[],160:[],512:[]}
for (let i=0;i<8;i++) for (const cap of ['grow',160,512]) { const t=performance.now(); const r=await m.model.forward({tokens:rows.map(()=>[5]), cache:caches[cap]}); caches[cap]=r.cache; times[cap].push(performance.now()-t) }
for (const k in times) { const s=times[k].sort((a,b)=>a-b); console.log(k, 'median', s[4].toFixed(1)) }
await m.close()
