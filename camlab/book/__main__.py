"""``python -m camlab.book``: run, export or strip the notebooks (:mod:`camlab.book.notebooks`)."""

import sys

from .notebooks import main

sys.exit(main())
