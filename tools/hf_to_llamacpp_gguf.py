#!/usr/bin/python3
"""
A small, dependency-light re-implementation of what llama.cpp's convert_hf_to_gguf.py writes for a
Hugging Face LlamaForCausalLM folder, so that llm8's tests can make llama.cpp-style GGUF inputs
without llama.cpp, torch or transformers (only numpy).

What it reproduces (LlamaModel in convert_hf_to_gguf.py and gguf-py's GGUFWriter / SpecialVocab):
- GGUF v3, little-endian, alignment 32 (general.alignment is not written: 32 is the default);
- keys: general.architecture "llama", general.type, general.name, llama.* hyper-parameters
  (key_length / value_length only when config.json has head_dim), general.file_type,
  general.quantization_version, tokenizer.ggml.*, tokenizer.chat_template;
- tensor names token_embd / output_norm / output / blk.N.{attn_norm, attn_q, attn_k, attn_v,
  attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down}.weight, shapes reversed (ne[0] = columns);
- LlamaModel.permute of q_proj (n_head) and k_proj (n_kv_head) rows to the interleaved RoPE order;
- rope_freqs.weight (F32, head_dim/2 factors) for rope_type llama3, computed exactly as
  generate_extra_tensors does -- including its reading of original_max_position_embeddings from the
  top level of config.json (default 8192), NOT from rope_scaling, as llama.cpp does;
- outtype f32 / f16 / bf16 / q8_0: 1-D tensors stay F32; Q8_0 is gguf-py's quantize_blocks
  (d = amax / 127, q = round-half-away(x / d), d stored as f16), and a tensor whose rows are not a
  multiple of 32 falls back to F16 as convert_hf_to_gguf does on QuantError;
- tokenizer: a byte-level BPE tokenizer.json (Llama 3) goes through _set_vocab_gpt2: model "gpt2",
  pre "llama-bpe" (only the Llama 3 split regex is recognised), token types NORMAL / CONTROL /
  USER_DEFINED / UNUSED, merges. A SentencePiece-style one (BPE with byte_fallback) is written the
  way _set_vocab_sentencepiece writes it from tokenizer.model: model "llama", pre "default",
  scores, types (BYTE for <0xXX>, added_tokens_decoder entries CONTROL/USER_DEFINED with score
  -1000).

Where this differs from llama.cpp, on purpose:
- There is no tokenizer.model in the test folders, so the SentencePiece scores are reconstructed:
  normal pieces get 0, -1, -2, ... in id order (what SentencePiece BPE training assigns and what Hugging
  Face's converter preserves in the id order); the tool checks that the merges derived from them
  equal tokenizer.json's. llama.cpp itself, lacking tokenizer.model, would take _set_vocab_llama_hf,
  which writes the placeholder score -1000 for every token; --llama-hf-scores imitates that.
- The pre-tokenizer name is chosen from the regex, not from llama.cpp's hash of a test encoding.

Usage: hf_to_llamacpp_gguf.py DIR --outfile OUT.gguf [--outtype f32|f16|bf16|q8_0] [--vocab-only]
"""
import argparse
import json
import math
import os
import re
import struct
import sys

import numpy as np

GGML_F32, GGML_F16, GGML_Q8_0, GGML_BF16 = 0, 1, 8, 30
FILE_TYPE = {"f32": 0, "f16": 1, "q8_0": 7, "bf16": 32}
T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY = 4, 5, 6, 7, 8, 9
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

LLAMA3_REGEX = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
                "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")


# ---------------------------------------------------------------- GGUF writing

class Writer:
    def __init__(self):
        self.kv = []        # (key, type, value, elem_type)
        self.tensors = []   # (name, shape, ggml_type, bytes)

    def add(self, key, vtype, value, elem_type=None):
        assert all(k != key for k, *_ in self.kv), key
        self.kv.append((key, vtype, value, elem_type))

    def add_tensor(self, name, shape, ggml_type, data):
        self.tensors.append((name, shape, ggml_type, data))

    @staticmethod
    def _str(s):
        b = s if isinstance(s, bytes) else s.encode("utf-8")
        return struct.pack("<Q", len(b)) + b

    def _value(self, vtype, v, elem_type):
        if vtype == T_UINT32:
            return struct.pack("<I", v)
        if vtype == T_INT32:
            return struct.pack("<i", v)
        if vtype == T_FLOAT32:
            return struct.pack("<f", v)
        if vtype == T_BOOL:
            return struct.pack("<B", 1 if v else 0)
        if vtype == T_STRING:
            return self._str(v)
        assert vtype == T_ARRAY
        out = [struct.pack("<IQ", elem_type, len(v))]
        out += [self._value(elem_type, x, None) for x in v]
        return b"".join(out)

    def write(self, path, alignment=32):
        parts = [b"GGUF", struct.pack("<IQQ", 3, len(self.tensors), len(self.kv))]
        for key, vtype, value, et in self.kv:
            parts += [self._str(key), struct.pack("<I", vtype), self._value(vtype, value, et)]
        offset = 0
        offsets = []
        for name, shape, gt, data in self.tensors:
            ne = list(reversed(shape))
            parts += [self._str(name), struct.pack("<I", len(ne)), struct.pack("<%dQ" % len(ne), *ne),
                      struct.pack("<IQ", gt, offset)]
            offsets.append(offset)
            offset += (len(data) + alignment - 1) // alignment * alignment
        head = b"".join(parts)
        head += b"\0" * ((-len(head)) % alignment)
        with open(path + ".tmp", "wb") as f:
            f.write(head)
            for name, shape, gt, data in self.tensors:
                f.write(data)
                f.write(b"\0" * ((-len(data)) % alignment))
        os.replace(path + ".tmp", path)


