"""Testing toolkit: pure-Python reference models and Hypothesis strategies.

The reference models restate the documented rules (docs/fidelity.md,
docs/snp.md, docs/tdx.md) in the plainest Python possible (one bit per unit
in a Python int, no cleverness) so they can serve as oracles for the C core
and for other implementations.
"""
