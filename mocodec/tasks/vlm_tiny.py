"""Tiny randomly initialised VLMs, built offline from transformers configs (tests, benchmarks, smoke runs).

``create_task("vlm-qa", model="random:qwen2.5-vl")`` (or ``random:internvl``) runs the
whole question-answering pipeline with one of these instead of downloaded weights: the
same model classes, processors and chat-template path as Qwen2.5-VL and InternVL3, at a
few hundred thousand parameters. The tokenizer is word-level over a small English
vocabulary holding the prompts' words and every answer the parsers know, so the
random model's greedy answers are readable words ("no", "B", "the cat", ...).

The configurations are data: :data:`TINY_CONFIGS`. Their constraints (transformers 5):
Qwen2.5-VL's ``mrope_section`` sums to half the head dimension and
``fullatt_block_indexes`` lie inside the vision depth; InternVL's ``image_seq_length``
is (image_size / patch_size)^2 * downsample_ratio^2 in both config and processor; the
special-token ids in the configs are the tokenizer's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tokenizers
import transformers

from mocodec.errors import UnknownNameError
from mocodec.utils.seeding import seeded

WORDS = [
    "[UNK]",
    "user",
    "assistant",
    "system",
    "Is",
    "is",
    "there",
    "a",
    "an",
    "in",
    "the",
    "image",
    "of",
    "?",
    ".",
    ",",
    ":",
    ";",
    "!",
    "'",
    "s",
    "(",
    ")",
    "Answer",
    "answer",
    "with",
    "option",
    "letter",
    "from",
    "given",
    "choices",
    "directly",
    "question",
    "using",
    "single",
    "word",
    "or",
    "phrase",
    "yes",
    "no",
    "Yes",
    "No",
    "not",
    "A",
    "B",
    "C",
    "D",
    "one",
    "two",
    "three",
    "four",
    "person",
    "cat",
    "dog",
    "cup",
    "spoon",
    "car",
    "clock",
    "rocket",
    "motorcycle",
    "red",
    "blue",
    "green",
    "left",
    "right",
    "top",
    "bottom",
    "people",
    "man",
    "woman",
    "it",
    "this",
    "that",
]

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ image_placeholder }}{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "qwen2.5-vl": {
        "special_tokens": [
            "<|endoftext|>",
            "<|im_start|>",
            "<|im_end|>",
            "<|vision_start|>",
            "<|vision_end|>",
            "<|image_pad|>",
            "<|video_pad|>",
        ],
        "image_placeholder": "<|vision_start|><|image_pad|><|vision_end|>",
        # head_dim = 32 / 2 heads = 16, so mrope_section sums to 8.
        "text": {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "max_position_embeddings": 2048,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 2, 4]},
        },
        "vision": {
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 32,
            "fullatt_block_indexes": [1],
            "window_size": 56,
        },
        # 4 to 16 merged 28 x 28 patches per image: a handful of image tokens.
        "image_processor": {"min_pixels": 28 * 28 * 4, "max_pixels": 28 * 28 * 16},
    },
    "internvl": {
        "special_tokens": ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>"],
        "image_placeholder": "<IMG_CONTEXT>\n",
        "text": {
            "model_type": "qwen2",
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
        },
        # 28 px tiles of 14 px patches, pixel-shuffled by 0.5: (28/14)^2 * 0.5^2 = 1 token per tile.
        "vision": {
            "hidden_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 32,
            "image_size": [28, 28],
            "patch_size": [14, 14],
        },
        "image_seq_length": 1,
        "image_processor": {"size": {"height": 28, "width": 28}, "crop_to_patches": True, "max_patches": 2},
    },
}


def word_level_tokenizer(special_tokens: list[str], image_placeholder: str, **named_tokens: str):
    """A whitespace/punctuation word-level tokenizer over :data:`WORDS` with a chat template."""
    vocab = {token: i for i, token in enumerate([*special_tokens, *WORDS])}
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    backend.decoder = tokenizers.decoders.WordPiece()  # joins words with spaces
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="<|endoftext|>",
        eos_token="<|im_end|>",
        extra_special_tokens=named_tokens or None,
    )
    tokenizer.add_tokens(special_tokens, special_tokens=True)  # already in the vocabulary: ids unchanged, never split
    tokenizer.chat_template = CHAT_TEMPLATE.replace("{{ image_placeholder }}", image_placeholder)
    return tokenizer


def tiny_qwen2_5_vl() -> tuple[Any, Any]:
    spec = TINY_CONFIGS["qwen2.5-vl"]
    tokenizer = word_level_tokenizer(spec["special_tokens"], spec["image_placeholder"])
    ids = tokenizer.convert_tokens_to_ids
    config = transformers.Qwen2_5_VLConfig(
        text_config={
            **spec["text"],
            "vocab_size": len(tokenizer),
            "bos_token_id": ids("<|endoftext|>"),
            "eos_token_id": ids("<|im_end|>"),
            "pad_token_id": ids("<|endoftext|>"),
        },
        vision_config=spec["vision"],
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    processor = transformers.Qwen2_5_VLProcessor(
        image_processor=transformers.Qwen2VLImageProcessor(**spec["image_processor"]),
        tokenizer=tokenizer,
        video_processor=transformers.Qwen2VLVideoProcessor(),  # required even for images
        chat_template=tokenizer.chat_template,
    )
    return transformers.Qwen2_5_VLForConditionalGeneration(config), processor


def tiny_internvl() -> tuple[Any, Any]:
    spec = TINY_CONFIGS["internvl"]
    tokenizer = word_level_tokenizer(
        spec["special_tokens"],
        spec["image_placeholder"],
        start_image_token="<img>",
        end_image_token="</img>",
        context_image_token="<IMG_CONTEXT>",
        video_token="<video>",
    )
    ids = tokenizer.convert_tokens_to_ids
    config = transformers.InternVLConfig(
        vision_config=spec["vision"],
        text_config={
            **spec["text"],
            "vocab_size": len(tokenizer),
            "bos_token_id": ids("<|endoftext|>"),
            "eos_token_id": ids("<|im_end|>"),
            "pad_token_id": ids("<|endoftext|>"),
        },
        image_token_id=ids("<IMG_CONTEXT>"),
        image_seq_length=spec["image_seq_length"],
    )
    processor = transformers.InternVLProcessor(
        image_processor=transformers.GotOcr2ImageProcessor(**spec["image_processor"]),
        tokenizer=tokenizer,
        video_processor=transformers.InternVLVideoProcessor(),
        image_seq_length=spec["image_seq_length"],
        chat_template=tokenizer.chat_template,
    )
    return transformers.InternVLForConditionalGeneration(config), processor


TINY_VLMS: dict[str, Callable[[], tuple[Any, Any]]] = {"qwen2.5-vl": tiny_qwen2_5_vl, "internvl": tiny_internvl}


def tiny_random_vlm(family: str, seed: int = 0) -> tuple[Any, Any]:
    """(model, processor) of a tiny ``family`` VLM, initialised from ``seed`` without touching the global RNG."""
    if family not in TINY_VLMS:
        raise UnknownNameError(f"unknown tiny VLM 'random:{family}'; known: {', '.join(f'random:{f}' for f in TINY_VLMS)}")
    with seeded(seed):
        model, processor = TINY_VLMS[family]()
    return model.eval(), processor
