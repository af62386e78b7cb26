"""Tiny random backbones built from the real config classes, for fast offline tests and demos.

Each model has hidden size 32, two layers and four heads, so every code path (fused projections,
Conv1D layouts, rotary embeddings) is exercised in milliseconds. Weights are random and seeded.
Tokenizers:

* ``tiny-bert`` / ``tiny-roberta``: a WordPiece ``BertTokenizer`` built in code from
  :data:`TINY_WORDS` (special tokens, single characters and their ``##`` forms, ~300 common words).
  ``tiny-roberta`` reuses it (RoBERTa's byte-level BPE needs merges we do not ship); it drops
  ``token_type_ids`` as the real RoBERTa tokenizer does.
* ``tiny-gpt2`` / ``tiny-gpt-neox``: the real GPT-2 / GPT-NeoX-20B tokenizer from the shared data
  bundle (``$DEBIASLIT_SHARED_DATA`` or ``<repo>/../shared/data``) when present, else a byte-level
  BPE built in code (256 byte tokens plus ``<|endoftext|>``, no merges). ``vocab_size`` always
  equals ``len(tokenizer)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from debiaslit.utils.paths import shared_data_dir

from .tasks import auto_class

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

TINY_NAMES = ("tiny-bert", "tiny-roberta", "tiny-gpt2", "tiny-gpt-neox")

HIDDEN, LAYERS, HEADS, MAX_POSITIONS = 32, 2, 4, 128

_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789") + list(".,!?;:'\"-()")

#: Whole words of the tiny WordPiece vocabulary: pronouns, gendered nouns, professions and
#: the vocabulary of NLI / HANS / Winogender templates.
TINY_WORDS: tuple[str, ...] = tuple(
    dict.fromkeys(
        """
    the a an and or but not no nor if then than that this these those there here it its is are was were
    be been being am do does did done have has had will would can could should may might must shall
    of to in on at by for from with without about above below under over after before during between
    into through near behind next beside as so because while although since until who whom whose
    which what when where why how all some any each every both either neither none one two three
    he she him her his hers himself herself they them their theirs themselves we us our you your i me my
    man woman men women boy girl boys girls person people child children mother father son daughter
    brother sister husband wife king queen mr mrs ms sir lady gentleman guy gal male female
    doctor nurse lawyer judge teacher professor student engineer scientist secretary manager ceo
    president senator banker baker chef cook farmer driver pilot soldier officer police firefighter
    clerk cashier librarian receptionist hairdresser housekeeper nanny dancer singer artist writer
    author editor designer developer programmer accountant auditor analyst architect carpenter
    plumber electrician mechanic janitor guard salesperson tailor surgeon physician pharmacist
    dentist therapist psychologist counselor supervisor assistant attendant worker laborer
    entailment neutral contradiction premise hypothesis true false yes maybe
    said says say told tells asked asks saw sees see knew know knows thought think thinks believed
    believes helped helps paid pays called calls met meets visited visits admired admires avoided
    recommended stopped waited arrived left slept ran walked danced smiled laughed cried worked
    went go goes came come comes got get gets made make makes took take takes gave give gives
    found find finds wanted want wants needed need needs liked like likes loved love loves
    good bad new old young big small tall short happy sad rich poor smart kind busy tired
    because although unless whether however also only just still even very really quite too
    day night time year week morning evening today yesterday tomorrow home office school
    hospital court bank city house room car book money work job food water
    """.split()
    )
)


def tiny_wordpiece_tokenizer(token_type_ids: bool = True) -> PreTrainedTokenizerBase:
    """WordPiece tokenizer over :data:`TINY_WORDS`; ``vocab=dict`` because ``vocab_file`` is ignored."""
    from transformers import BertTokenizer

    tokens = _SPECIAL + _CHARS + [f"##{c}" for c in _CHARS] + [w for w in TINY_WORDS if w not in _CHARS]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    names = (
        ["input_ids", "token_type_ids", "attention_mask"]
        if token_type_ids
        else ["input_ids", "attention_mask"]
    )
    return BertTokenizer(vocab=vocab, do_lower_case=True, model_input_names=names)


def _byte_level_tokenizer() -> PreTrainedTokenizerBase:
    """Byte-level BPE without merges (token id == byte value, 256 = ``<|endoftext|>``)."""
    from transformers import GPT2Tokenizer

    # GPT-2's printable byte alphabet (bytes_to_unicode), so ids equal byte values.
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = iter(range(256, 512))
    chars = {b: chr(b) if b in printable else chr(next(extra)) for b in range(256)}
    vocab = {chars[b]: b for b in range(256)} | {"<|endoftext|>": 256}
    eos = "<|endoftext|>"
    return GPT2Tokenizer(vocab=vocab, merges=[], unk_token=eos, bos_token=eos, eos_token=eos)


def tiny_gpt_tokenizer(kind: str) -> PreTrainedTokenizerBase:
    """The shipped ``gpt2`` / ``gpt-neox-20b`` tokenizer when present, else :func:`_byte_level_tokenizer`."""
    from transformers import AutoTokenizer

    folder = shared_data_dir() / "tokenizers" / {"gpt2": "gpt2", "gpt_neox": "gpt-neox-20b"}[kind]
    if folder.is_dir():
        return AutoTokenizer.from_pretrained(str(folder))
    return _byte_level_tokenizer()


def tiny_tokenizer(name: str) -> PreTrainedTokenizerBase:
    """The tokenizer that goes with tiny model ``name``."""
    if name in ("tiny-bert", "tiny-roberta"):
        return tiny_wordpiece_tokenizer(token_type_ids=name == "tiny-bert")
    return tiny_gpt_tokenizer("gpt2" if name == "tiny-gpt2" else "gpt_neox")


def tiny_config(name: str, tokenizer: PreTrainedTokenizerBase) -> PretrainedConfig:
    """Real config class with tiny sizes; intermediate 37 (BERT) is deliberately not a multiple of 32."""
    from transformers import BertConfig, GPT2Config, GPTNeoXConfig, RobertaConfig

    vocab, eos = len(tokenizer), tokenizer.eos_token_id
    common = dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS, vocab_size=vocab)
    if name == "tiny-bert":
        return BertConfig(**common, intermediate_size=37, max_position_embeddings=MAX_POSITIONS)
    if name == "tiny-roberta":
        # RoBERTa positions start at pad_token_id + 1, hence the +2 to fit MAX_POSITIONS tokens.
        pad = tokenizer.pad_token_id
        return RobertaConfig(
            **common,
            intermediate_size=37,
            max_position_embeddings=MAX_POSITIONS + pad + 1,
            type_vocab_size=1,
            pad_token_id=pad,
            bos_token_id=tokenizer.cls_token_id,
            eos_token_id=tokenizer.sep_token_id,
        )
    if name == "tiny-gpt2":
        return GPT2Config(
            n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_positions=MAX_POSITIONS, vocab_size=vocab,
            bos_token_id=eos, eos_token_id=eos,
        )  # fmt: skip
    if name == "tiny-gpt-neox":
        return GPTNeoXConfig(
            **common, intermediate_size=64, rotary_pct=0.25, max_position_embeddings=MAX_POSITIONS,
            bos_token_id=eos, eos_token_id=eos,
        )  # fmt: skip
    raise KeyError(name)


def build_tiny(
    name: str,
    task: str,
    num_labels: int = 3,
    attn_implementation: str | None = None,
    seed: int = 0,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Random tiny model + tokenizer; the same ``seed`` gives identical weights (global RNG untouched)."""
    tokenizer = tiny_tokenizer(name)
    config = tiny_config(name, tokenizer)
    if task == "sequence-classification":
        config.num_labels = num_labels
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = auto_class(task).from_config(config, **kwargs)
    return model, tokenizer
