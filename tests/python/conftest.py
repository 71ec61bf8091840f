import os
import sys

# The module is built into build/python (CTest passes its path in ATTEND_PYTHONPATH).
sys.path.insert(0, os.environ.get("ATTEND_PYTHONPATH", os.path.join(os.path.dirname(__file__), "..", "..", "build", "python")))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
