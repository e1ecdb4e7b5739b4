/**
 * Memory figures of an end-to-end run: the process's resident set now and
 * at its peak (Linux `/proc/self/status`, else Node's `maxRSS`), and the
 * GPU memory in use where `nvidia-smi` answers (CUDA); other providers
 * expose none to onnxruntime-node (null).
 */
import {spawnSync} from 'node:child_process'
import {readFileSync} from 'node:fs'
import type {ExecutionProvider} from '../onnx/session.js'

/** Resident bytes of this process now. */
export function residentBytes(): number {
  return process.memoryUsage.rss()
}

/** The largest resident set this process has had (bytes). */
export function peakResidentBytes(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))
    if (m) return Number(m[1]) * 1024
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS * 1024
}

/** GPU memory in use (bytes) on the provider's device, or null where it cannot be read. */
export function deviceBytesInUse(ep: ExecutionProvider): number | null {
  if (ep !== 'cuda') return null
  try {
    const r = spawnSync('nvidia-smi', ['--query-gpu=memory.used', '--format=csv,noheader,nounits', '--id=0'], {encoding: 'utf8', timeout: 5000})
    const mib = Number(r.stdout?.trim().split('\n')[0])
    return r.status === 0 && Number.isFinite(mib) ? mib * 2 ** 20 : null
  } catch {
    return null
  }
}
