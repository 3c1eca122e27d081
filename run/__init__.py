"""The run layer, the roof: one run config (configs/runs/, docs/runs.md) from raw corpora to a trained model.

``python -m run --config configs/runs/demo.yaml`` runs ``run/orchestrator.py``, which chains the stages of every
package below; ``run/report.py`` (+ ``report_figures.py``) turns a work directory into the report;
``run/dataset_card.py`` writes the mixture's dataset card. Nothing below imports this package.
"""
