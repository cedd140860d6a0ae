"""Benchmarks for sam2web (run by hand: ``python -m bench.run [--quick]``; they measure, never fail).

Modules: ``data`` (synthetic inputs), ``worker`` (one model measurement per subprocess: sam2web,
pure model, plain SAM2 recipe), ``post`` (re-polygonize and frame-view timings), ``gpu`` (CUDA rows),
``run`` (orchestration, table, final JSON line).
"""
