"""MLflow on the embedded SQLite store: runs, registry, aliases, load by alias."""

import mlflow
import numpy as np
import pandas as pd

from fusionrec.registry.store import StoreError, configure_mlflow


class _Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input * 2


def test_run_register_and_load_by_alias(mlflow_cfg):
    client = configure_mlflow(mlflow_cfg.mlflow)
    with mlflow.start_run() as run:
        mlflow.log_params({"rank": 32, "alpha": 10.0})
        mlflow.log_metric("ndcg_at_10", 0.123)
        info = mlflow.pyfunc.log_model(name="model", python_model=_Doubler(),
                                       input_example=pd.DataFrame({"x": [1.0]}))
    stored = client.get_run(run.info.run_id)
    assert stored.data.params["rank"] == "32" and stored.data.metrics["ndcg_at_10"] == 0.123

    version = mlflow.register_model(info.model_uri, "doctor-test")
    client.set_registered_model_alias("doctor-test", "champion", version.version)
    model = mlflow.pyfunc.load_model("models:/doctor-test@champion")
    out = model.predict(pd.DataFrame({"x": [1.0, 2.5]}))
    np.testing.assert_allclose(np.asarray(out["x"]), [2.0, 5.0])


def test_unreachable_store_is_one_clear_line(mlflow_cfg, tmp_path):
    bad = mlflow_cfg.mlflow.__class__(**{**mlflow_cfg.mlflow.__dict__,
                                         "tracking_uri": "sqlite:////proc/forbidden/mlflow.db"})
    try:
        configure_mlflow(bad)
    except (StoreError, OSError) as exc:
        assert "/proc/forbidden" in str(exc)
    else:
        raise AssertionError("expected the unreachable store to fail")
