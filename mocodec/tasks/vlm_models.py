"""A frozen transformers VLM that answers questions about images by greedy decoding, in batches.

Any image-text-to-text model of transformers works (``AutoModelForImageTextToText`` +
``AutoProcessor`` with a chat template): InternVL3 (``OpenGVLab/InternVL3-1B-hf``),
Qwen2.5-VL (``Qwen/Qwen2.5-VL-3B-Instruct``), a local snapshot folder, or a tiny random
model (``random:qwen2.5-vl``, ``random:internvl``; :mod:`mocodec.tasks.vlm_tiny`).
Weights are fp32 on CPU and bf16 on GPU unless ``dtype`` says otherwise. Prompts are
left-padded so a batch of questions decodes exactly as each would alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image

from mocodec.errors import ConfigError, WeightsError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def default_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def load_vlm(model: str, weights: str | Path | None = None, dtype: torch.dtype = torch.float32, pretrained: bool = True) -> tuple[Any, Any]:
    """(model, processor) for a hub name or snapshot folder (``weights``, a folder, overrides ``model``'s
    files) or ``random:<family>``; ``pretrained=False`` keeps the architecture with random weights."""
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    from mocodec.weights import huggingface_snapshot

    if model.startswith("random:") and weights is None:
        from mocodec.tasks.vlm_tiny import tiny_random_vlm

        net, processor = tiny_random_vlm(model.removeprefix("random:"))
        return net.to(dtype), processor
    folder = huggingface_snapshot(str(weights or model), what="VLM", alternative="--weights DIR")
    try:
        processor = AutoProcessor.from_pretrained(folder)
        if pretrained:
            net = AutoModelForImageTextToText.from_pretrained(folder, dtype=dtype)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                net = AutoModelForImageTextToText.from_config(AutoConfig.from_pretrained(folder)).to(dtype)
    except (OSError, ValueError, KeyError) as exc:  # missing files, unknown architecture, foreign config
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"cannot load a VLM from {folder} ({first}); give a transformers image-text-to-text snapshot") from None
    return net, processor


class VisionLanguageModel:
    """Greedy answers of a frozen VLM: :meth:`answer` maps (image, prompt) pairs to answer texts."""

    def __init__(self, model: Any, processor: Any, max_new_tokens: int = 16, batch_size: int = 8, device: str | torch.device | None = None) -> None:
        from transformers import GenerationConfig

        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.eval().requires_grad_(False).to(self.device)
        self.processor = processor
        self.processor.tokenizer.padding_side = "left"  # generation continues every row from its own last token
        self.batch_size = batch_size
        own = model.generation_config
        self.generation = GenerationConfig(
            do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
            eos_token_id=own.eos_token_id, bos_token_id=own.bos_token_id,
            pad_token_id=own.pad_token_id if own.pad_token_id is not None else processor.tokenizer.pad_token_id,
        )

    @classmethod
    def from_name(
        cls, model: str, weights: str | Path | None = None, pretrained: bool = True, device: str | None = None, dtype: str | None = None, **options: Any,
    ) -> "VisionLanguageModel":
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
                text=[self.chat_text(p) for p in prompts[chunk]], images=list(images[chunk]), return_tensors="pt", padding=True,
            ).to(self.device)
            if "pixel_values" in inputs:
                inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
            out = self.model.generate(**inputs, generation_config=self.generation)
            new_tokens = out[:, inputs["input_ids"].shape[1]:]
            answers.extend(text.strip() for text in self.processor.batch_decode(new_tokens, skip_special_tokens=True))
        return answers
