import {GraphBuilder, MS_DOMAIN} from '/work/runtime/dist/src/core/onnx/graph-builder.js'
import ort from 'onnxruntime-node'
const H=4, KV=2, D=8
const g = new GraphBuilder('gqa')
g.input('q','float32',['B','S',H*D]); g.input('k','float32',['B','S',KV*D]); g.input('v','float32',['B','S',KV*D])
g.input('pk','float32',['B',KV,'P',D]); g.input('pv','float32',['B',KV,'P',D])
g.input('seqlens','int32',['B']); g.input('total','int32',[])
g.node('GroupQueryAttention',['q','k','v','pk','pv','seqlens','total'],{num_heads:H,kv_num_heads:KV},{domain:MS_DOMAIN,outputs:['o','ok','ov']})
g.output('o','float32',['B','S',H*D]); g.output('ok','float32',['B',KV,'T',D]); g.output('ov','float32',['B',KV,'T',D])
const s = await ort.InferenceSession.create(g.encode(), {logSeverityLevel:3})
let seed=1; const rnd=()=>{seed=(seed*16807)%2147483647; return seed/2147483647-0.5}
const arr=n=>Float32Array.from({length:n},rnd)
// reference attention for one row: q[S][H*D], k,v [T][KV*D] full (past+new), queries at positions pos0..pos0+S-1
function ref(q,k,v,S,pos0){const out=new Float64Array(S*H*D); for(let s=0;s<S;s++)for(let h=0;h<H;h++){const kvh=Math.floor(h/(H/KV)); const p=pos0+s; const sc=[]; let m=-1e30; for(let t=0;t<=p;t++){let d=0; for(let i=0;i<D;i++) d+=q[(s*H+h)*D+i]*k[(t*KV+kvh)*D+i]; d/=Math.sqrt(D); sc.push(d); m=Math.max(m,d)} let z=0; const e=sc.map(x=>{const y=Math.exp(x-m); z+=y; return y}); for(let t=0;t<=p;t++) for(let i=0;i<D;i++) out[(s*H+h)*D+i]+=e[t]/z*v[(t*KV+kvh)*D+i]} return out}
const T=(d,dims,t='float32')=>new ort.Tensor(t,d,dims)
async function run(B,S,P,seqlens,total,q,k,v,pk,pv){return s.run({q:T(q,[B,S,H*D]),k:T(k,[B,S,KV*D]),v:T(v,[B,S,KV*D]),pk:T(pk,[B,KV,P,D]),pv:T(pv,[B,KV,P,D]),seqlens:T(Int32Array.from(seqlens),[B],'int32'),total:T(Int32Array.from([total]),[],'int32')})}
// prompt: B=2, S=5, row lengths 5 and 3
{const B=2,S=5; const q=arr(B*S*H*D),k=arr(B*S*KV*D),v=arr(B*S*KV*D)
 const r=await run(B,S,0,[4,2],5,q,k,v,new Float32Array(0),new Float32Array(0))
 console.log('present dims',r.ok.dims)
 for(const [b,len] of [[0,5],[1,3]]){const R=ref(q.slice(b*S*H*D),k.slice(b*S*KV*D),v.slice(b*S*KV*D),len,0); let e=0; for(let i=0;i<len*H*D;i++) e=Math.max(e,Math.abs(R[i]-r.o.data[b*S*H*D+i])); console.log('prompt row',b,'err',e)}
 // decode: row lengths 5 and 3 → add one token each; past buffer P=5
 const q2=arr(B*H*D),k2=arr(B*KV*D),v2=arr(B*KV*D)
 const r2=await run(B,1,5,[5,3],6,q2,k2,v2,r.ok.data,r.ov.data)
 console.log('decode present dims', r2.ok.dims)
 for(const [b,len] of [[0,5],[1,3]]){ // gather full k for row b in [T][KV*D]
   const kk=[],vv=[]; for(let t=0;t<len;t++)for(let h=0;h<KV;h++)for(let i=0;i<D;i++){kk.push(k[(b*S+t)*KV*D+h*D+i]); vv.push(v[(b*S+t)*KV*D+h*D+i])}
   for(let h=0;h<KV;h++)for(let i=0;i<D;i++){} 
   for(let i=0;i<KV*D;i++){kk.push(k2[b*KV*D+i]); vv.push(v2[b*KV*D+i])}
   const R=ref(q2.slice(b*H*D),kk,vv,1,len); let e=0; for(let i=0;i<H*D;i++) e=Math.max(e,Math.abs(R[i]-r2.o.data[b*H*D+i])); console.log('decode row',b,'err',e)
 }
 // subsequent prompt with batch 2: S=2 new tokens, past 5 and 3
 try { const q3=arr(B*2*H*D),k3=arr(B*2*KV*D),v3=arr(B*2*KV*D); const r3=await run(B,2,5,[6,4],7,q3,k3,v3,r.ok.data,r.ov.data); console.log('subsequent batch2 ok', r3.ok.dims)
   for(const [b,len] of [[0,5],[1,3]]){const kk=[],vv=[]; for(let t=0;t<len;t++)for(let i=0;i<KV*D;i++){kk.push(k[(b*S+t)*KV*D+i]); vv.push(v[(b*S+t)*KV*D+i])}
     for(let t=0;t<2;t++)for(let i=0;i<KV*D;i++){kk.push(k3[(b*2+t)*KV*D+i]); vv.push(v3[(b*2+t)*KV*D+i])}
     const R=ref(q3.slice(b*2*H*D),kk,vv,2,len); let e=0; for(let i=0;i<2*H*D;i++) e=Math.max(e,Math.abs(R[i]-r3.o.data[b*2*H*D+i])); console.log('subseq row',b,'err',e)}
 } catch(e){console.log('subsequent batch2 fails:', e.message.slice(0,200))}
}
