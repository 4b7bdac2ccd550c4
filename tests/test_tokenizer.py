"""The CLIP BPE rebuilt from open_clip's merge file gives the same ids as open_clip's SimpleTokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from open_clip.tokenizer import SimpleTokenizer
from transformers import CLIPTokenizer

from inspectd.models.tokenizer import bytes_to_unicode, write_clip_tokenizer

SENTENCES = [
    "a photo of a damaged screw",
    "A  Scratch!! on the   metal-surface, 3mm wide.",
    "a cropped photo of the flawless transistor",
    "naïve café über 42 ÷ 7",
    "it's a hole, isn't it?",
    "pcb with a missing SMD component",
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("tok")
    write_clip_tokenizer(dest)
    return dest


def test_vocabulary_layout(folder: Path) -> None:
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == 49408
    assert vocab["!"] == 0 and vocab["!</w>"] == 256  # bytes, then bytes + '</w>'
    assert vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    merges = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert merges[0] == "#version: 0.2" and len(merges) == 1 + 48894
    first = merges[1].split()
    assert vocab["".join(first)] == 512  # the first merge is the first id after the 512 byte symbols


def test_byte_table_is_a_bijection() -> None:
    table = bytes_to_unicode()
    assert len(table) == 256 and len(set(table.values())) == 256
    assert table[ord("a")] == "a" and table[ord(" ")] == "Ġ"


@pytest.mark.parametrize("sentence", SENTENCES)
def test_ids_equal_open_clip(folder: Path, sentence: str) -> None:
    ours = CLIPTokenizer.from_pretrained(folder)(sentence)["input_ids"]
    reference = SimpleTokenizer()
    expected = [reference.sot_token_id, *reference.encode(sentence), reference.eot_token_id]
    assert ours == expected
    assert ours[0] == 49406 and ours[-1] == 49407


def test_known_ids(folder: Path) -> None:
    # ids of the released CLIP vocabulary: 'a</w>' = 320, 'photo</w>' = 1125
    assert CLIPTokenizer.from_pretrained(folder)("a photo")["input_ids"] == [49406, 320, 1125, 49407]
