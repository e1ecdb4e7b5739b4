import {GraphBuilder, MS_DOMAIN} from '/work/runtime/dist/src/core/onnx/graph-builder.js'
import ort from 'onnxruntime-node'
const H=16, KV=16, D=64, B=8
const g = new GraphBuilder('gqa')
g.input('q','float32',['B','S',H*D]); g.input('k','float32',['B','S',KV*D]); g.input('v','float32',['B','S',KV*D])
g.input('pk','float32',['B',KV,'P',D]); g.input('pv','float32',['B',KV,'P',D])
g.input('seqlens','int32',['B']); g.input('total','int32',[])
g.node('GroupQueryAttention',['q','k','v','pk','pv','seqlens','total'],{num_heads:H,kv_num_heads:KV},{domain:MS_DOMAIN,outputs:['o','ok','ov']})
g.output('o','float32',['B','S',H*D]); g.output('ok','float32',['B',KV,'T',D]); g.output('ov','float32',['B',KV,'T',D])
const s = await ort.InferenceSession.create(g.encode(), {logSeverityLevel:3, intraOpNumThreads:2})
const T=(d,dims,t='float32')=>new ort.Tensor(t,d,dims)
const q=new Float32Array(B*H*D).fill(0.1), k=new Float32Array(B*KV*D).fill(0.1), v=k
const L=130
async function time(P, mode){
  const kb=new Float32Array(B*KV*P*D), vb=new Float32Array(B*KV*P*D)
  const pk=T(kb,[B,KV,P,D]), pv=T(vb,[B,KV,P,D])
  const feeds={q:T(q,[B,1,H*D]),k:T(k,[B,1,KV*D]),v:T(v,[B,1,KV*D]),pk,pv,seqlens:T(new Int32Array(B).fill(mode==='grow'?P:L),[B],'int32'),total:T(Int32Array.from([mode==='grow'?P+1:L+1]),[],'int32')}
  const ts=[]
  for(let i=0;i<10;i++){const t=performance.now(); if(mode==='inplace') await s.run(feeds,{o:null, ok:pk, ov:pv}); else if (mode==='fetchnull') await s.run(feeds,{o:null,ok:null,ov:null}); else await s.run(feeds); ts.push(performance.now()-t)}
  ts.sort((a,b)=>a-b); return ts[5].toFixed(2)
}
console.log('grow P=130', await time(130,'grow'))
console.log('fetchnull P=130', await time(130,'fetchnull'))
console.log('inplace P=160', await time(160,'inplace'))
console.log('inplace P=512', await time(512,'inplace'))
console.log('inplace P=2048', await time(2048,'inplace'))
