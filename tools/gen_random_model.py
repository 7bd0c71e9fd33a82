#!/usr/bin/python3
"""Writes a small random Llama model in the Hugging Face layout.

  /usr/bin/python3 tools/gen_random_model.py OUT_DIR --hidden 64 --ff 128 --layers 2 \\
      --heads 4 --kv-heads 1 --head-dim 128 --vocab 512 --dtype bf16 --shards 3 --untied \\
      --rope-scaling llama3 --rope-factor 8 --rope-low-freq-factor 1 --rope-high-freq-factor 4 \\
      --rope-original-max-pos 32 --rope-theta 500000 --max-pos 256 --seed 7

Output: config.json (LlamaForCausalLM), generation_config.json, model.safetensors or
model-0000N-of-0000K.safetensors with model.safetensors.index.json, and tokenizer.json /
tokenizer_config.json copied from --tokenizer-from (default: models/stories260k, vocab 512).

Needs only numpy (Debian's python3-numpy: run with /usr/bin/python3). The safetensors writer is
self-contained: 8-byte little-endian header length, JSON header (dtype, shape, data_offsets and
"__metadata__": {"format": "pt"}) padded with spaces to a multiple of 8, then the tensor bytes.
BF16 is the f32 value rounded to nearest even; F16 is numpy's (also round-to-nearest-even).

Weights (deterministic for a seed, drawn in float32 then rounded to the storage dtype):
  embed_tokens ~ N(0, embed_std^2) (--embed-std, default 1); linear layers ~ N(0, 1/in_features); norm weights ~ 1 + N(0, 0.1^2);
  lm_head (only when untied) ~ N(0, 1/hidden).
"""
import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np

DEFAULT_TOKENIZER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "stories260k")

DTYPES = {
    # name: (safetensors dtype, torch_dtype, bytes per element)
    "f32": ("F32", "float32", 4),
    "bf16": ("BF16", "bfloat16", 2),
    "f16": ("F16", "float16", 2),
}


def f32_to_bf16_bits(a):
    """float32 array -> uint16 bf16 bit patterns, round to nearest even (no NaN in our data)."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def tensor_bytes(a, dtype):
    if dtype == "f32":
        return np.ascontiguousarray(a, dtype="<f4").tobytes()
    if dtype == "bf16":
        return f32_to_bf16_bits(a).astype("<u2").tobytes()
    if dtype == "f16":
        return np.ascontiguousarray(a, dtype="<f2").tobytes()
    raise ValueError(dtype)


def write_safetensors(path, tensors, dtype):
    """tensors: list of (name, float32 ndarray); all stored as dtype. Returns data bytes written."""
    st_dtype = DTYPES[dtype][0]
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    offset = 0
    for name, a in sorted(tensors, key=lambda t: t[0]):
        b = tensor_bytes(a, dtype)
        header[name] = {"dtype": st_dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((-len(h)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    return offset


def make_tensors(args):
    """The model's tensors in Hugging Face module order, as float32 arrays."""
    rng = np.random.default_rng(args.seed)
    H, F, V = args.hidden, args.ff, args.vocab
    NH, NKV, D = args.heads, args.kv_heads, args.head_dim

    def normal(shape, std):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    def linear(out_f, in_f):
        return normal((out_f, in_f), 1.0 / np.sqrt(in_f))

    def norm(n):
        return (1.0 + rng.standard_normal(n) * 0.1).astype(np.float32)

    t = [("model.embed_tokens.weight", normal((V, H), args.embed_std))]
    for l in range(args.layers):
        p = "model.layers.%d." % l
        t += [
            (p + "self_attn.q_proj.weight", linear(NH * D, H)),
            (p + "self_attn.k_proj.weight", linear(NKV * D, H)),
            (p + "self_attn.v_proj.weight", linear(NKV * D, H)),
            (p + "self_attn.o_proj.weight", linear(H, NH * D)),
            (p + "mlp.gate_proj.weight", linear(F, H)),
            (p + "mlp.up_proj.weight", linear(F, H)),
            (p + "mlp.down_proj.weight", linear(H, F)),
            (p + "input_layernorm.weight", norm(H)),
            (p + "post_attention_layernorm.weight", norm(H)),
        ]
    t.append(("model.norm.weight", norm(H)))
    if not args.tied:
        t.append(("lm_head.weight", linear(V, H)))
    return t


