import {GraphBuilder} from '/work/runtime/dist/src/core/onnx/graph-builder.js'
import {InitializerStore} from '/work/runtime/dist/src/core/runtime/initializer-store.js'
import {buildDecoderGraph} from '/work/runtime/dist/src/core/runtime/decoder-graph.js'
import {openDecoderWeights} from '/work/runtime/dist/src/core/runtime/load-decoder.js'
import {sessionOptions} from '/work/runtime/dist/src/core/onnx/session.js'
import ort from 'onnxruntime-node'
import onnxProto from 'onnx-proto'
import {readFileSync} from 'node:fs'
const w = await openDecoderWeights('/work/shared/real-models/stories260K/hf')
const g = new GraphBuilder('d'); const store = InitializerStore.inline(g)
await buildDecoderGraph({weights: w, store, maxPositions: 512})
const enc = await store.finish()
const opts = {...sessionOptions({ep:'cpu'}), optimizedModelFilePath: '/tmp/opt.onnx'}
await ort.InferenceSession.create(enc.bytes, opts)
const m = onnxProto.onnx.ModelProto.decode(readFileSync('/tmp/opt.onnx'))
const counts = {}; for (const n of m.graph.node) counts[n.opType] = (counts[n.opType]||0)+1
console.log(counts)
