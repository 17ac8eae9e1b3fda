"""Benchmark harness of tkprefix: sweeps, timing, peers, roofline, end-to-end decode, check and record.

Entry points (``tkprefix <cmd>`` → ``main(argv)``): :mod:`.cli_bench` (bench), :mod:`.check` (check),
:mod:`.record` (record); provenance (``tkprefix env``) lives in :mod:`tkprefix.provenance`.
Only :mod:`.stats`, :mod:`.schema`, :mod:`.cases` and :mod:`.record` are GPU-free (tested on the CPU).
"""
