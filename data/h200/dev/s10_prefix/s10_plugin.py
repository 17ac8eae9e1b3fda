"""pytest -p s10_plugin: every prefix launch of the test run uses the variant in $S10_VARIANT (overlap,max_blocks)."""
import os
from tkprefix import tk_hydragen as tkh

ov, mb = os.environ.get("S10_VARIANT", "0,0").split(",")
tkh.PREFIX_OVERLAP, tkh.PREFIX_MAX_BLOCKS = bool(int(ov)), int(mb)
print(f"s10_plugin: PREFIX_OVERLAP={tkh.PREFIX_OVERLAP} PREFIX_MAX_BLOCKS={tkh.PREFIX_MAX_BLOCKS}")
