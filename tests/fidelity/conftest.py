"""The fidelity corpus: run with `make test-fidelity` (THAW_BIN names the binary to test)."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
