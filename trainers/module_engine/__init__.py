"""The stacked engine for any ``torch.nn.Module``: the k folds of several trials train as one
stack through ``torch.func`` (vmap over ``functional_call``), or one model at a time with
``torch.optim`` when vmap cannot run the module. Each outcome says which engine ran and why.

torch, numpy and scikit-learn only, like the rest of :mod:`trainers`.

Example:
    >>> data = prepare_module_folds(images, labels, list(KFold(5).split(images)), device=device)
    >>> outcomes = train_module_stack(data, make_cnn, configs, loss="cross_entropy")
"""

from trainers.module_engine._data import ModuleFoldData, module_folds_from, prepare_module_folds
from trainers.module_engine._run import (
    ENGINES,
    ModuleCVResult,
    ModuleOutcome,
    resolved_batch_size,
    stack_key,
)
from trainers.module_engine._stack import (
    ModelFactory,
    ModuleStack,
    Probe,
    build_module,
    fold_seed,
    probe_vmap,
)
from trainers.module_engine._train import train_module_folds, train_module_stack

__all__ = [
    "ENGINES",
    "ModelFactory",
    "ModuleCVResult",
    "ModuleFoldData",
    "ModuleOutcome",
    "ModuleStack",
    "Probe",
    "build_module",
    "fold_seed",
    "module_folds_from",
    "prepare_module_folds",
    "probe_vmap",
    "resolved_batch_size",
    "stack_key",
    "train_module_folds",
    "train_module_stack",
]
