"""The distortion registry; importing :mod:`mocodec.losses` fills it."""

from mocodec.registry import Registry

DISTORTIONS = Registry("distortion")
register_distortion = DISTORTIONS.register