def split_shards(tensors, k, elem_bytes):
    """k contiguous groups (module order) of roughly equal byte size, none empty."""
    sizes = [a.size * elem_bytes for _, a in tensors]
    total = sum(sizes)
    shards, cur, acc = [], [], 0
    for i, (item, size) in enumerate(zip(tensors, sizes)):
        still_needed = k - len(shards) - 1  # shards to open after the current one
        items_left = len(tensors) - i        # including this one
        if cur and still_needed > 0 and (acc + size / 2 > total * (len(shards) + 1) / k
                                         or items_left <= still_needed):
            shards.append(cur)
            cur = []
        cur.append(item)
        acc += size
    shards.append(cur)
    if len(shards) != k:
        raise SystemExit("cannot split %d tensors into %d shards" % (len(tensors), k))
    return shards


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--hidden", type=int, required=True)
    ap.add_argument("--ff", type=int, required=True)
    ap.add_argument("--layers", type=int, required=True)
    ap.add_argument("--heads", type=int, required=True)
    ap.add_argument("--kv-heads", type=int, required=True)
    ap.add_argument("--head-dim", type=int, default=None, help="default hidden/heads")
    ap.add_argument("--vocab", type=int, required=True)
    ap.add_argument("--dtype", choices=sorted(DTYPES), required=True)
    ap.add_argument("--shards", type=int, default=1)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--tied", dest="tied", action="store_true", default=True)
    g.add_argument("--untied", dest="tied", action="store_false")
    ap.add_argument("--rope-scaling", choices=["none", "llama3"], default="none")
    ap.add_argument("--rope-factor", type=float, default=32.0)
    ap.add_argument("--rope-low-freq-factor", type=float, default=1.0)
    ap.add_argument("--rope-high-freq-factor", type=float, default=4.0)
    ap.add_argument("--rope-original-max-pos", type=int, default=8192)
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--max-pos", type=int, default=512)
    ap.add_argument("--eps", type=float, default=1e-5)
    ap.add_argument("--bos", type=int, default=1)
    ap.add_argument("--eos", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--embed-std", type=float, default=1.0,
                    help="std of embed_tokens (tied models: also sets the logit scale, about sqrt(hidden)*std)")
    ap.add_argument("--tokenizer-from", default=DEFAULT_TOKENIZER)
    args = ap.parse_args(argv)

    if args.head_dim is None:
        if args.hidden % args.heads:
            raise SystemExit("hidden must be a multiple of heads when --head-dim is not given")
        args.head_dim = args.hidden // args.heads
    if args.head_dim % 2:
        raise SystemExit("head_dim must be even")
    if args.heads % args.kv_heads:
        raise SystemExit("heads must be a multiple of kv-heads")
    if args.shards < 1:
        raise SystemExit("--shards must be >= 1")

    os.makedirs(args.out_dir, exist_ok=True)
    for name in os.listdir(args.out_dir):  # stale shards from an earlier run would confuse loaders
        if name.endswith(".safetensors") or name == "model.safetensors.index.json":
            os.remove(os.path.join(args.out_dir, name))

    st_dtype, torch_dtype, elem = DTYPES[args.dtype]
    rope_scaling = None
    if args.rope_scaling == "llama3":
        rope_scaling = {
            "rope_type": "llama3",
            "factor": args.rope_factor,
            "low_freq_factor": args.rope_low_freq_factor,
            "high_freq_factor": args.rope_high_freq_factor,
            "original_max_position_embeddings": args.rope_original_max_pos,
        }
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": args.hidden,
        "intermediate_size": args.ff,
        "num_hidden_layers": args.layers,
        "num_attention_heads": args.heads,
        "num_key_value_heads": args.kv_heads,
        "head_dim": args.head_dim,
        "vocab_size": args.vocab,
        "max_position_embeddings": args.max_pos,
        "rms_norm_eps": args.eps,
        "rope_theta": args.rope_theta,
        "rope_scaling": rope_scaling,
        "tie_word_embeddings": args.tied,
        "bos_token_id": args.bos,
        "eos_token_id": args.eos,
        "torch_dtype": torch_dtype,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
    }
    with open(os.path.join(args.out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    with open(os.path.join(args.out_dir, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": args.bos, "eos_token_id": args.eos}, f, indent=2)
        f.write("\n")

    tensors = make_tensors(args)
    if args.shards == 1:
        write_safetensors(os.path.join(args.out_dir, "model.safetensors"), tensors, args.dtype)
    else:
        weight_map = {}
        total = 0
        groups = split_shards(tensors, args.shards, elem)
        for i, group in enumerate(groups):
            fname = "model-%05d-of-%05d.safetensors" % (i + 1, args.shards)
            total += write_safetensors(os.path.join(args.out_dir, fname), group, args.dtype)
            for name, _ in group:
                weight_map[name] = fname
        index = {"metadata": {"total_size": total},
                 "weight_map": {k: weight_map[k] for k in sorted(weight_map)}}
        with open(os.path.join(args.out_dir, "model.safetensors.index.json"), "w") as f:
            json.dump(index, f, indent=2)
            f.write("\n")

    for name in ("tokenizer.json", "tokenizer_config.json"):
        src = os.path.join(args.tokenizer_from, name)
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(args.out_dir, name))
        elif name == "tokenizer.json":
            raise SystemExit("%s not found (use --tokenizer-from)" % src)
    return 0


if __name__ == "__main__":
    sys.exit(main())
