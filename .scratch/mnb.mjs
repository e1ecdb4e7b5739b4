import onnxProto from 'onnx-proto'
import ort from 'onnxruntime-node'
const {onnx} = onnxProto
const K=64, N=3, M=2
function model(bits, withZp) {
  const blk=32, nb=K/blk
  const inits=[]
  const B = new Uint8Array(N*nb*blk*bits/8); let seed=3; for(let i=0;i<B.length;i++){seed=(seed*1103515245+12345)&0x7fffffff; B[i]=seed&0xff}
  const scales = Float32Array.from({length:N*nb},(_, i)=>0.01*(i+1))
  inits.push(onnx.TensorProto.create({name:'B',dims:[N,nb,blk*bits/8],dataType:onnx.TensorProto.DataType.UINT8,rawData:B}))
  inits.push(onnx.TensorProto.create({name:'S',dims:[N*nb],dataType:1,rawData:new Uint8Array(scales.buffer)}))
  const node=onnx.NodeProto.create({opType:'MatMulNBits',domain:'com.microsoft',input:['x','B','S'],output:['y'],attribute:[['K',K],['N',N],['bits',bits],['block_size',blk]].map(([n,i])=>onnx.AttributeProto.create({name:n,type:onnx.AttributeProto.AttributeType.INT,i}))})
  const vi=(n,d)=>onnx.ValueInfoProto.create({name:n,type:{tensorType:{elemType:1,shape:{dim:d.map(x=>({dimValue:x}))}}}})
  const m=onnx.ModelProto.create({irVersion:8,opsetImport:[{domain:'',version:17},{domain:'com.microsoft',version:1}],graph:onnx.GraphProto.create({name:'g',node:[node],initializer:inits,input:[vi('x',[M,K])],output:[vi('y',[M,N])]})})
  return {bytes:onnx.ModelProto.encode(m).finish(), B, scales}
}
for (const bits of [4, 8]) {
  try {
  const {bytes,B,scales}=model(bits)
  const s=await ort.InferenceSession.create(bytes)
  const x=Float32Array.from({length:M*K},(_, i)=>Math.sin(i))
  const y=(await s.run({x:new ort.Tensor('float32',x,[M,K])})).y.data
  // reference: W[n][k] = (q - zp) * scale[n*nb + k/32]; 4-bit: element k at byte n*K/2 + k/2, low nibble for even k; zp 8. 8-bit: byte, zp 128
  const nb=K/32; let err=0
  for(let m=0;m<M;m++)for(let n=0;n<N;n++){let acc=0; for(let k=0;k<K;k++){let q, zp; if(bits===4){const b=B[n*K/2+(k>>1)]; q=(k&1)?b>>4:b&15; zp=8} else {q=B[n*K+k]; zp=128} acc+=x[m*K+k]*(q-zp)*scales[n*nb+(k>>5)]} err=Math.max(err,Math.abs(acc-y[m*N+n]))}
  console.log('bits',bits,'max err',err)
  } catch(e){console.log('bits',bits,'fail',e.message.slice(0,200))}
}
