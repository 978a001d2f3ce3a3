"""Model registry. Built-in lifters register themselves on import; plug-ins come from the
``liftbench.models`` entry-point group. Adding a lifter means adding one file here (and one
import line below) or shipping it in your own package with an entry point."""

from liftbench.models import mixste, mlp, motionbert, seq2seq, tcn  # noqa: F401  (registration side effect)
from liftbench.models.base import (  # noqa: F401
    LIFTERS,
    Contract,
    Lifter,
    NormStats,
    create_lifter,
    lifter_contract,
    list_lifters,
    trainable_parameters,
)
