#!/usr/bin/python3
"""Generates the random-model fixtures of tests/test_random_models.c (run once; the files are
committed and the test runs offline).

  /usr/bin/python3 tests/oracle/make_fixtures.py [OUT_ROOT]      (default tests/data/random)

For each model below it runs tools/gen_random_model.py, then the float64 oracle
(tests/oracle/llama_oracle.py) on a fixed id sequence, and writes into OUT_ROOT/<name>/:
  expected.json          ids, n_vocab, max_abs_logit, provenance, and sanity figures
  expected_logits.f32    the oracle's logits at every position: little-endian float32,
                         row-major [len(ids)][n_vocab]
The sanity figures show the fixture is discriminating: "f32_oracle_max_abs_diff" is how far the
same forward pass in float32 arithmetic lands (what an honest f32 runtime may drift by), and
"mutations" gives the max abs logit change caused by typical mistakes (interleaved RoPE pairs,
ignoring llama3 rope scaling, wrong GQA head mapping, tied/untied confusion).
"""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))

import gen_random_model  # noqa: E402
import llama_oracle  # noqa: E402

LLAMA3 = ["--rope-scaling", "llama3", "--rope-factor", "8", "--rope-low-freq-factor", "1",
          "--rope-high-freq-factor", "4", "--rope-original-max-pos", "32", "--rope-theta", "500000",
          "--max-pos", "256"]

# name, generator arguments (after OUT_DIR), number of ids
MODELS = [
    # (a) f32, head_dim 64 (= hidden/heads), GQA ratio 1, tied, one file
    ("f32_mha_hd64_tied",
     ["--hidden", "128", "--ff", "128", "--layers", "2", "--heads", "2", "--kv-heads", "2",
      "--vocab", "512", "--dtype", "f32", "--tied", "--embed-std", "0.3", "--rope-theta", "10000", "--max-pos", "128",
      "--eps", "1e-5", "--seed", "101"], 24),
    # (b) bf16, explicit head_dim 128 with hidden 64, GQA ratio 4, llama3 scaling, untied, 3 shards
    ("bf16_gqa4_hd128_llama3_untied_3shards",
     ["--hidden", "64", "--ff", "128", "--layers", "2", "--heads", "4", "--kv-heads", "1",
      "--head-dim", "128", "--vocab", "512", "--dtype", "bf16", "--untied", "--shards", "3",
      "--eps", "1e-5", "--seed", "202"] + LLAMA3, 48),
    # (c) bf16, GQA ratio 3 (6/2), explicit head_dim 32 with hidden 96, tied, 2 shards
    ("bf16_gqa3_hd32_tied_2shards",
     ["--hidden", "96", "--ff", "160", "--layers", "2", "--heads", "6", "--kv-heads", "2",
      "--head-dim", "32", "--vocab", "512", "--dtype", "bf16", "--tied", "--embed-std", "0.3", "--shards", "2",
      "--rope-theta", "10000", "--max-pos", "128", "--eps", "1e-6", "--seed", "303"], 24),
    # (d) f16, explicit head_dim 64 with hidden 64, GQA ratio 2, llama3 scaling, tied, one file
    ("f16_gqa2_hd64_llama3_tied",
     ["--hidden", "64", "--ff", "96", "--layers", "2", "--heads", "2", "--kv-heads", "1",
      "--head-dim", "64", "--vocab", "512", "--dtype", "f16", "--tied", "--embed-std", "0.5",
      "--eps", "1e-5", "--seed", "404"] + LLAMA3, 48),
]


def fixed_ids(n, vocab, seed):
    rng = np.random.default_rng(seed)
    return [1] + [int(t) for t in rng.integers(3, vocab, size=n - 1)]


def maxdiff(a, b):
    return float(np.max(np.abs(a - b)))


def main(argv):
    out_root = argv[0] if argv else os.path.join(ROOT, "tests", "data", "random")
    for name, gen_args, n_ids in MODELS:
        d = os.path.join(out_root, name)
        gen_random_model.main([d] + gen_args)
        m = llama_oracle.Llama(d)
        vocab = m.cfg["vocab_size"]
        seed = int(gen_args[gen_args.index("--seed") + 1])
        ids = fixed_ids(n_ids, vocab, seed + 1)
        logits = m.forward(ids)

        f32 = llama_oracle.Llama(d, np.float32).forward(ids).astype(np.float64)
        mutations = {
            "rope_interleaved_pairs": maxdiff(logits, m.forward(ids, rope_pairs="interleaved")),
        }
        if m.n_kv != m.n_head and m.n_kv > 1:
            mutations["gqa_kv_head_modulo"] = maxdiff(logits, m.forward(ids, kv_map="modulo"))
        if m.cfg.get("rope_scaling"):
            saved = m.inv_freq
            m.inv_freq = llama_oracle.rope_inv_freq(dict(m.cfg, rope_scaling=None), m.head_dim)
            mutations["llama3_scaling_ignored"] = maxdiff(logits, m.forward(ids))
            m.inv_freq = saved
        if not m.tied:
            saved = m.lm_head
            m.lm_head = m.w["model.embed_tokens.weight"]
            mutations["lm_head_from_embeddings"] = maxdiff(logits, m.forward(ids))
            m.lm_head = saved

        logits.astype("<f4").tofile(os.path.join(d, "expected_logits.f32"))
        files = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))
        expected = {
            "name": name,
            "generator": "/usr/bin/python3 tools/gen_random_model.py tests/data/random/%s %s" % (name, " ".join(gen_args)),
            "oracle": "tests/oracle/llama_oracle.py, float64 arithmetic, weights widened exactly",
            "ids": ids,
            "n_vocab": vocab,
            "logits_file": "expected_logits.f32",
            "logits_layout": "little-endian float32, row-major [len(ids)][n_vocab], position 0 first",
            "max_abs_logit": float(np.max(np.abs(logits))),
            "f32_oracle_max_abs_diff": maxdiff(logits, f32),
            "mutations": mutations,
            "weight_files": files,
        }
        with open(os.path.join(d, "expected.json"), "w") as f:
            json.dump(expected, f, indent=1)
            f.write("\n")
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        print("%-40s ids %2d  max|logit| %6.2f  f32-vs-f64 %.2e  size %7d B  mutations %s" % (
            name, len(ids), expected["max_abs_logit"], expected["f32_oracle_max_abs_diff"], size,
            ", ".join("%s %.3g" % kv for kv in mutations.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
