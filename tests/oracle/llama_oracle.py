#!/usr/bin/python3
"""Independent numpy reference forward pass of Hugging Face LlamaForCausalLM.

Run it with Debian's interpreter (/usr/bin/python3, numpy from python3-numpy); it needs nothing
else. It reads a model folder on its own: config.json, then model.safetensors or the shards
listed in model.safetensors.index.json, with its own safetensors parser (F32, BF16 and F16).

Precision: every weight is widened exactly to float64 (BF16: its 16 bits become the high half of
an f32; F16: IEEE half -> float64) and the whole forward pass runs in float64. That is stricter
than Hugging Face's float32 arithmetic, so the oracle's own error is far below the tolerance the
tests use. The order of operations follows transformers' modeling_llama.py:

  h = embed_tokens[ids]
  per layer:
    x  = rmsnorm(h, input_layernorm)            x * 1/sqrt(mean(x^2) + eps) * w
    q, k, v = x Wq^T, x Wk^T, x Wv^T            [n, heads*head_dim], [n, kv*head_dim]
    q, k = rope(q), rope(k)                     rotate_half: pairs (i, i + head_dim/2)
    k, v = repeat_kv(k, v)                      kv head j serves query heads j*g .. j*g+g-1
    a  = softmax(q k^T / sqrt(head_dim) + causal mask) v
    h  = h + a Wo^T
    x  = rmsnorm(h, post_attention_layernorm)
    h  = h + (silu(x Wg^T) * (x Wu^T)) Wd^T
  logits = rmsnorm(h, norm) W_lm^T              W_lm = lm_head.weight, or embed_tokens when tied

RoPE frequencies: inv_freq[i] = 1 / theta^(2i/head_dim), i < head_dim/2, rescaled by the
"llama3" rule of transformers' _compute_llama3_parameters when config.rope_scaling asks for it.

Usage as a script:
  /usr/bin/python3 tests/oracle/llama_oracle.py MODEL_DIR ID [ID ...]      prints last-position top 10
  /usr/bin/python3 tests/oracle/llama_oracle.py --check-golden MODEL_DIR   compares with golden.json
"""
import json
import math
import os
import struct
import sys

import numpy as np


# ------------------------------------------------------------------------------- safetensors