# ---------------------------------------------------------------- safetensors reading

def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            a, b = info["data_offsets"]
            f.seek(base + a)
            raw = f.read(b - a)
            dt = info["dtype"]
            if dt == "F32":
                arr = np.frombuffer(raw, dtype="<f4")
            elif dt == "F16":
                arr = np.frombuffer(raw, dtype="<f2").astype(np.float32)
            elif dt == "BF16":
                arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
            else:
                raise SystemExit("%s: tensor %s has dtype %s" % (path, name, dt))
            out[name] = arr.reshape(info["shape"]).copy()
        return out


def load_weights(d):
    idx = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(idx))["weight_map"].values())) if os.path.exists(idx) else ["model.safetensors"]
    w = {}
    for fn in files:
        w.update(read_safetensors(os.path.join(d, fn)))
    return w


# ---------------------------------------------------------------- tensor conversion

def f32_to_bf16_bytes(x):
    n = x.astype(np.float32).view(np.uint32)
    n = np.where((n & 0x7FFFFFFF) > 0x7F800000, (n & np.uint32(0xFFFF0000)) | np.uint32(64 << 16), n)
    n = (n.astype(np.uint64) + (0x7FFF + ((n >> 16) & 1))) >> 16
    return n.astype("<u2").tobytes()


def np_roundf(n):
    # ggml's roundf: half away from zero (numpy's round is half to even)
    a = abs(n)
    floored = np.floor(a)
    b = floored + np.floor(2 * (a - floored))
    return np.sign(n) * b


def quantize_q8_0(x):
    rows = x.astype(np.float32).reshape(-1, 32)
    d = np.abs(rows).max(axis=1, keepdims=True) / np.float32(127)
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, np.float32(0), np.float32(1) / d)
    qs = np_roundf(rows * inv).astype(np.int8)
    blocks = np.concatenate([d.astype("<f2").view(np.uint8), qs.view(np.uint8)], axis=1)
    return blocks.tobytes()


def encode_tensor(name, x, outtype):
    x = x.astype(np.float32)
    if x.ndim <= 1 or name.endswith("_norm.weight") or outtype == "f32":
        return GGML_F32, x.astype("<f4").tobytes()
    if outtype == "bf16":
        return GGML_BF16, f32_to_bf16_bytes(x)
    if outtype == "q8_0":
        if x.shape[-1] % 32 == 0:
            return GGML_Q8_0, quantize_q8_0(x)
        print("%s: row size %d is not a multiple of 32, falling back to F16" % (name, x.shape[-1]), file=sys.stderr)
    return GGML_F16, x.astype("<f2").tobytes()


def permute(w, n_head, n_head_kv):
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


LAYER_MAP = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
}


def gguf_name(hf):
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    m = re.fullmatch(r"model\.layers\.(\d+)\.(.+)\.weight", hf)
    if m and m.group(2) in LAYER_MAP:
        return "blk.%s.%s.weight" % (m.group(1), LAYER_MAP[m.group(2)])
    if hf.endswith("rotary_emb.inv_freq"):
        return None
    raise SystemExit("cannot map tensor %s" % hf)


