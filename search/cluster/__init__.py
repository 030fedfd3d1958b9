"""Talk to a Ray cluster through its Jobs API: submit a run, list, status, logs, stop (:mod:`.jobs`)."""
