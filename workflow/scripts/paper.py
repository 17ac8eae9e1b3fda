"""paper/build/tkprefix.pdf: latexmk in a fresh scratch folder, then one rename onto the output.

A build killed at any point leaves either no PDF or the previous complete one, never a half-written PDF, and no
half-written .aux for the next build to trip over. The PDF depends on the data only: SOURCE_DATE_EPOCH is the time
the data were recorded (the run's provenance.json), and tkprefix.tex omits pdfTeX's dates, trailer ID and /PTEX.*
entries, so two builds from the same data are byte-identical.
"""
import datetime
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


def source_date_epoch(provenance: Path) -> int:
    """When the data were recorded (started_utc, else collected_utc, of the run's provenance.json); 0 if unknown."""
    prov = json.loads(provenance.read_text()) if provenance.is_file() else {}
    for key in ("started_utc", "collected_utc"):
        value = str(prov.get(key) or "")
        for fmt in ("%Y%m%dT%H%M%SZ", "%Y-%m-%dT%H:%M:%S%z"):
            try:
                t = datetime.datetime.strptime(value, fmt)
            except ValueError:
                continue
            return int(t.replace(tzinfo=t.tzinfo or datetime.timezone.utc).timestamp())
    return 0


def main(tex: str, data_dir: str, pdf: str) -> None:
    tex, pdf = Path(tex), Path(pdf)
    scratch = pdf.parent / ".latexmk"  # fresh each build: nothing left by a killed one is reused
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    epoch = source_date_epoch(Path(data_dir) / "provenance.json")
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch), "FORCE_SOURCE_DATE": "1"}
    cmd = ["latexmk", "-pdf", "-cd", "-interaction=nonstopmode", "-halt-on-error",
           f"-outdir={os.path.relpath(scratch, tex.parent)}", str(tex)]
    print(f"SOURCE_DATE_EPOCH={epoch} {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, env=env, check=True, stdout=sys.stdout, stderr=sys.stderr)
    os.replace(scratch / f"{tex.stem}.pdf", pdf)
    shutil.rmtree(scratch)
    print(f"wrote {pdf}")


if "snakemake" in globals():
    with open(snakemake.log[0], "w") as log:  # noqa: F821 (injected by Snakemake's script directive)
        sys.stdout = sys.stderr = log
        main(snakemake.input.tex, snakemake.params.data, snakemake.output[0])  # noqa: F821
