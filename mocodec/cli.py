"""Where the ``mocodec`` console script pointed before :mod:`mocodec.commands`: installs made earlier still run.

Reinstalling (``pip install -e .``) points the script at ``mocodec.commands:main``; then this module can go.
"""

from mocodec.commands import main

__all__ = ["main"]
