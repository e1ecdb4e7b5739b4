import {loadTokenizer} from '/work/runtime/dist/src/core/runtime/tokenizer.js'
import {readFileSync} from 'node:fs'
const S='/work/shared/real-models/stories260K'
const text=readFileSync(S+'/eval.txt','utf8')
const a=await loadTokenizer(S+'/hf'), b=await loadTokenizer(S+'/gguf/stories260K.gguf')
const ia=a.encode(text), ib=b.encode(text)
console.log(ia.length, ib.length, JSON.stringify(ia)===JSON.stringify(ib), ia.slice(0,12), a.bosId, a.eosIds, b.bosId, b.eosIds)
console.log(JSON.stringify(a.decode(ia).slice(0,80)), a.decode(ia)===text, b.decode(ib)===text)
for (const t of ['Once upon a time', 'héllo 🙂 wörld\n\nnew  para', '']) console.log(JSON.stringify(a.encode(t)), JSON.stringify(b.encode(t)))
