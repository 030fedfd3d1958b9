"""The run, in the driver: the Ray session, the Tuner and resume, Optuna and ASHA, the run's callbacks.

* :mod:`.run` — ``run_experiment`` / ``resume_experiment``;
* :mod:`.session` — join a cluster or start an embedded one;
* :mod:`.tuner` — the Tuner of a spec;
* :mod:`.searcher`, :mod:`.scheduler` — Optuna told the truth about ASHA's cuts;
* :mod:`.progress` — what a run shows while it runs: event and status lines, the live panel;
* :mod:`.console` — where those lines go, the command's clock, the run's header;
* :mod:`.callbacks` — disk kept bounded, the time budget's stops told to Optuna;
* :mod:`.plan` — the plan ``validate`` prints.

Ray is imported when a run starts, not when this package is imported.
"""
