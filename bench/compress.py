#!/usr/bin/env python3
"""NumPy/LAPACK reference for `npm run bench:compress`: the same shared-B computation as `lora compress`.

  python3 bench/compress.py --pack FILE --rank K --ks 8,16,32 --out FILE --errors FILE

Per module of the lora-pack FILE, in float64: thin QR A_i^T = Q_i R_i of every adapter (batched
np.linalg.qr), C_i = s_i B_i R_i^T, the Gram C C^T [out, out] and its full eigen-decomposition (eigh,
LAPACK syevd), U = the top-K eigenvectors; the stored U^ = dtype(U), A'_i = (U^T U^)^-1 U^T s_i B_i A_i,
stored as dtype(A'_i); and the relative error of the stored values,
  e_i^2 = (|dW|^2 - 2 s_i <U^T B_i, A'_i A_i^T> + <U^T U^, A'_i A'_i^T>) / |dW|^2,
plus the float64 optimum e_i = sqrt(1 - |U_K^T C_i|^2 / |C_i|^2).

Timed: the compression at --rank (reading the pack, computing, writing a lora-pack-shared-b-like
safetensors file to --out). Then, untimed, the errors at every K of --ks (one eigh per module), written as
JSON to --errors. Prints one JSON line: {"seconds": ..., "modules": N}.
"""
import argparse, json, struct, time
import numpy as np

DT = {'F16': np.float16, 'F32': np.float32, 'F64': np.float64}


def read_header(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
    meta = header.pop('__metadata__', {})
    return header, meta, 8 + n


def read_tensor(path, start, info):
    b, e = info['data_offsets']
    dt = DT[info['dtype']]
    arr = np.fromfile(path, dtype=dt, count=(e - b) // np.dtype(dt).itemsize, offset=start + b)
    return arr.reshape(info['shape'])


def module_inputs(path, start, header, manifest, module):
    """Slots, ranks, scalings, and padded A [N, R, in], B [N, out, R] in float64 of one module."""
    slots, ranks, scalings = [], [], []
    for a in manifest['adapters']:
        for m in a['modules']:
            if m['name'] == module['name']:
                slots.append(a['slot']); ranks.append(m['r']); scalings.append(m['scaling'])
    A = read_tensor(path, start, header[module['name'] + '.lora_A'])[slots].astype(np.float64)
    B = read_tensor(path, start, header[module['name'] + '.lora_B'])[slots].astype(np.float64)
    for t, r in enumerate(ranks):  # the padding is zero in a pack; make sure
        A[t, r:, :] = 0
        B[t, :, r:] = 0
    return np.array(slots), np.array(ranks), np.array(scalings, dtype=np.float64), A, B


def basis(A, B, s, ranks):
    """Eigenvalues (largest first) and eigenvectors of C C^T; C's columns; |C_i|^2."""
    N, R, _ = A.shape
    Rf = np.linalg.qr(np.swapaxes(A, 1, 2), mode='r')  # [N, R, R]: A_i^T = Q_i R_i
    C = s[:, None, None] * (B @ np.swapaxes(Rf, 1, 2))  # [N, out, R]
    Cm = np.swapaxes(C, 0, 1).reshape(B.shape[1], N * R)
    w, V = np.linalg.eigh(Cm @ Cm.T)
    return w[::-1], V[:, ::-1], C, (C * C).sum(axis=(1, 2))


def store(U, A, B, s, K, dtype):
    """Stored U^ and A' and the measured errors of the stored values."""
    Uh = U[:, :K].astype(dtype).astype(np.float64)
    G = Uh.T @ Uh
    T = Uh.T @ B  # U^T B_i [N, K, R]
    left = np.linalg.solve(G, T) * s[:, None, None]
    Ap = (left @ A).astype(dtype)  # [N, K, in]
    Ah = Ap.astype(np.float64)
    return Uh, Ap, Ah, T, G


def measured_errors(Ah, A, T, G, s, norms):
    cross = (T * (Ah @ np.swapaxes(A, 1, 2))).sum(axis=(1, 2))
    self = ((Ah @ np.swapaxes(Ah, 1, 2)) * G).sum(axis=(1, 2))
    res = np.maximum(0, norms - 2 * s * cross + self)
    return np.where(norms > 0, np.sqrt(res / np.where(norms > 0, norms, 1)), 0)


def optimum_errors(V, C, K, norms):
    P = V[:, :K].T @ C
    cap = (P * P).sum(axis=(1, 2))
    return np.where(norms > 0, np.sqrt(np.maximum(0, 1 - cap / np.where(norms > 0, norms, 1))), 0)


def write_safetensors(path, tensors, metadata):
    header, offset = {'__metadata__': metadata}, 0
    for name, arr in tensors:
        header[name] = {'dtype': {np.float16: 'F16', np.float32: 'F32'}[arr.dtype.type], 'shape': list(arr.shape), 'data_offsets': [offset, offset + arr.nbytes]}
        offset += arr.nbytes
    text = json.dumps(header, separators=(',', ':')).encode()
    text += b' ' * (-len(text) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for _, arr in tensors:
            f.write(np.ascontiguousarray(arr).tobytes())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--pack', required=True)
    ap.add_argument('--rank', type=int, required=True)
    ap.add_argument('--ks', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--errors', required=True)
    args = ap.parse_args()
    ks = [int(k) for k in args.ks.split(',')]

    t0 = time.perf_counter()
    header, meta, start = read_header(args.pack)
    manifest = json.loads(meta['manifest'])
    dtype = DT[manifest['dtype']]
    S = manifest['slots']
    tensors, errors = [], {}
    for module in manifest['modules']:
        slots, ranks, s, A, B = module_inputs(args.pack, start, header, manifest, module)
        w, V, C, norms = basis(A, B, s, ranks)
        K = min(args.rank, module['out'], int(ranks.sum()))
        Uh, Ap, Ah, T, G = store(V, A, B, s, K, dtype)
        e = measured_errors(Ah, A, T, G, s, norms)
        stacked = np.zeros((S, K, module['in']), dtype=dtype)
        stacked[slots] = Ap
        tensors += [(module['name'] + '.lora_A', stacked), (module['name'] + '.lora_B_shared', V[:, :K].astype(dtype))]
        errors[module['name']] = {'K': K, 'errors': [None] * S}
        for t, slot in enumerate(slots):
            errors[module['name']]['errors'][slot] = float(e[t])
    write_safetensors(args.out, tensors, {'format': 'lora-pack-shared-b', 'errors': json.dumps(errors)})
    seconds = time.perf_counter() - t0

    # Untimed: stored and optimum errors at every K of --ks.
    table = {}
    for module in manifest['modules']:
        slots, ranks, s, A, B = module_inputs(args.pack, start, header, manifest, module)
        w, V, C, norms = basis(A, B, s, ranks)
        rows = {}
        for k in ks:
            K = min(k, module['out'], int(ranks.sum()))
            Uh, Ap, Ah, T, G = store(V, A, B, s, K, dtype)
            rows[str(k)] = {'K': K, 'slots': slots.tolist(), 'stored': measured_errors(Ah, A, T, G, s, norms).tolist(), 'optimum': optimum_errors(V, C, K, norms).tolist()}
        table[module['name']] = rows
    with open(args.errors, 'w') as f:
        json.dump(table, f)
    print(json.dumps({'seconds': seconds, 'modules': len(manifest['modules'])}))


if __name__ == '__main__':
    main()
