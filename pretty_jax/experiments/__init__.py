"""The paper's experiments as resumable runs: `Settings` (config.py) -> a checked `Plan`
(plan.py: inputs read, nothing loaded) -> `run_experiment` (runner.py) runs each language
pair (pair.py) through its stages (stages.py) with priors (priors.py) and writes
results.json / report.md (report.py)."""

from pretty_jax.experiments.config import Settings
from pretty_jax.experiments.plan import Plan, plan_experiment
from pretty_jax.experiments.runner import run_experiment

__all__ = ["Plan", "Settings", "plan_experiment", "run_experiment"]
