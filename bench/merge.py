#!/usr/bin/env python3
"""NumPy reference for `npm run bench:merge`: the same merge and NF4 math as `lora merge`, streamed tensor by tensor.

  python3 bench/merge.py --base DIR --adapter DIR --out DIR --mode f16|nf4

Merge: W' = W + s * B @ A in float32 (B, A decoded from the adapter), written as f16 (--mode f16),
or quantized to NF4 (blocks of 64, absmax scaling, nearest code, ties to the lower code, first element
in the high nibble) in the transformers + bitsandbytes layout (--mode nf4). Prints one JSON line:
{"seconds": ..., "max_rss_bytes": ..., "parameters": ...}.
"""
import argparse, json, os, resource, struct, time
import numpy as np

NF4 = np.array([-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
                -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
                0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
                0.7229568362236023, 1.0], dtype=np.float32)
THRESHOLDS = ((NF4[1:].astype(np.float64) + NF4[:-1].astype(np.float64)) / 2).astype(np.float32)
DT = {'F16': np.float16, 'F32': np.float32, 'BF16': None, 'U8': np.uint8}


def read_header(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
    header.pop('__metadata__', None)
    return header, 8 + n


def read_tensor(path, start, info):
    b, e = info['data_offsets']
    arr = np.fromfile(path, dtype=DT[info['dtype']], count=(e - b) // np.dtype(DT[info['dtype']]).itemsize, offset=start + b)
    return arr.reshape(info['shape'])


def quantize_nf4(x, block=64):
    flat = x.reshape(-1, block)
    absmax = np.abs(flat).max(axis=1)
    with np.errstate(divide='ignore'):
        inv = (np.float32(1) / absmax).astype(np.float32)
    norm = flat * inv[:, None]
    codes = np.searchsorted(THRESHOLDS, norm, side='left').astype(np.uint8).reshape(-1)
    codes[np.repeat(absmax == 0, block)] = 7
    packed = (codes[0::2] << 4) | codes[1::2]
    return packed, absmax.astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--base', required=True)
    ap.add_argument('--adapter', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--mode', choices=['f16', 'nf4'], required=True)
    args = ap.parse_args()
    t0 = time.perf_counter()
    base_path = os.path.join(args.base, 'model.safetensors')
    header, start = read_header(base_path)
    cfg = json.load(open(os.path.join(args.adapter, 'adapter_config.json')))
    scale = cfg['lora_alpha'] / cfg['r']
    ad_path = os.path.join(args.adapter, 'adapter_model.safetensors')
    ad_header, ad_start = read_header(ad_path)
    modules = {}
    for k in ad_header:
        if k.endswith('.lora_A.weight'):
            m = k[len('base_model.model.'):-len('.lora_A.weight')]
            modules[m + '.weight'] = (k, k.replace('.lora_A.', '.lora_B.'))
    names = sorted(header, key=lambda n: header[n]['data_offsets'][0])
    out_specs = []
    for n in names:
        info = header[n]
        count = int(np.prod(info['shape'])) if info['shape'] else 1
        if args.mode == 'nf4' and n in modules:
            blocks = count // 64
            state = json.dumps({'quant_type': 'nf4', 'blocksize': 64, 'dtype': 'float16', 'shape': info['shape']}).encode()
            out_specs += [(n, 'U8', [count // 2, 1]), (n + '.absmax', 'F32', [blocks]), (n + '.quant_map', 'F32', [16]),
                          (n + '.quant_state.bitsandbytes__nf4', 'U8', [len(state)])]
        else:
            out_specs.append((n, 'F16', info['shape']))
    offsets, entries, off = {}, {'__metadata__': {'format': 'pt'}}, 0
    for name, dt, shape in out_specs:
        size = int(np.prod(shape)) * {'U8': 1, 'F16': 2, 'F32': 4}[dt]
        entries[name] = {'dtype': dt, 'shape': shape, 'data_offsets': [off, off + size]}
        offsets[name] = off
        off += size
    hj = json.dumps(entries, separators=(',', ':')).encode()
    hj += b' ' * ((8 - (8 + len(hj)) % 8) % 8)
    os.makedirs(args.out, exist_ok=True)
    out_path = os.path.join(args.out, 'model.safetensors')
    data_start = 8 + len(hj)
    params = 0
    with open(out_path, 'wb') as f:
        f.write(struct.pack('<Q', len(hj)) + hj)
        f.truncate(data_start + off)
        for n in names:
            info = header[n]
            w = read_tensor(base_path, start, info)
            params += w.size
            if n in modules:
                ka, kb = modules[n]
                a = read_tensor(ad_path, ad_start, ad_header[ka]).astype(np.float32)
                b = read_tensor(ad_path, ad_start, ad_header[kb]).astype(np.float32)
                merged = w.astype(np.float32)
                merged += (np.float32(scale) * b) @ a
                if args.mode == 'nf4':
                    packed, absmax = quantize_nf4(merged)
                    state = json.dumps({'quant_type': 'nf4', 'blocksize': 64, 'dtype': 'float16', 'shape': info['shape']}).encode()
                    for name, data in [(n, packed), (n + '.absmax', absmax), (n + '.quant_map', NF4), (n + '.quant_state.bitsandbytes__nf4', np.frombuffer(state, np.uint8))]:
                        f.seek(data_start + offsets[name])
                        f.write(np.ascontiguousarray(data).tobytes())
                    continue
                w = merged.astype(np.float16)
            f.seek(data_start + offsets[n])
            f.write(np.ascontiguousarray(w).tobytes())
    seconds = time.perf_counter() - t0
    print(json.dumps({'seconds': seconds, 'max_rss_bytes': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, 'parameters': params}))


if __name__ == '__main__':
    main()
