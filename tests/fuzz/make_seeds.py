#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/NAME/seed-*) from the bundled
models and test fixtures. Run from the repository root; LLM8_BIN (default build/llm8) makes the
session files. Seeds are small on purpose: libFuzzer mutates them thousands of times a second.
Crash regressions (corpus/NAME/crash-*) are committed by hand and never rewritten here."""
import json
import os
import struct
import subprocess
import sys
import tempfile

SEP = b"\n--8<--\n"
ROOT = os.getcwd()
OUT = os.path.join(ROOT, "tests/fuzz/corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def read(path):
    with open(os.path.join(ROOT, path), "rb") as f:
        return f.read()


def jdump(v):
    return json.dumps(v, ensure_ascii=False, separators=(",", ":")).encode()


# ---------------------------------------------------------------- safetensors

def st_file(tensors, meta=None):
    """tensors: list of (name, dtype, shape, nbytes); data is a ramp of bytes."""
    header, off = {}, 0
    for name, dt, shape, nb in tensors:
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + nb]}
        off += nb
    if meta:
        header["__metadata__"] = meta
    h = jdump(header)
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + bytes(i % 251 for i in range(off))


def tiny_llama(dt="F32", tied=True):
    """The fuzz target's tiny shapes: n_embd 4, n_ff 8, 2 heads of 2, 1 KV head, vocab 6."""
    es = {"F32": 4, "F16": 2, "BF16": 2}[dt]
    E, F, Q, KV, V = 4, 8, 4, 2, 6
    t = [("model.embed_tokens.weight", dt, [V, E]), ("model.norm.weight", dt, [E])]
    p = "model.layers.0."
    t += [(p + "input_layernorm.weight", dt, [E]), (p + "self_attn.q_proj.weight", dt, [Q, E]),
          (p + "self_attn.k_proj.weight", dt, [KV, E]), (p + "self_attn.v_proj.weight", dt, [KV, E]),
          (p + "self_attn.o_proj.weight", dt, [E, Q]), (p + "post_attention_layernorm.weight", dt, [E]),
          (p + "mlp.gate_proj.weight", dt, [F, E]), (p + "mlp.up_proj.weight", dt, [F, E]),
          (p + "mlp.down_proj.weight", dt, [E, F])]
    if not tied:
        t.append(("lm_head.weight", dt, [V, E]))
    out = []
    for name, d, shape in t:
        n = 1
        for s in shape:
            n *= s
        out.append((name, d, shape, n * es))
    return out


def safetensors_seeds():
    put("safetensors", "tiny-f32", b"\x00" + st_file(tiny_llama("F32"), {"format": "pt"}))
    put("safetensors", "tiny-bf16", b"\x00" + st_file(tiny_llama("BF16")))
    put("safetensors", "tiny-f16-untied", b"\x00" + st_file(tiny_llama("F16", tied=False)))
    put("safetensors", "dtypes", b"\x00" + st_file([("a", "I64", [2], 16), ("b", "F8_E4M3", [3], 3),
                                                     ("c", "F32", [1, 1, 1, 1, 1], 4), ("d", "F4", [4], 2),
                                                     ("e", "F16", [0], 0), ("f", "XYZ", [7], 5)]))
    put("safetensors", "empty-header", b"\x00" + struct.pack("<Q", 2) + b"{}")
    put("safetensors", "bad-length", b"\x00" + struct.pack("<Q", 1 << 40) + b"{}")
    index = {"metadata": {"total_size": 30}, "weight_map": {"x": "a.safetensors", "y": "a.safetensors",
                                                            "z": "b.safetensors", "w": "b.safetensors"}}
    put("safetensors", "index", b"\x01" + jdump(index))
    put("safetensors", "index-escape", b"\x01" + jdump({"weight_map": {"x": "../a.safetensors"}}))
    put("safetensors", "index-missing", b"\x01" + jdump({"weight_map": {"x": "b.safetensors"}}))
    shard = st_file(tiny_llama("F32")[:6])
    wm = {name: "x.safetensors" for name, _, _, _ in tiny_llama("F32")[:6]}
    wm.update({"x": "a.safetensors", "z": "b.safetensors"})
    put("safetensors", "index-shard", b"\x02" + jdump({"weight_map": wm}) + SEP + shard)
    whole = st_file(tiny_llama("BF16"))
    put("safetensors", "index-tiny",
        b"\x02" + jdump({"weight_map": {n: "x.safetensors" for n, _, _, _ in tiny_llama("BF16")}}) + SEP + whole)


