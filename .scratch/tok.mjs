import {GgufFile} from '/work/runtime/dist/src/core/formats/gguf-reader.js'
import {readFileSync} from 'node:fs'
const f = await GgufFile.open('/work/shared/real-models/stories260K/gguf/stories260K.gguf')
const tokens=f.value('tokenizer.ggml.tokens').items, scores=f.value('tokenizer.ggml.scores').items, types=f.value('tokenizer.ggml.token_type').items
console.log(tokens.slice(259,275), scores.slice(259,275), types.slice(259,275))
const hf=JSON.parse(readFileSync('/work/shared/real-models/stories260K/hf/tokenizer.json','utf8'))
console.log(Object.entries(hf.model.vocab).slice(255,275))
// generate merges transformers-style
const vocab=new Map(tokens.map((t,i)=>[t,i]))
let merges=[]
tokens.forEach((piece,i)=>{ if(types[i]!==1) return; const local=[]; for(let k=1;k<piece.length;k++){const l=piece.slice(0,k), r=piece.slice(k); if(vocab.has(l)&&vocab.has(r)) local.push([l,r,scores[i]])} local.sort((a,b)=>vocab.get(a[0])-vocab.get(b[0])||vocab.get(a[1])-vocab.get(b[1])); merges.push(...local)})
merges.sort((a,b)=>b[2]-a[2])
const m2=merges.map(m=>m[0]+' '+m[1])
console.log(m2.length, hf.model.merges.length, JSON.stringify(m2)===JSON.stringify(hf.model.merges))
for(let i=0;i<m2.length;i++) if(m2[i]!==hf.model.merges[i]){console.log('diff at',i,m2.slice(i,i+5),hf.model.merges.slice(i,i+5));break}
