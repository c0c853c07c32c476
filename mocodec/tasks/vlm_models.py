"""A frozen transformers VLM that answers questions about images by greedy decoding, in batches.

Any image-text-to-text model of transformers works (``AutoModelForImageTextToText`` +
``AutoProcessor`` with a chat template): InternVL3 (``OpenGVLab/InternVL3-1B-hf``),
Qwen2.5-VL (``Qwen/Qwen2.5-VL-3B-Instruct``), a local snapshot folder, or a tiny random
model (``random:qwen2.5-vl``, ``random:internvl``; :mod:`mocodec.tasks.vlm_tiny`).
Weights are fp32 on CPU and bf16 on GPU unless ``dtype`` says otherwise. Prompts are
left-padded so a batch of questions decodes exactly as each would alone.

This module is mocodec's transformers backend: it imports transformers (the optional
``[vlm]`` extra; its import takes a second), so the ``vlm-qa`` task imports it only when
it builds its model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import huggingface_hub
import huggingface_hub.constants
import torch
import transformers
from PIL import Image

from mocodec.errors import ConfigError, WeightsError
from mocodec.tasks.vlm_tiny import tiny_random_vlm
from mocodec.utils.seeding import seeded

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def default_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def huggingface_snapshot(name: str, *, what: str = "model", alternative: str = "--model DIR") -> Path:
    """A local transformers snapshot folder for a hub repo id (``OpenGVLab/InternVL3-1B-hf``) or a folder.

    The hub cache is tried first, so an offline machine with the files cached never waits
    on the network; otherwise the snapshot is downloaded once (weights, configs, tokenizer).
    """
    folder = Path(name).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise WeightsError(f"{what} folder {folder} has no config.json; give a folder written by save_pretrained or `hf download`")
        return folder
    if name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise WeightsError(f"{what} '{name}' is neither a folder nor a hub repo id (owner/name); check the path")
    patterns = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "*.tiktoken"]  # no remote code: never executed here
    for local_only in (True, False):
        try:
            return Path(huggingface_hub.snapshot_download(name, allow_patterns=patterns, local_files_only=local_only))
        except Exception as exc:  # not cached / no network / unknown repo: say what to place where
            error = type(exc).__name__
    cached = Path(huggingface_hub.constants.HF_HUB_CACHE) / f"models--{name.replace('/', '--')}"
    raise WeightsError(
        f"cannot download {what} '{name}' from the Hugging Face hub ({error}); run `hf download {name}` where the hub "
        f"is reachable and copy the cache to {cached}, or pass the snapshot folder as {alternative}"
    )


def load_vlm(model: str, weights: str | Path | None = None, dtype: torch.dtype = torch.float32, pretrained: bool = True) -> tuple[Any, Any]:
    """(model, processor) for a hub name or snapshot folder (``weights``, a folder, overrides ``model``'s
    files) or ``random:<family>``; ``pretrained=False`` keeps the architecture with random weights."""
    if model.startswith("random:") and weights is None:
        net, processor = tiny_random_vlm(model.removeprefix("random:"))
        return net.to(dtype), processor
    folder = huggingface_snapshot(str(weights or model), what="VLM", alternative="--weights DIR")
    try:
        processor = transformers.AutoProcessor.from_pretrained(folder)
        if pretrained:
            net = transformers.AutoModelForImageTextToText.from_pretrained(folder, dtype=dtype)
        else:
            with seeded(0):
                net = transformers.AutoModelForImageTextToText.from_config(transformers.AutoConfig.from_pretrained(folder)).to(dtype)
    except (OSError, ValueError, KeyError) as exc:  # missing files, unknown architecture, foreign config
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"cannot load a VLM from {folder} ({first}); give a transformers image-text-to-text snapshot") from None
    return net, processor


class VisionLanguageModel:
    """Greedy answers of a frozen VLM: :meth:`answer` maps (image, prompt) pairs to answer texts."""

    def __init__(
        self, model: Any, processor: Any, max_new_tokens: int = 16, batch_size: int = 8, device: str | torch.device | None = None
    ) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.eval().requires_grad_(False).to(self.device)
        self.processor = processor
        self.processor.tokenizer.padding_side = "left"  # generation continues every row from its own last token
        self.batch_size = batch_size
        own = model.generation_config
        self.generation = transformers.GenerationConfig(
            do_sample=False,
            num_beams=1,
            max_new_tokens=max_new_tokens,
            eos_token_id=own.eos_token_id,
            bos_token_id=own.bos_token_id,
            pad_token_id=own.pad_token_id if own.pad_token_id is not None else processor.tokenizer.pad_token_id,
        )

    @classmethod
    def from_name(
        cls,
        model: str,
        weights: str | Path | None = None,
        pretrained: bool = True,
        device: str | None = None,
        dtype: str | None = None,
        **options: Any,
    ) -> VisionLanguageModel:
        target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dtype is not None and dtype not in DTYPES:
            raise ConfigError(f"unknown dtype '{dtype}'; use one of {', '.join(DTYPES)}")
        net, processor = load_vlm(model, weights, DTYPES[dtype] if dtype else default_dtype(target), pretrained)
        return cls(net, processor, device=target, **options)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def chat_text(self, prompt: str) -> str:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    @torch.no_grad()
    def answer(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[str]:
        """The model's answer to ``prompts[i]`` about ``images[i]``, ``batch_size`` pairs per ``generate``."""
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images for {len(prompts)} prompts")
        answers: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = slice(start, start + self.batch_size)
            inputs = self.processor(
                text=[self.chat_text(p) for p in prompts[chunk]],
                images=list(images[chunk]),
                return_tensors="pt",
                padding=True,
            ).to(self.device)
            if "pixel_values" in inputs:
                inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
            out = self.model.generate(**inputs, generation_config=self.generation)
            new_tokens = out[:, inputs["input_ids"].shape[1] :]
            answers.extend(text.strip() for text in self.processor.batch_decode(new_tokens, skip_special_tokens=True))
        return answers
