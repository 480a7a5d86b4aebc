"""Small, fast settings of every registered method for the tests that build each one (tests/test_stage_terms.py,
tests/ddp_worker.py, tests/test_method_contract.py): each method's own ``smoke_params`` (declared in its file, so a
new method needs no entry here); switches that add a stage are on there, so every kind of stage is exercised."""

from bitrieve.methods import REGISTRY, get_method


def small_settings(batch_size: int) -> dict[str, dict]:
    """name -> Params keyword arguments: the method's ``smoke_params`` and ``batch_size`` where it has one."""
    out = {}
    for name in REGISTRY:
        cls = get_method(name)
        params = dict(cls.smoke_params)
        if "batch_size" in cls.Params.model_fields:
            params["batch_size"] = batch_size
        out[name] = params
    return out
