"""What a user does after a run: the results table, the best trial, its features and model.

Everything works from the experiment folder alone, in a new process, with no cluster and
no Ray import (Tune's experiment state is read as plain JSON: :mod:`search.results.tune_state`)::

    from search.results import load_results, best_trial, feature_table, load_model, load_predictor

    df = load_results("results/quickstart")      # one row per trial, sorted by the metric
    best = best_trial("quickstart")              # a bare name is looked up under ./results/
    print(best.to_yaml())                        # its parameters, ready to paste under `fixed:`
    model = load_model("quickstart")             # the best trial's trained model, in eval mode
    predictor = load_predictor("quickstart")     # that model with its preprocessing, for raw data
    labels = predictor.predict(new_rows)         # a DataFrame of raw features, columns by name

The modules: :mod:`.folder` reads the folder, :mod:`.searcher_state` the saved Optuna study,
:mod:`.outcomes` says how each trial ended, :mod:`.table` builds the table and picks the
best trial, :mod:`.features` and :mod:`.model` read its checkpoint, :mod:`.predict` applies
its model to new data, :mod:`.export`, :mod:`.report` and :mod:`.summary` present it.
"""

from search.results.features import feature_table, selection_matrix
from search.results.folder import ResultsError, best_checkpoint
from search.results.model import load_model
from search.results.outcomes import Outcome, TrialFacts, classify, pareto_front
from search.results.predict import InputDataError, Predictor, load_predictor
from search.results.table import (
    DEFAULT_EXPORTS,
    BestTrial,
    ExperimentResults,
    best_column,
    best_trial,
    load_results,
    open_results,
    param_column,
    write_default_exports,
)

__all__ = ["ResultsError", "Outcome", "TrialFacts", "classify", "pareto_front", "ExperimentResults", "open_results",
           "load_results", "BestTrial", "best_trial", "best_column", "param_column", "best_checkpoint", "feature_table",
           "selection_matrix", "load_model", "write_default_exports", "DEFAULT_EXPORTS", "Predictor", "load_predictor",
           "InputDataError"]