def llama3_rope_factors(cfg):
    rs = cfg["rope_scaling"]
    base = cfg.get("rope_theta", 10000.0)
    dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    freqs = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    factor = rs.get("factor", 8.0)
    low = rs.get("low_freq_factor", 1.0)
    high = rs.get("high_freq_factor", 4.0)
    old_ctx = cfg.get("original_max_position_embeddings", 8192)  # sic: llama.cpp reads the top level
    low_wl, high_wl = old_ctx / low, old_ctx / high
    out = []
    for f in freqs:
        wl = 2 * math.pi / f
        if wl < high_wl:
            out.append(1)
        elif wl > low_wl:
            out.append(factor)
        else:
            smooth = (old_ctx / wl - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


# ---------------------------------------------------------------- tokenizer

def special_vocab(w, d, tok, tcfg, cfg, n_vocab):
    """gguf-py SpecialVocab: special ids from tokenizer_config strings, else config.json ids."""
    added = {a["content"]: a["id"] for a in tok.get("added_tokens", [])}
    for typ, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("unk", "unknown_token_id"),
                     ("sep", "seperator_token_id"), ("pad", "padding_token_id")):
        v = tcfg.get(typ + "_token")
        if isinstance(v, dict):
            v = v.get("content")
        tid = added.get(v) if isinstance(v, str) else None
        if tid is None and isinstance(v, str):
            tid = tok["model"]["vocab"].get(v)
        if tid is None:
            c = cfg.get(typ + "_token_id")
            tid = c if isinstance(c, int) else None
        if tid is not None and 0 <= tid < n_vocab:
            w.add("tokenizer.ggml." + key, T_UINT32, tid)
    pp = tok.get("post_processor") or {}
    procs = pp.get("processors", [pp]) if pp.get("type") == "Sequence" else [pp]
    tmpl_bos = any(p.get("type") == "TemplateProcessing" and "SpecialToken" in p["single"][0] for p in procs)
    add_bos = tcfg.get("add_bos_token", tmpl_bos if pp else None)
    if add_bos is not None:
        w.add("tokenizer.ggml.add_bos_token", T_BOOL, bool(add_bos))
    if "add_eos_token" in tcfg:
        w.add("tokenizer.ggml.add_eos_token", T_BOOL, bool(tcfg["add_eos_token"]))
    if isinstance(tcfg.get("chat_template"), str):
        w.add("tokenizer.chat_template", T_STRING, tcfg["chat_template"])


def looks_special(t):
    """convert_hf_to_gguf's does_token_look_special."""
    return (t in ("<pad>", "<mask>", "<2mass>", "[@BOS@]") or (t.startswith("<|") and t.endswith("|>"))
            or (t.startswith("<\uff5c") and t.endswith("\uff5c>")) or (t.startswith("<unused") and t.endswith(">")))


def spm_merges(pieces, scores):
    vocab = {}
    for i, p in enumerate(pieces):
        vocab.setdefault(p, i)
    merges = []
    for i, p in enumerate(pieces):
        local = [(p[:k], p[k:], scores[i]) for k in range(1, len(p)) if p[:k] in vocab and p[k:] in vocab]
        local.sort(key=lambda x: (vocab[x[0]], vocab[x[1]]))
        merges += local
    merges.sort(key=lambda x: -x[2])
    return [a + " " + b for a, b, _ in merges]


