"""`python -m keras_albert.cli ...`, the same as `keras-albert ...`."""

import sys

from keras_albert.cli import main

sys.exit(main())
