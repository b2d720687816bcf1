"""numpy (OpenBLAS) sgemm throughput for bench/gemm.mjs: prints one JSON object.

usage: python3 bench/numpy_gemm.py [--sizes 512,1024,2048] [--repeats 7]
The caller should unset OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, which pin OpenBLAS to slower kernels.
"""
import argparse
import json
import os
import statistics
import time

import numpy as np


def blas_info():
    info = {"numpy": np.__version__}
    try:
        from threadpoolctl import threadpool_info

        info["threadpoolctl"] = threadpool_info()
    except ImportError:
        info["threadpoolctl"] = None  # not installed: fall back to numpy's build config
        try:
            blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
            info["blas"] = {k: blas.get(k) for k in ("name", "version", "openblas configuration")}
        except Exception as err:  # older numpy without mode="dicts"
            info["blas"] = str(err)
    info["env"] = {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS") or k.endswith("_NUM_THREADS")}
    return info


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="512,1024,2048")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    out = {"info": blas_info(), "gflops": {}}
    for n in [int(s) for s in args.sizes.split(",")]:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        c = np.empty((n, n), dtype=np.float32)
        for _ in range(2):  # warm-up: threads, page faults, caches
            np.matmul(a, b, out=c)
        times, cpu = [], []
        for _ in range(args.repeats):
            c0 = time.process_time()  # CPU time of all threads of the process
            t0 = time.perf_counter()
            np.matmul(a, b, out=c)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        gflop = 2.0 * n**3 / 1e9
        out["gflops"][str(n)] = {
            "median": gflop / statistics.median(times),
            "best": gflop / min(times),
            "perCpuSecond": gflop / statistics.median(cpu),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
