"""The codec registry; importing :mod:`mocodec.codecs` fills it."""

from mocodec.registry import Registry

CODECS = Registry("codec")
register_codec = CODECS.register
