/**
 * Resource bounds checked before a run starts: the bytes a command will write
 * to disk and hold in memory are estimated from its flags and the headers of
 * its inputs, and a run that cannot fit is refused in one line with the
 * estimate ("needs 3.64 TiB on /tmp, 41.20 GiB free") instead of writing a
 * terabyte, aborting V8 with a native stack, or failing after minutes.
 *
 * Limits: free disk space from statfs of the nearest existing folder; memory
 * from /proc/meminfo's MemAvailable (os.freemem elsewhere); one typed array
 * from Node's buffer limit; JavaScript arrays from V8's heap limit.
 */
import {statfsSync} from 'node:fs'
import {constants as bufferConstants} from 'node:buffer'
import {readFileSync} from 'node:fs'
import {freemem} from 'node:os'
import {dirname, resolve} from 'node:path'
import {getHeapStatistics} from 'node:v8'
import {UsageError} from '../errors.js'
import {formatBytes} from '../units.js'

/** The largest typed array or buffer Node allocates (bytes). */
export const MAX_TYPED_ARRAY_BYTES = bufferConstants.MAX_LENGTH

/** Free bytes for an unprivileged writer on the file system holding `path` (or its nearest existing folder); undefined when unknown. */
export function freeDiskBytes(path: string): number | undefined {
  let at = resolve(path)
  for (;;) {
    try {
      const s = statfsSync(at)
      return s.bavail * s.bsize
    } catch {
      const parent = dirname(at)
      if (parent === at) return undefined
      at = parent
    }
  }
}

/** Memory the system can give a new allocation without swapping (bytes). */
export function availableMemoryBytes(): number {
  try {
    const m = /MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'))
    if (m) return Number(m[1]) * 1024
  } catch {
    // not Linux
  }
  return freemem()
}

/** One thing a run will write to disk. */
export interface DiskNeed {
  /** A path inside the file system that receives the bytes (an output, a work folder). */
  path: string
  bytes: number
  /** What, in a few words (`the weight set`). */
  what: string
}

/**
 * Refuse a run whose writes do not fit on their file systems (needs on one
 * file system are summed; a temporary copy written beside its final name counts once).
 * @throws UsageError NOT_ENOUGH_DISK with the estimate and the free space
 */
export function assertDiskFits(needs: readonly DiskNeed[], action: string): void {
  const byDevice = new Map<string, {free: number | undefined; bytes: number; path: string; what: string[]}>()
  for (const n of needs) {
    if (!(n.bytes >= 0)) throw new UsageError('NOT_ENOUGH_DISK', `${action}: ${n.what} would need ${n.bytes} bytes on ${n.path}, which is no size`)
    const free = freeDiskBytes(n.path)
    const key = `${free}:${mountOf(n.path)}`
    const entry = byDevice.get(key) ?? {free, bytes: 0, path: n.path, what: []}
    entry.bytes += n.bytes
    entry.what.push(n.what)
    byDevice.set(key, entry)
  }
  for (const e of byDevice.values()) {
    if (e.free !== undefined && e.bytes > e.free) {
      throw new UsageError('NOT_ENOUGH_DISK', `${action}: ${e.what.join(' and ')} need${e.what.length > 1 ? '' : 's'} ${formatBytes(e.bytes)} on ${e.path}, ${formatBytes(e.free)} free`)
    }
  }
}

/** The statfs identity of a path's file system (its total size and block count distinguish mounts well enough to sum needs). */
function mountOf(path: string): string {
  let at = resolve(path)
  for (;;) {
    try {
      const s = statfsSync(at)
      return `${s.type}:${s.blocks}:${s.bsize}`
    } catch {
      const parent = dirname(at)
      if (parent === at) return 'unknown'
      at = parent
    }
  }
}

/** One thing a run will hold in memory. */
export interface MemoryNeed {
  bytes: number
  what: string
  /** The largest single typed array among them (checked against Node's limit). */
  largestArray?: number
  /** Bytes of JavaScript arrays and objects (checked against V8's heap limit). */
  heap?: number
}

/**
 * Refuse a run that cannot hold what it must in memory.
 * @throws UsageError NOT_ENOUGH_MEMORY with the estimate and what is available
 */
export function assertMemoryFits(needs: readonly MemoryNeed[], action: string): void {
  const total = needs.reduce((s, n) => s + n.bytes, 0)
  const what = needs.map((n) => n.what).join(' and ')
  for (const n of needs) {
    if (n.largestArray !== undefined && !(n.largestArray <= MAX_TYPED_ARRAY_BYTES)) {
      throw new UsageError('NOT_ENOUGH_MEMORY', `${action}: ${n.what} needs one array of ${formatBytes(n.largestArray)}, more than Node allocates at once (${formatBytes(MAX_TYPED_ARRAY_BYTES)})`)
    }
  }
  const heap = needs.reduce((s, n) => s + (n.heap ?? 0), 0)
  const heapLimit = getHeapStatistics().heap_size_limit
  if (!(heap <= heapLimit / 2)) {
    throw new UsageError('NOT_ENOUGH_MEMORY', `${action}: ${what} need about ${formatBytes(heap)} of JavaScript heap, over half of its ${formatBytes(heapLimit)} limit`)
  }
  const available = availableMemoryBytes()
  if (!(total <= available)) {
    throw new UsageError('NOT_ENOUGH_MEMORY', `${action}: ${what} need${needs.length > 1 ? '' : 's'} about ${formatBytes(total)} of memory, ${formatBytes(available)} available`)
  }
}
