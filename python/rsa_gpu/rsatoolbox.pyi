# Type stubs of rsa_gpu.rsatoolbox (the rsatoolbox bridge; rsatoolbox's own types in and out).
from typing import Any, Optional, Union

import numpy as np
import numpy.typing as npt

def calc_rdm(dataset: Any, method: str = "correlation", descriptor: Optional[str] = None, *,
             device: Union[str, int] = "auto", **kwargs: Any) -> Any: ...
def compare(rdm1: Any, rdm2: Any, method: str = "cosine", *, device: Union[str, int] = "auto",
            **kwargs: Any) -> npt.NDArray[np.float64]: ...
def eval_bootstrap_pattern(models: Any, data: Any, method: str = "corr", N: int = 1000, seed: int = 1, *,
                           device: Union[str, int] = "auto") -> Any: ...