def write_vocab(w, d, cfg, llama_hf_scores):
    tok = json.load(open(os.path.join(d, "tokenizer.json"), encoding="utf-8"))
    tcp = os.path.join(d, "tokenizer_config.json")
    tcfg = json.load(open(tcp, encoding="utf-8")) if os.path.exists(tcp) else {}
    model = tok["model"]
    if model.get("type") != "BPE":
        raise SystemExit("only BPE tokenizers are handled")
    vocab = dict(model["vocab"])
    for a in tok.get("added_tokens", []):
        vocab.setdefault(a["content"], a["id"])
    rev = {i: t for t, i in vocab.items()}
    n_vocab = cfg.get("vocab_size", max(rev) + 1)
    added = {a["id"]: a for a in tok.get("added_tokens", [])}
    merges_json = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]

    if model.get("byte_fallback"):
        # _set_vocab_sentencepiece, with the tokenizer.model scores reconstructed (see the top)
        tokens, scores, types = [], [], []
        rank = 0
        for i in range(n_vocab):
            t = rev.get(i)
            if t is None:
                tokens.append("[PAD%d]" % i); scores.append(-1000.0); types.append(UNUSED)
            elif re.fullmatch(r"<0x[0-9A-Fa-f]{2}>", t):
                tokens.append(t); scores.append(0.0); types.append(BYTE)
            else:
                tokens.append(t); scores.append(-float(rank)); types.append(NORMAL)
                rank += 1
        for sid, a in tcfg.get("added_tokens_decoder", {}).items():
            i = int(sid)
            if i >= n_vocab:
                continue
            content = a["content"]
            if a.get("special") or looks_special(content):
                types[i] = CONTROL
            else:
                content = content.replace("\u2581", " ")
                types[i] = USER_DEFINED
            scores[i] = -1000.0
            tokens[i] = content
        if spm_merges(tokens, scores) != merges_json:
            print("warning: merges derived from the reconstructed scores differ from tokenizer.json", file=sys.stderr)
        if llama_hf_scores:
            scores = [-1000.0] * n_vocab
        w.add("tokenizer.ggml.model", T_STRING, "llama")
        w.add("tokenizer.ggml.pre", T_STRING, "default")
        w.add("tokenizer.ggml.tokens", T_ARRAY, tokens, T_STRING)
        w.add("tokenizer.ggml.scores", T_ARRAY, scores, T_FLOAT32)
        w.add("tokenizer.ggml.token_type", T_ARRAY, types, T_INT32)
    else:
        # _set_vocab_gpt2 / get_vocab_base
        pre = tok.get("pre_tokenizer") or {}
        regexes = [p.get("pattern", {}).get("Regex") for p in pre.get("pretokenizers", [])]
        if LLAMA3_REGEX not in regexes:
            raise SystemExit("BPE pre-tokenizer was not recognized (only llama-bpe is known here)")
        tokens, types = [], []
        for i in range(n_vocab):
            t = rev.get(i)
            if t is None:
                tokens.append("[PAD%d]" % i); types.append(UNUSED)
            elif i in added:
                types.append(CONTROL if added[i].get("special") or looks_special(t) else USER_DEFINED)
                tokens.append(t)
            else:
                tokens.append(t); types.append(NORMAL)
        w.add("tokenizer.ggml.model", T_STRING, "gpt2")
        w.add("tokenizer.ggml.pre", T_STRING, "llama-bpe")
        w.add("tokenizer.ggml.tokens", T_ARRAY, tokens, T_STRING)
        w.add("tokenizer.ggml.token_type", T_ARRAY, types, T_INT32)
        w.add("tokenizer.ggml.merges", T_ARRAY, merges_json, T_STRING)
    special_vocab(w, d, tok, tcfg, cfg, n_vocab)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--outfile", required=True)
    ap.add_argument("--outtype", default="f16", choices=sorted(FILE_TYPE))
    ap.add_argument("--vocab-only", action="store_true")
    ap.add_argument("--llama-hf-scores", action="store_true",
                    help="write -1000 for every SentencePiece score, as llama.cpp's LlamaHfVocab does")
    a = ap.parse_args()
    d = a.model
    cp = os.path.join(d, "config.json")
    cfg = json.load(open(cp)) if os.path.exists(cp) else None
    if cfg is None and not a.vocab_only:
        raise SystemExit("%s: no config.json" % d)
    w = Writer()
    w.add("general.architecture", T_STRING, "llama")
    w.add("general.type", T_STRING, "model")
    w.add("general.name", T_STRING, os.path.basename(os.path.normpath(d)))
    if cfg is not None:
        n_head = cfg["num_attention_heads"]
        n_kv = cfg.get("num_key_value_heads", n_head)
        w.add("llama.block_count", T_UINT32, cfg["num_hidden_layers"])
        w.add("llama.context_length", T_UINT32, cfg["max_position_embeddings"])
        w.add("llama.embedding_length", T_UINT32, cfg["hidden_size"])
        w.add("llama.feed_forward_length", T_UINT32, cfg["intermediate_size"])
        w.add("llama.attention.head_count", T_UINT32, n_head)
        w.add("llama.attention.head_count_kv", T_UINT32, n_kv)
        if "rope_theta" in cfg:
            w.add("llama.rope.freq_base", T_FLOAT32, cfg["rope_theta"])
        w.add("llama.attention.layer_norm_rms_epsilon", T_FLOAT32, cfg["rms_norm_eps"])
        if cfg.get("head_dim"):
            w.add("llama.attention.key_length", T_UINT32, cfg["head_dim"])
            w.add("llama.attention.value_length", T_UINT32, cfg["head_dim"])
        w.add("general.file_type", T_UINT32, FILE_TYPE[a.outtype])
        w.add("llama.vocab_size", T_UINT32, cfg["vocab_size"])
        w.add("llama.rope.dimension_count", T_UINT32, cfg.get("head_dim") or cfg["hidden_size"] // n_head)
        w.add("general.quantization_version", T_UINT32, 2)
    write_vocab(w, d, cfg or {}, a.llama_hf_scores)
    if not a.vocab_only:
        rs = cfg.get("rope_scaling") or {}
        if rs.get("rope_type", rs.get("type", "")).lower() == "llama3":
            f = llama3_rope_factors(cfg)
            w.add_tensor("rope_freqs.weight", list(f.shape), GGML_F32, f.astype("<f4").tobytes())
        weights = load_weights(d)
        for hf in weights:
            name = gguf_name(hf)
            if name is None:
                continue
            x = weights[hf]
            if hf.endswith("q_proj.weight"):
                x = permute(x, n_head, n_head)
            elif hf.endswith("k_proj.weight"):
                x = permute(x, n_head, n_kv)
            gt, data = encode_tensor(name, x, a.outtype)
            w.add_tensor(name, list(x.shape), gt, data)
    w.write(a.outfile)


if __name__ == "__main__":
    main()
