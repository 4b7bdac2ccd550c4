"""The real CLIP byte-pair tokenizer, rebuilt from the BPE merges shipped in the open_clip_torch wheel.

Local random-weight models need tokenizer files; building them from CLIP's own merge list (exactly as CLIP's
SimpleTokenizer does) keeps token ids identical to the released checkpoints', so prompts mean the same thing.
"""

from __future__ import annotations

import gzip
import json
from importlib import resources
from pathlib import Path

from inspectd.errors import ModelLoadError

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
VOCAB_SIZE = 49408
_N_MERGES = 49152 - 256 - 2


def bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible byte -> printable unicode character table (256 entries)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    codes = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes), strict=True))


def _bpe_merges() -> list[tuple[str, str]]:
    """The first 48894 merges of CLIP's BPE file (the header line skipped), as SimpleTokenizer reads them."""
    source = resources.files("open_clip") / "bpe_simple_vocab_16e6.txt.gz"
    try:
        lines = gzip.decompress(source.read_bytes()).decode("utf-8").split("\n")
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        raise ModelLoadError(
            "the CLIP BPE file open_clip/bpe_simple_vocab_16e6.txt.gz is missing; "
            "reinstall it with `pip install open-clip-torch`"
        ) from exc
    return [tuple(line.split()) for line in lines[1 : _N_MERGES + 1]]  # type: ignore[misc]


def clip_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's 49408-entry vocabulary (bytes, bytes + '</w>', merges, sot, eot) and its merge list."""
    merges = _bpe_merges()
    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges] + [BOS, EOS]
    return {tok: i for i, tok in enumerate(tokens)}, merges


def write_clip_tokenizer(dest: Path) -> None:
    """Write vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json for CLIPTokenizer."""
    vocab, merges = clip_vocab()
    if len(vocab) != VOCAB_SIZE:
        raise ModelLoadError(f"CLIP BPE vocabulary has {len(vocab)} entries, expected {VOCAB_SIZE}")
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges_text = "#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n"
    (dest / "merges.txt").write_text(merges_text, encoding="utf-8")
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
    config = {**special, "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True}
    (dest / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (dest / "special_tokens_map.json").write_text(json.dumps(special, indent=2), encoding="utf-8")
