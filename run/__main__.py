"""``python -m run --config configs/runs/demo.yaml``: the run orchestrator (run/orchestrator.py)."""

from run.orchestrator import main

if __name__ == "__main__":
    main()
