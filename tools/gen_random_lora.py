#!/usr/bin/python3
"""Writes a random PEFT LoRA adapter for a Hugging Face Llama model folder.

  /usr/bin/python3 tools/gen_random_lora.py MODEL_DIR OUT_DIR --rank 8 --alpha 16 \\
      --targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj --dtype bf16 --seed 1

Output, as PEFT's save_pretrained writes it:
  adapter_config.json        peft_type LORA, r, lora_alpha, target_modules, use_rslora,
                             fan_in_fan_out false, bias "none", task_type CAUSAL_LM
  adapter_model.safetensors  base_model.model.model.layers.N.{self_attn,mlp}.X_proj.lora_A.weight
                             (r x in) and .lora_B.weight (out x r), in F32, F16 or BF16

Shapes come from MODEL_DIR/config.json. Values (deterministic for a seed, drawn in float32, then
rounded to the storage dtype): A ~ N(0, 1/in), B ~ N(0, b_std^2 / r). PEFT initialises B to zero;
a random B is what a trained adapter looks like to the runtime, and with scaling = alpha/r (or
alpha/sqrt(r) with --rslora) the update scaling * B A has entries of standard deviation
scaling * b_std / sqrt(in), against 1/sqrt(in) for the random model's weights: the defaults
(alpha = 2r, b_std 0.25) change each projection by about half its size, which moves the logits
well beyond rounding.

Needs only numpy (Debian's python3-numpy: run with /usr/bin/python3); the safetensors writer is
tools/gen_random_model.py's.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.dont_write_bytecode = True  # leave no __pycache__ in tools/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_random_model import write_safetensors  # noqa: E402

MODULES = {
    # name: (path inside a layer, out features, in features) as functions of the config
    "q_proj": ("self_attn.q_proj", lambda c: c["heads"] * c["head_dim"], lambda c: c["hidden"]),
    "k_proj": ("self_attn.k_proj", lambda c: c["kv_heads"] * c["head_dim"], lambda c: c["hidden"]),
    "v_proj": ("self_attn.v_proj", lambda c: c["kv_heads"] * c["head_dim"], lambda c: c["hidden"]),
    "o_proj": ("self_attn.o_proj", lambda c: c["hidden"], lambda c: c["heads"] * c["head_dim"]),
    "gate_proj": ("mlp.gate_proj", lambda c: c["ff"], lambda c: c["hidden"]),
    "up_proj": ("mlp.up_proj", lambda c: c["ff"], lambda c: c["hidden"]),
    "down_proj": ("mlp.down_proj", lambda c: c["hidden"], lambda c: c["ff"]),
}


def model_shapes(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    heads = cfg["num_attention_heads"]
    return {
        "hidden": cfg["hidden_size"],
        "ff": cfg["intermediate_size"],
        "layers": cfg["num_hidden_layers"],
        "heads": heads,
        "kv_heads": cfg.get("num_key_value_heads", heads),
        "head_dim": cfg.get("head_dim") or cfg["hidden_size"] // heads,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=None, help="lora_alpha (default 2 * rank)")
    ap.add_argument("--targets", default=",".join(MODULES))
    ap.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32")
    ap.add_argument("--rslora", action="store_true", help="use_rslora: scaling alpha/sqrt(r)")
    ap.add_argument("--b-std", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    shapes = model_shapes(args.model_dir)
    targets = [t for t in args.targets.split(",") if t]
    for t in targets:
        if t not in MODULES:
            raise SystemExit("unknown target %s (one of %s)" % (t, ", ".join(MODULES)))
    alpha = args.alpha if args.alpha is not None else 2.0 * args.rank
    rng = np.random.default_rng(args.seed)
    tensors = []
    for layer in range(shapes["layers"]):
        for t in targets:
            path, out_f, in_f = MODULES[t]
            n_out, n_in = out_f(shapes), in_f(shapes)
            base = "base_model.model.model.layers.%d.%s." % (layer, path)
            a = (rng.standard_normal((args.rank, n_in)) / np.sqrt(n_in)).astype(np.float32)
            b = (rng.standard_normal((n_out, args.rank)) * args.b_std / np.sqrt(args.rank)).astype(np.float32)
            tensors += [(base + "lora_A.weight", a), (base + "lora_B.weight", b)]

    os.makedirs(args.out_dir, exist_ok=True)
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": os.path.basename(os.path.normpath(args.model_dir)),
        "r": args.rank,
        "lora_alpha": alpha,
        "lora_dropout": 0.0,
        "target_modules": targets,
        "use_rslora": args.rslora,
        "fan_in_fan_out": False,
        "bias": "none",
        "use_dora": False,
        "modules_to_save": None,
        "layers_to_transform": None,
        "rank_pattern": {},
        "alpha_pattern": {},
        "inference_mode": True,
    }
    with open(os.path.join(args.out_dir, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(args.out_dir, "adapter_model.safetensors"), tensors, args.dtype)
    return 0


if __name__ == "__main__":
    sys.exit(main())
