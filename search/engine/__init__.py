"""The run, in the driver: the Ray session, the Tuner and resume, Optuna and ASHA, the run's callbacks.

* :mod:`.run` — ``run_experiment`` / ``resume_experiment``;
* :mod:`.session` — join a cluster or start an embedded one;
* :mod:`.tuner` — the Tuner of a spec;
* :mod:`.searcher`, :mod:`.scheduler` — Optuna told the truth about ASHA's cuts;
* :mod:`.callbacks` — progress lines, and disk kept bounded;
* :mod:`.plan` — the plan ``validate`` prints.

Ray is imported when a run starts, not when this package is imported.
"""
