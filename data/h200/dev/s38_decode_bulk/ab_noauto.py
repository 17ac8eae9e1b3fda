"""Session 35's ab.py with the default dispatch's fused picks off (tk_hydragen.PREFIX_DECODE_AUTO = False), so that
its `step` is the two-kernel step on every shape: the baseline that a rule for prefix_decode=None is fitted against.
    python3 ab_noauto.py OUT.csv [REPS]"""
import runpy
from pathlib import Path

from tkprefix import tk_hydragen as tkh

tkh.PREFIX_DECODE_AUTO = False
runpy.run_path(str(Path(__file__).parents[1] / "s35_prefix_decode/ab.py"), run_name="__main__")
