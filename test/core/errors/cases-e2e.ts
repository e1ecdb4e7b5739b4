/**
 * Error rows for `lora bench --e2e`: request traces, the KV budget, and the
 * token check (a strategy whose tokens differ from the reference).
 */
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {costTimer} from '../../../src/core/e2e/batch-engine.js'
import {assertTokensEqual, E2eReport} from '../../../src/core/e2e/e2e-report.js'
import {Scheduler} from '../../../src/core/e2e/scheduler.js'
import {FakeEngine, request} from '../e2e/fake-engine.js'
import {ErrorCase, sparseFile} from './fixtures.js'

/** The smallest end-to-end run: a synthetic decoder of hidden 16, two adapters, two requests of 2 + 2 tokens, gather. */
const E2E = ['bench', '--e2e', '--hidden', '16', '--intermediate', '32', '--layers', '1', '--vocab', '32', '--heads', '2', '--adapters', '2', '--rank', '2', '--shared-k', '2', '--requests', '2', '--prompt-tokens', '2', '--gen-tokens', '2', '--strategies', 'gather']
/** `E2E` reading a trace of these lines. */
const trace = (text: string) => (dir: string) => {
  writeFileSync(join(dir, 't.jsonl'), text)
  return [...E2E, '--workload', join(dir, 't.jsonl')]
}

export const E2E_CASES: ErrorCase[] = [
  {code: 'KV_BUDGET_TOO_SMALL', exit: 2, input: '--kv-budget 100 (bytes) where a request needs 4 positions of 128 bytes', cli: () => [...E2E, '--kv-budget', '100']},
  {code: 'TRACE_BAD_LINE', exit: 2, input: 'a trace line without max_tokens', cli: trace('{"prompt_tokens": 2}')},
  {code: 'TRACE_UNKNOWN_ADAPTER', exit: 2, input: 'a trace asking for an adapter not loaded', cli: trace('{"prompt_tokens": 2, "max_tokens": 1, "adapter": "nope"}')},
  {code: 'TRACE_EMPTY', exit: 2, input: 'a trace of blank lines', cli: trace('\n\n')},
  {code: 'TRACE_TOO_LARGE', exit: 2, input: 'a trace of 64 MiB + 1 byte', cli: async (dir) => [...E2E, '--workload', await sparseFile(join(dir, 'big.jsonl'), 64 * 1024 * 1024 + 1)]},
  {
    code: 'BAD_WORKLOAD',
    exit: 2,
    input: 'two requests with one id given to the scheduler (traces refuse them first, as TRACE_BAD_LINE)',
    core: () => new Scheduler({engine: new FakeEngine(), requests: [request('x', [1], 1), request('x', [2], 1)], maxBatch: 2, kvBytesPerToken: 1, policy: 'mixed', timer: costTimer(() => 1)}),
  },
  {
    code: 'TOKENS_DIFFER',
    exit: 1,
    input: 'a report in which gather generated another token than the reference (no strategy of this build does)',
    core: () => {
      const mismatch = {request: 'r0', adapter: 'adapter-0000', position: 3, expected: 5, got: 7}
      assertTokensEqual({results: [{strategy: 'gather', adapters: 2, tokens_equal: false, mismatches: [mismatch]}]} as unknown as E2eReport)
    },
  },
]
