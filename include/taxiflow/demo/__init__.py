"""Synthetic but realistic TLC months for demos, tests and benchmarks (``make run --demo``).

``python -m taxiflow.demo`` writes some into landing/ (:mod:`taxiflow.demo.trips`).
"""
