"""CDF tables in the form CompressAI's rANS coder takes, prepared once per image, and the latent check.

CompressAI's coder takes the tables as Python lists and converts all of them to C++ on every
call: for the default scale table, 64 rows padded to the longest (~3,100 entries), some
200,000 integers, paid once per position by a serial decoder. The coder reads row ``i`` only
for symbols of index ``i``, and only its first ``cdf_length[i]`` entries, so the rows here are
trimmed to their lengths and a decoding call gets only the rows its indexes use (renumbered):
the symbols and the bytes are those of the full tables.

Where the tables come from is the caller's choice: an entropy model's own buffers (CompressAI's
coder, :meth:`RansTables.of`) or the portable float64 derivation of :mod:`mocodec.codecs.exact`.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import torch
from compressai.ans import BufferedRansEncoder, RansDecoder
from compressai.entropy_models import EntropyModel, GaussianConditional
from torch import Tensor


class RansTables:
    """Quantised CDF rows (``cdfs[i][:cdf_lengths[i]]``) and symbol offsets, ready for the rANS coder."""

    def __init__(self, quantized_cdf: Tensor, cdf_lengths: Tensor, offsets: Tensor) -> None:
        lengths = cdf_lengths.reshape(-1).int().tolist()
        self.cdfs = [row[:n] for row, n in zip(quantized_cdf.tolist(), lengths)]
        self.cdf_lengths = lengths
        self.offsets = offsets.reshape(-1).int().tolist()

    @classmethod
    def of(cls, entropy_model: EntropyModel) -> RansTables:
        """The tables an entropy model holds (filled by its ``update()`` or loaded with its weights)."""
        return cls(entropy_model._quantized_cdf, entropy_model._cdf_length, entropy_model._offset)

    def encode(self, symbols: Tensor, indexes: Tensor) -> bytes:
        """One rANS string of ``symbols`` (flattened), each coded with the CDF row of its index."""
        encoder = BufferedRansEncoder()
        encoder.encode_with_indexes(symbols.flatten().tolist(), indexes.flatten().tolist(), self.cdfs, self.cdf_lengths, self.offsets)
        return encoder.flush()

    def decoder(self, string: bytes) -> RansDecoder:
        decoder = RansDecoder()
        decoder.set_stream(string)
        return decoder

    def decode(self, decoder: RansDecoder, indexes: Tensor) -> Tensor:
        """The next ``indexes.numel()`` symbols of ``decoder``'s string, int32, the shape (and device) of ``indexes``."""
        # Only the rows these symbols use cross into C++: index i becomes its rank among them.
        rows, ranks = torch.unique(indexes, return_inverse=True)
        rows = rows.tolist()
        symbols = decoder.decode_stream(
            ranks.flatten().tolist(),
            [self.cdfs[i] for i in rows],
            [self.cdf_lengths[i] for i in rows],
            [self.offsets[i] for i in rows],
        )
        return torch.tensor(symbols, dtype=torch.int32, device=indexes.device).view(indexes.shape)


def scale_indexes(gaussian_conditional: GaussianConditional, scales: Tensor) -> Tensor:
    """The CDF row of every scale (int32, the shape of ``scales``): CompressAI's ``build_indexes``, vectorised.

    Row ``i`` is the number of thresholds (all table entries but the last) below the scale,
    counted as CompressAI counts it: the last row minus the thresholds with ``scale <= t``.
    """
    thresholds = gaussian_conditional.scale_table[:-1]
    scales = torch.max(scales, gaussian_conditional.lower_bound_scale.bound)
    at_or_below = (scales.unsqueeze(-1) <= thresholds).sum(dim=-1, dtype=torch.int32)
    return len(thresholds) - at_or_below


def latent_check(symbols: Sequence[Tensor]) -> int:
    """CRC-32 of the integer symbols an entropy decoder must recover, in coding order (int32, little-endian).

    A file records it; the decoder recomputes it from what it decoded, so a decoder whose
    entropy parameters differ from the encoder's (other arithmetic, or an altered payload)
    is caught before any image is written.
    """
    check = 0
    for s in symbols:
        check = zlib.crc32(s.detach().to(torch.int32).cpu().numpy().astype("<i4").tobytes(), check)
    return check


__all__ = ["RansTables", "scale_indexes", "latent_check"]
