"""NumPy (OpenBLAS) exact k-NN for bench/knn.mjs: prints one JSON object.

usage: python3 bench/numpy_knn.py --queries FILE --pool FILE --dim D --k K --metric cosine|euclidean
       [--out-indices FILE]
FILE: raw float32 rows of D values (the caller's byte order). The pool is searched by query blocks of
1024 rows: one matrix product (queries x pool^T), then argpartition of each row for its k best and a
sort of those k, the way a NumPy user writes it. Cosine divides by the rows' norms; Euclidean ranks by
|q|^2 + |p|^2 - 2 q.p (the square root does not change the order; it is taken of the k kept).
--out-indices writes the [queries x k] int32 indices, best first, so the caller can compare them with
its own. The caller should unset OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, which pin OpenBLAS to slower
kernels.
"""
import argparse
import json
import time

import numpy as np

BLOCK = 1024


def read_rows(path, dim):
    a = np.fromfile(path, dtype=np.float32)
    if a.size % dim != 0:
        raise ValueError(f"{path}: {a.size} values, not rows of {dim}")
    return a.reshape(-1, dim)


def knn(queries, pool, k, metric):
    """[Q, k] indices best first and their scores (cosine similarity, or Euclidean distance)."""
    if metric == "cosine":
        pn = pool / np.maximum(np.linalg.norm(pool, axis=1, keepdims=True), np.float32(1e-30))
    else:
        p2 = np.einsum("ij,ij->i", pool, pool)
    out_i = np.empty((queries.shape[0], k), dtype=np.int32)
    out_s = np.empty((queries.shape[0], k), dtype=np.float32)
    for s in range(0, queries.shape[0], BLOCK):
        q = queries[s : s + BLOCK]
        if metric == "cosine":
            qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), np.float32(1e-30))
            key = -(qn @ pn.T)  # smaller is better
        else:
            q2 = np.einsum("ij,ij->i", q, q)
            key = q2[:, None] + p2[None, :] - 2.0 * (q @ pool.T)
        part = np.argpartition(key, k - 1, axis=1)[:, :k] if k < key.shape[1] else np.tile(np.arange(key.shape[1]), (key.shape[0], 1))
        kept = np.take_along_axis(key, part, axis=1)
        order = np.argsort(kept, axis=1, kind="stable")
        out_i[s : s + BLOCK] = np.take_along_axis(part, order, axis=1)
        best = np.take_along_axis(kept, order, axis=1)
        out_s[s : s + BLOCK] = -best if metric == "cosine" else np.sqrt(np.maximum(best, 0.0))
    return out_i, out_s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", required=True)
    ap.add_argument("--pool", required=True)
    ap.add_argument("--dim", type=int, required=True)
    ap.add_argument("--k", type=int, required=True)
    ap.add_argument("--metric", choices=["cosine", "euclidean"], required=True)
    ap.add_argument("--out-indices")
    args = ap.parse_args()
    queries = read_rows(args.queries, args.dim)
    pool = read_rows(args.pool, args.dim)
    k = min(args.k, pool.shape[0])
    knn(queries[: min(256, queries.shape[0])], pool, k, args.metric)  # warm-up: threads, page faults
    c0 = time.process_time()
    t0 = time.perf_counter()
    indices, _ = knn(queries, pool, k, args.metric)
    secs = time.perf_counter() - t0
    cpu = time.process_time() - c0
    if args.out_indices:
        indices.tofile(args.out_indices)
    print(json.dumps({"numpy": np.__version__, "seconds": secs, "cpuSeconds": cpu, "k": k}))


if __name__ == "__main__":
    main()
