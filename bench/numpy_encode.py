"""Eager NumPy baseline of the embedding model's encode, for bench/run.mjs: prints one JSON object.

usage: python3 bench/numpy_encode.py --model DIR [--repeats 3] [--batches N] [--out-embeddings FILE]
DIR holds model.safetensors (float32, LlamaModel key names + dense_layer), config.json (ours: vocab,
hidden, intermediate, layers, heads, kvHeads, headDim, dense, rmsEps, ropeTheta) and batches.json (a list
of batches, each a list of token-id lists). Every batch runs the way a padded PyTorch stack runs it:
right-padded to its longest text, full [B, L, L] causal softmax attention, mean pooling over the mask,
L2 normalisation, all float32. --out-embeddings writes the first batch's embeddings (raw float32) so the
runner can check that both implementations compute the same thing.
The caller should unset OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, which pin OpenBLAS to slower kernels.
"""
import argparse
import json
import os
import statistics
import struct
import time

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            raise ValueError(f"{path}: tensor {name} is {t['dtype']}, expected F32")
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=np.float32).reshape(t["shape"])
    return out


def rms_norm(x, w, eps):
    var = np.mean(x * x, axis=-1, keepdims=True)
    return (x / np.sqrt(var + eps)) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


class Model:
    def __init__(self, cfg, w):
        self.cfg, self.w = cfg, w
        hd = cfg["headDim"]
        # inverse frequencies in float32, as transformers computes them
        self.inv_freq = (1.0 / (cfg["ropeTheta"] ** (np.arange(0, hd, 2, dtype=np.int64).astype(np.float32) / hd))).astype(np.float32)
        # transposed weights once, so each projection is a plain x @ W^T matmul
        self.t = {k: np.ascontiguousarray(v.T) for k, v in w.items() if v.ndim == 2 and k != "embed_tokens.weight"}

    def rope_tables(self, L):
        pos = np.arange(L, dtype=np.float32)
        freqs = np.outer(pos, self.inv_freq)  # [L, hd/2]
        emb = np.concatenate([freqs, freqs], axis=-1)  # [L, hd]
        return np.cos(emb).astype(np.float32), np.sin(emb).astype(np.float32)

    def encode(self, ids, mask):
        # Written the way a careful eager implementation would be: projections as single 2-D GEMMs
        # over all B*L rows, heads made contiguous before the batched attention GEMMs, softmax in place.
        c, w, t = self.cfg, self.w, self.t
        B, L = ids.shape
        nh, nkv, hd, eps = c["heads"], c["kvHeads"], c["headDim"], c["rmsEps"]
        cos, sin = self.rope_tables(L)
        causal = np.triu(np.full((L, L), -np.inf, dtype=np.float32), k=1)  # [L, L]
        scale = np.float32(1.0 / np.sqrt(hd))

        def heads(y, n):  # [B*L, n*hd] -> [B, n, L, hd] contiguous
            return np.ascontiguousarray(y.reshape(B, L, n, hd).transpose(0, 2, 1, 3))

        h = w["embed_tokens.weight"][ids.reshape(-1)]  # [B*L, H]
        for i in range(c["layers"]):
            p = f"layers.{i}."
            x = rms_norm(h, w[p + "input_layernorm.weight"], eps)
            q = heads(x @ t[p + "self_attn.q_proj.weight"], nh)
            k = heads(x @ t[p + "self_attn.k_proj.weight"], nkv)
            v = heads(x @ t[p + "self_attn.v_proj.weight"], nkv)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            if nkv != nh:  # GQA: each kv head serves nh/nkv query heads
                k = np.repeat(k, nh // nkv, axis=1)
                v = np.repeat(v, nh // nkv, axis=1)
            s = np.matmul(q, k.swapaxes(-1, -2))  # [B, nh, L, L]
            s *= scale
            s += causal
            s -= s.max(axis=-1, keepdims=True)
            np.exp(s, out=s)
            s /= s.sum(axis=-1, keepdims=True)
            o = np.matmul(s, v).transpose(0, 2, 1, 3).reshape(B * L, nh * hd)
            h = h + o @ t[p + "self_attn.o_proj.weight"]
            x = rms_norm(h, w[p + "post_attention_layernorm.weight"], eps)
            g = x @ t[p + "mlp.gate_proj.weight"]
            u = x @ t[p + "mlp.up_proj.weight"]
            h = h + ((g / (1.0 + np.exp(-g))) * u) @ t[p + "mlp.down_proj.weight"]
        h = rms_norm(h, w["norm.weight"], eps)
        y = (h @ t["dense_layer.weight"] + w["dense_layer.bias"]).reshape(B, L, -1)  # [B, L, P]
        m = mask[..., None].astype(np.float32)
        pooled = (y * m).sum(axis=1) / m.sum(axis=1)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)


def pad(batch):
    L = max(len(s) for s in batch)
    ids = np.zeros((len(batch), L), dtype=np.int64)  # pad = unk (id 0), right padding
    mask = np.zeros((len(batch), L), dtype=np.int64)
    for i, s in enumerate(batch):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    return ids, mask


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out-embeddings")
    ap.add_argument("--batches", type=int, default=0, help="use only the first N batches (0: all)")
    args = ap.parse_args()
    cfg = json.load(open(os.path.join(args.model, "config.json")))
    batches = [pad(b) for b in json.load(open(os.path.join(args.model, "batches.json")))]
    if args.batches > 0:
        batches = batches[: args.batches]
    model = Model(cfg, read_safetensors(os.path.join(args.model, "model.safetensors")))
    first = model.encode(*batches[0])  # warm-up: threads, page faults
    if args.out_embeddings:
        first.astype(np.float32).tofile(args.out_embeddings)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for ids, mask in batches:
            model.encode(ids, mask)
        times.append(time.perf_counter() - t0)
    texts = sum(ids.shape[0] for ids, _ in batches)
    real = int(sum(m.sum() for _, m in batches))
    padded = sum(ids.size for ids, _ in batches)
    med = statistics.median(times)
    print(json.dumps({
        "times": times,
        "texts": texts,
        "realTokens": real,
        "paddedTokens": padded,
        "textsPerSecond": texts / med,
        "realTokensPerSecond": real / med,
        "numpy": np.__version__,
    }))


if __name__ == "__main__":
    main()
