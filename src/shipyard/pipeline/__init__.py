"""The road as one function, ``build``: load → data → reference → plan → make and verify → time →
choose → package.

build.py      the pipeline itself and its options (``BuildOptions``, ``build``)
inputs.py     the build's data: --data, input hints, synthetic data
plan.py       which candidates to try: every backend × every precision
targets.py    --target cpu|edge|gpu → default backends and precisions
workshop.py   making a candidate's artifact from its recipe, step by step, prefixes shared
"""
