import {GraphBuilder, MS_DOMAIN} from '/work/runtime/dist/src/core/onnx/graph-builder.js'
import ort from 'onnxruntime-node'
const H=4, KV=2, D=8, P=16
const g = new GraphBuilder('gqa')
g.input('q','float32',['B','S',H*D]); g.input('k','float32',['B','S',KV*D]); g.input('v','float32',['B','S',KV*D])
g.input('pk','float32',['B',KV,'P',D]); g.input('pv','float32',['B',KV,'P',D])
g.input('seqlens','int32',['B']); g.input('total','int32',[])
g.node('GroupQueryAttention',['q','k','v','pk','pv','seqlens','total'],{num_heads:H,kv_num_heads:KV},{domain:MS_DOMAIN,outputs:['o','ok','ov']})
g.output('o','float32',['B','S',H*D]); g.output('ok','float32',['B',KV,'T',D]); g.output('ov','float32',['B',KV,'T',D])
const s = await ort.InferenceSession.create(g.encode(), {logSeverityLevel:3})
let seed=1; const rnd=()=>{seed=(seed*16807)%2147483647; return seed/2147483647-0.5}
const arr=n=>Float32Array.from({length:n},rnd)
const T=(d,dims,t='float32')=>new ort.Tensor(t,d,dims)
const B=2
const kbuf=new Float32Array(B*KV*P*D), vbuf=new Float32Array(B*KV*P*D)
const pk=T(kbuf,[B,KV,P,D]), pv=T(vbuf,[B,KV,P,D])
// decode with lengths 3 and 5 (contents arbitrary)
const before = kbuf.slice()
const q=arr(B*H*D),k=arr(B*KV*D),v=arr(B*KV*D)
const r = await s.run({q:T(q,[B,1,H*D]),k:T(k,[B,1,KV*D]),v:T(v,[B,1,KV*D]),pk,pv,seqlens:T(Int32Array.from([3,5]),[B],'int32'),total:T(Int32Array.from([6]),[],'int32')}, {o: T(new Float32Array(B*H*D),[B,1,H*D]), ok: pk, ov: pv})
console.log('present dims', r.ok.dims, 'same buffer', r.ok.data.buffer===kbuf.buffer)
// was the new key written at position 3 for row 0, head 0?
console.log('row0 pos3', Array.from(kbuf.subarray(3*D, 4*D)).map(x=>x.toFixed(3)).join(','), 'k', Array.from(k.subarray(0,D)).map(x=>x.toFixed(3)).join(','))
let changed=0; for(let i=0;i<kbuf.length;i++) if(kbuf[i]!==before[i]) changed++
console.log('changed', changed, 'expected', B*KV*D)