# ---------------------------------------------------------------- config.json

def hf_config_seeds():
    for name, d in [("stories260k", "models/stories260k"), ("llama32-1b", "tests/data/llama-3.2-1b-instruct-config"),
                    ("llama32-3b", "tests/data/llama-3.2-3b-instruct-config"),
                    ("random-llama3", "tests/data/random-llama3-config")]:
        cfg = read(d + "/config.json")
        gen = os.path.join(ROOT, d, "generation_config.json")
        put("hf_config", name, cfg + (SEP + read(gen[len(ROOT) + 1:]) if os.path.exists(gen) else b""))
    put("hf_config", "random", read("tests/data/random-config/config.json"))
    put("hf_config", "minimal", jdump({"model_type": "llama", "hidden_size": 8, "intermediate_size": 16,
                                       "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 10,
                                       "eos_token_id": [1, 2, 2], "rope_scaling": {"type": "default"}}))
    put("hf_config", "mamba", jdump({"architectures": ["MambaForCausalLM"], "model_type": "mamba"}))


# ---------------------------------------------------------------- tokenizer.json

def mini_llama3_tokenizer():
    """Llama 3's tokenizer.json (byte-level BPE, split regex, ignore_merges, template post
    processor) cut down to the byte alphabet, its first 400 merges and a few special tokens."""
    t = json.loads(read("models/llama3-tokenizer/tokenizer.json"))
    full = t["model"]["vocab"]
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, extra = bs[:], 0
    for b in range(256):  # GPT-2's byte-to-character map: every byte needs its token
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    keep = {chr(c) for c in cs}
    merges = t["model"]["merges"][:400]
    pieces = set(keep)
    for m in merges:
        a, b = m.split(" ") if isinstance(m, str) else m
        pieces |= {a, b, a + b}
    vocab = {p: i for i, p in enumerate(sorted(pieces, key=lambda p: full.get(p, 1 << 30)))}
    n = len(vocab)
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    added = [{"id": n + k, "content": s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": True} for k, s in enumerate(specials)]
    t["model"]["vocab"] = vocab
    t["model"]["merges"] = merges
    t["added_tokens"] = added
    pp = t["post_processor"]["processors"][1]
    pp["special_tokens"]["<|begin_of_text|>"]["ids"] = [n]
    cfg = json.loads(read("models/llama3-tokenizer/tokenizer_config.json"))
    cfg = {"bos_token": cfg["bos_token"], "eos_token": cfg["eos_token"], "chat_template": cfg["chat_template"]}
    return jdump(t), jdump(cfg)


def tokenizer_load_seeds():
    for name, d in [("stories260k", "models/stories260k"), ("chatml", "tests/data/chat/chatml"),
                    ("features", "tests/data/chat/features")]:
        put("tokenizer_load", name, read(d + "/tokenizer.json") + SEP + read(d + "/tokenizer_config.json"))
    put("tokenizer_load", "stories260k-no-config", read("models/stories260k/tokenizer.json"))
    tj, cj = mini_llama3_tokenizer()
    put("tokenizer_load", "mini-llama3", tj + SEP + cj)
    put("tokenizer_load", "tiny-bpe", jdump({
        "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "<unk>": 3}, "merges": ["a b"], "unk_token": "<unk>"},
        "added_tokens": [{"id": 3, "content": "<unk>", "special": True}],
        "decoder": {"type": "Fuse"}}))


# ---------------------------------------------------------------- tokenize

def tokenize_seeds():
    texts = [b"Hello world", b"Once upon a time, there was a little girl named Lily.",
             "caf\u00e9 \u4e2d\u6587 \U0001F600 \u2581x".encode(), b"  spaces\t\ttabs\r\n\nlines  ",
             b"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>", b"<s>[INST] hi [/INST]</s>",
             b"don't I'LL we're 12345678 3.14159", b"\x00\x01\x7f nul and control", b"caf\xe9 invalid",
             b"\xf0\x9f\x98", b""]
    for i, t in enumerate(texts):
        for flags in (0, 1, 2, 7):
            put("tokenize", "text%d-f%d" % (i, flags), bytes([flags]) + t)
    put("tokenize", "ids-llama3", b"\x08" + struct.pack("<8i", 128000, 9906, 1917, -1, 128009, 128256, 2, 0xF0))
    put("tokenize", "ids-stories", b"\x09" + struct.pack("<8i", 1, 403, 261, 3, 0x100, 512, -7, 35))
    put("tokenize", "ids-bytes", b"\x09" + struct.pack("<4i", 3 + 0xE2, 3 + 0x96, 3 + 0x81, 3 + 0xF0))


# ---------------------------------------------------------------- chat templates

def chat_template_seeds():
    ctxs = []
    for cases in ("chatml_cases.json", "features_cases.json", "llama32_cases.json"):
        c = json.loads(read("tests/data/chat/" + cases))
        ctxs += [case["request"] for case in c["cases"][:4]]
    templates = {}
    for name, d in [("llama3", "models/llama3-tokenizer"), ("chatml", "tests/data/chat/chatml"),
                    ("features", "tests/data/chat/features")]:
        templates[name] = json.loads(read(d + "/tokenizer_config.json"))["chat_template"].encode()
    for i, (name, t) in enumerate(templates.items()):
        put("chat_template", name, t)
        put("chat_template", name + "-ctx", t + SEP + jdump(ctxs[i * 3 % len(ctxs)]))
    for i, ctx in enumerate(ctxs):
        put("chat_template", "request%d" % i, b"{{ messages | length }}" + SEP + jdump(ctx))
    small = [
        b"{% for m in messages %}{{ m.role | upper }}: {{ m.content | trim }}\n{% endfor %}",
        b"{% set ns = namespace(x=0) %}{% for i in range(5) %}{% set ns.x = ns.x + i %}{% endfor %}{{ ns.x }}",
        b"{{ 'a,b,c'.split(',') | join('-') }} {{ [1,2,3][::-1] }} {{ {'k': none} | tojson(indent=2) }}",
        b"{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system') }}{% endif %}",
        b"{{ strftime_now('%d %b %Y') }} {{ date_string | default('x') }} {{ 7 // 2 }} {{ 2 ** 10 }} {{ 'x' * 3 }}",
        b"{%- for k, v in {'a': 1, 'b': [2]}.items() -%}{{ k ~ v }}{%- if not loop.last %},{% endif -%}{% endfor %}",
        b"{% for m in messages if m.content is string %}{{ loop.index }}{{ m.content[1:3] }}{% else %}none{% endfor %}",
        b"{# comment #}{{ bos_token }}{% raw %}{{ x }}{% endraw %}{{ eos_token }}",
    ]
    for i, t in enumerate(small):
        put("chat_template", "small%d" % i, t)


# ---------------------------------------------------------------- session files

def session_seeds():
    binp = os.environ.get("LLM8_BIN", "build/llm8")
    with tempfile.TemporaryDirectory() as tmp:
        scripts = {"one-turn": "Once upon a time\n/save {f}\n", "two-turns": "Hi\nWhat then?\n/save {f}\n",
                   "empty": "/save {f}\n", "system": "/system You tell stories.\nA cat\n/save {f}\n"}
        for name, script in scripts.items():
            f = os.path.join(tmp, name)
            subprocess.run([binp, "chat", "-c", "128", "-n", "4", "--temp", "0"], input=script.format(f=f).encode(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            data = open(f, "rb").read()
            if len(data) < 40000:  # the long ones only with the fix-ups: their KV bytes are ballast
                put("session_load", name, b"\x04" + data)
            put("session_load", name + "-fix", b"\x07" + data)
        # the conversation replaced by other JSON (the harness fixes the length and the checksum)
        data = open(os.path.join(tmp, "one-turn"), "rb").read()
        n_past, mlen = struct.unpack_from("<II", data, 40)
        body = data[:len(data) - 8 - mlen]
        for name, js in [("msgs-odd", b'[1, "x", {"role": 5}, {"content": null}]'), ("msgs-none", b"[]"),
                         ("msgs-object", b'{"role": "user"}')]:
            put("session_load", name, b"\x07" + body + js + b"\0" * 8)


def main():
    safetensors_seeds()
    hf_config_seeds()
    tokenizer_load_seeds()
    tokenize_seeds()
    chat_template_seeds()
    session_seeds()
    for t in sorted(os.listdir(OUT)):
        files = os.listdir(os.path.join(OUT, t))
        print("%-16s %3d files, %7d bytes" % (t, len(files), sum(os.path.getsize(os.path.join(OUT, t, f)) for f in files)))


if __name__ == "__main__":
    sys.exit(main())
