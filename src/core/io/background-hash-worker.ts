/**
 * The worker of `BackgroundHasher`: sha256 streams keyed by id. Messages:
 * `{type: 'update', id, seq, chunk}` (answered `{type: 'ack', seq}` once
 * hashed) and `{type: 'digest', id, seq}` (answered `{type: 'digest', seq, hex}`).
 */
import {createHash} from 'node:crypto'
import type {Hash} from 'node:crypto'
import {parentPort} from 'node:worker_threads'

type Message = {type: 'update'; id: number; seq: number; chunk: Uint8Array} | {type: 'digest'; id: number; seq: number}

const streams = new Map<number, Hash>()

parentPort!.on('message', (m: Message) => {
  let hash = streams.get(m.id)
  if (!hash) streams.set(m.id, (hash = createHash('sha256')))
  if (m.type === 'update') {
    hash.update(m.chunk)
    parentPort!.postMessage({type: 'ack', seq: m.seq})
  } else {
    streams.delete(m.id)
    parentPort!.postMessage({type: 'digest', seq: m.seq, hex: hash.digest('hex')})
  }
})
