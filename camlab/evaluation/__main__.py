"""``python -m camlab.evaluation``: the evaluation harness's command line (:mod:`camlab.evaluation.cli`)."""

import sys

from .cli import main

sys.exit(main())
