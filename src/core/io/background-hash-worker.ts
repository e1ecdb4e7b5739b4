/**
 * The worker of `BackgroundHasher`: sha256 streams keyed by id. Messages:
 * `{type: 'update', id, chunk}` (answered with `{type: 'ack', bytes}`) and
 * `{type: 'digest', id}` (answered with `{type: 'digest', id, hex}`).
 */
import {createHash} from 'node:crypto'
import type {Hash} from 'node:crypto'
import {parentPort} from 'node:worker_threads'

type Message = {type: 'update'; id: number; chunk: Uint8Array} | {type: 'digest'; id: number}

const streams = new Map<number, Hash>()

parentPort!.on('message', (m: Message) => {
  if (m.type === 'update') {
    let hash = streams.get(m.id)
    if (!hash) streams.set(m.id, (hash = createHash('sha256')))
    hash.update(m.chunk)
    parentPort!.postMessage({type: 'ack', bytes: m.chunk.byteLength})
  } else {
    const hash = streams.get(m.id) ?? createHash('sha256')
    streams.delete(m.id)
    parentPort!.postMessage({type: 'digest', id: m.id, hex: hash.digest('hex')})
  }
})