def read_safetensors(path):
    """Returns {name: float64 ndarray} for one .safetensors file."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError("%s: too short" % path)
    (hlen,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + hlen].decode("utf-8"))
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = info["dtype"]
        shape = tuple(info["shape"])
        begin, end = info["data_offsets"]
        raw = blob[base + begin:base + end]
        count = int(np.prod(shape)) if shape else 1
        if dtype == "F32":
            a = np.frombuffer(raw, dtype="<f4", count=count).astype(np.float64)
        elif dtype == "BF16":
            bits = np.frombuffer(raw, dtype="<u2", count=count).astype(np.uint32) << 16
            a = bits.view(np.float32).astype(np.float64)
        elif dtype == "F16":
            a = np.frombuffer(raw, dtype="<f2", count=count).astype(np.float64)
        elif dtype == "F64":
            a = np.frombuffer(raw, dtype="<f8", count=count).astype(np.float64)
        else:
            raise ValueError("%s: tensor %s has unsupported dtype %s" % (path, name, dtype))
        if len(raw) != count * {"F32": 4, "BF16": 2, "F16": 2, "F64": 8}[dtype]:
            raise ValueError("%s: tensor %s has %d bytes for shape %s" % (path, name, len(raw), shape))
        out[name] = a.reshape(shape)
    return out


def load_weights(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        weights = {}
        for shard in sorted(set(weight_map.values())):
            part = read_safetensors(os.path.join(model_dir, shard))
            for name in part:
                if weight_map.get(name) != shard:
                    raise ValueError("%s is in %s but the index says %s" % (name, shard, weight_map.get(name)))
            weights.update(part)
        missing = set(weight_map) - set(weights)
        if missing:
            raise ValueError("tensors missing from the shards: %s" % sorted(missing))
        return weights
    return read_safetensors(os.path.join(model_dir, "model.safetensors"))


# ------------------------------------------------------------------------------- model

def rope_inv_freq(cfg, head_dim):
    theta = float(cfg.get("rope_theta", 10000.0))
    inv_freq = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    rs = cfg.get("rope_scaling")
    if rs:
        kind = rs.get("rope_type", rs.get("type"))
        if kind == "default":
            return inv_freq
        if kind != "llama3":
            raise ValueError("rope_scaling type %r is not handled by the oracle" % kind)
        factor = float(rs["factor"])
        low = float(rs["low_freq_factor"])
        high = float(rs["high_freq_factor"])
        orig = float(rs["original_max_position_embeddings"])
        low_freq_wavelen = orig / low
        high_freq_wavelen = orig / high
        wavelen = 2.0 * math.pi / inv_freq
        scaled = np.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
        smooth = (orig / wavelen - low) / (high - low)
        smoothed = (1.0 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
        inv_freq = np.where(medium, smoothed, scaled)
    return inv_freq


def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def rope_interleaved(x, freqs):
    """The GPT-J/Meta-checkpoint pairing (2i, 2i+1): wrong for HF-layout weights."""
    c, s = np.cos(freqs)[:, None, :], np.sin(freqs)[:, None, :]
    a, b = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = a * c - b * s
    out[..., 1::2] = a * s + b * c
    return out


def silu(x):
    return x / (1.0 + np.exp(-x))


class Llama:
    """dtype: the arithmetic type (float64 for the oracle; float32 only to estimate how far an
    honest float32 implementation may drift from it)."""

    def __init__(self, model_dir, dtype=np.float64):
        self.dtype = dtype
        with open(os.path.join(model_dir, "config.json")) as f:
            self.cfg = json.load(f)
        c = self.cfg
        self.n_embd = c["hidden_size"]
        self.n_layer = c["num_hidden_layers"]
        self.n_head = c["num_attention_heads"]
        self.n_kv = c.get("num_key_value_heads") or self.n_head
        self.head_dim = c.get("head_dim") or self.n_embd // self.n_head
        self.eps = float(c.get("rms_norm_eps", 1e-6))
        self.tied = bool(c.get("tie_word_embeddings", False))
        self.w = {k: v.astype(dtype) for k, v in load_weights(model_dir).items()}
        self.inv_freq = rope_inv_freq(c, self.head_dim)
        if self.tied or "lm_head.weight" not in self.w:
            self.lm_head = self.w["model.embed_tokens.weight"]
        else:
            self.lm_head = self.w["lm_head.weight"]
        if self.n_head % self.n_kv:
            raise ValueError("heads not a multiple of kv heads")

    def forward(self, ids, rope_pairs="half", kv_map="repeat"):
        """Logits [len(ids), vocab] for every position of ids, starting at position 0.

        rope_pairs and kv_map select deliberate mistakes ("interleaved": RoPE on pairs (2i, 2i+1);
        "modulo": query head h reads kv head h % n_kv) used only to show that the fixtures catch
        them; the defaults are Hugging Face's behaviour."""
        W = self.w
        n = len(ids)
        nh, nkv, hd = self.n_head, self.n_kv, self.head_dim
        group = nh // nkv
        h = W["model.embed_tokens.weight"][np.asarray(ids)]
        pos = np.arange(n, dtype=np.float64)
        freqs = np.outer(pos, self.inv_freq)                  # [n, hd/2]
        emb = np.concatenate([freqs, freqs], axis=-1)          # [n, hd]
        cos = np.cos(emb)[:, None, :].astype(self.dtype)
        sin = np.sin(emb)[:, None, :].astype(self.dtype)
        mask = np.triu(np.full((n, n), -np.inf), k=1).astype(self.dtype)
        scale = 1.0 / math.sqrt(hd)
        for l in range(self.n_layer):
            p = "model.layers.%d." % l
            x = rmsnorm(h, W[p + "input_layernorm.weight"], self.eps)
            q = (x @ W[p + "self_attn.q_proj.weight"].T).reshape(n, nh, hd)
            k = (x @ W[p + "self_attn.k_proj.weight"].T).reshape(n, nkv, hd)
            v = (x @ W[p + "self_attn.v_proj.weight"].T).reshape(n, nkv, hd)
            if rope_pairs == "half":
                q = q * cos + rotate_half(q) * sin
                k = k * cos + rotate_half(k) * sin
            else:
                q, k = rope_interleaved(q, freqs), rope_interleaved(k, freqs)
            if kv_map == "repeat":
                k = np.repeat(k, group, axis=1)                # repeat_kv
                v = np.repeat(v, group, axis=1)
            else:
                k = np.tile(k, (1, group, 1))
                v = np.tile(v, (1, group, 1))
            q, k, v = (t.transpose(1, 0, 2) for t in (q, k, v))  # [heads, n, hd]
            s = q @ k.transpose(0, 2, 1) * scale + mask
            s = s - s.max(axis=-1, keepdims=True)
            pr = np.exp(s)
            pr /= pr.sum(axis=-1, keepdims=True)
            a = (pr @ v).transpose(1, 0, 2).reshape(n, nh * hd)
            h = h + a @ W[p + "self_attn.o_proj.weight"].T
            x = rmsnorm(h, W[p + "post_attention_layernorm.weight"], self.eps)
            g = x @ W[p + "mlp.gate_proj.weight"].T
            u = x @ W[p + "mlp.up_proj.weight"].T
            h = h + (silu(g) * u) @ W[p + "mlp.down_proj.weight"].T
        h = rmsnorm(h, W["model.norm.weight"], self.eps)
        return h @ self.lm_head.T


def check_golden(model_dir):
    with open(os.path.join(model_dir, "golden.json")) as f:
        golden = json.load(f)
    m = Llama(model_dir)
    worst = 0.0
    for p in golden["prompts"]:
        logits = m.forward(p["input_ids"])[-1]
        ref = np.asarray(p["logits_last_prompt_position"], dtype=np.float64)
        d = float(np.max(np.abs(logits - ref)))
        worst = max(worst, d)
        print("%-40r n=%-3d max|diff| %.3g  argmax %d/%d" % (p["prompt"][:38], len(p["input_ids"]), d,
                                                         int(np.argmax(logits)), int(np.argmax(ref))))
    print("max abs logit diff vs golden.json: %.3g" % worst)
    return worst


def main(argv):
    if len(argv) >= 2 and argv[0] == "--check-golden":
        worst = check_golden(argv[1])
        return 0 if worst <= 1e-4 else 1
    if len(argv) < 2:
        print(__doc__)
        return 2
    m = Llama(argv[0])
    logits = m.forward([int(t) for t in argv[1:]])[-1]
    top = np.argsort(-logits)[:10]
    for t in top:
        print(int(t), "%.6f" % logits[t])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
