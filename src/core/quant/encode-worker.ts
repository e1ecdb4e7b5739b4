/**
 * The worker thread of `EncodePool`: runs `EncodeTask`s (`encode-task.ts`)
 * on shared memory. Messages: `{id, task}` in, `{id}` or `{id, error}` out
 * once the chunk's encoded bytes are in the shared storage.
 */
import {parentPort} from 'node:worker_threads'
import {ChunkEncoder, EncodeTask, serializeError} from './encode-task.js'

const encoder = new ChunkEncoder()

parentPort!.on('message', (m: {id: number; task: EncodeTask}) => {
  try {
    encoder.run(m.task)
    parentPort!.postMessage({id: m.id})
  } catch (error) {
    parentPort!.postMessage({id: m.id, error: serializeError(error)})
  }
})
