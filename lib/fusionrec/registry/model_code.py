"""The registered model's code: MLflow builds the model by running this file (models from code).

:func:`fusionrec.registry.packaging.log_serving_model` logs it as the ``python_model``, with
the serving modules it imports as ``code_paths``; the limits come from the model's
``model_config`` and the arrays from its artifacts, both read in
:meth:`fusionrec.registry.pyfunc.FusionRecommender.load_context`.
"""

import mlflow

from fusionrec.registry.pyfunc import FusionRecommender

mlflow.models.set_model(FusionRecommender())
