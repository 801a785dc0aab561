# Type stubs of the rsa_gpu package (the public API of python/rsa_gpu/_api.py and cnn.py; docstrings there).
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str
Device = Union[str, int]
ArrayLike = Any  # numpy array_like, torch tensor (CPU or CUDA), cupy array

def rdm(x: ArrayLike, *, device: Device = "auto", precision: str = "fp32",
        max_gpu_mem: Union[None, int, str] = None, constant_rows: str = "fail",
        progress: bool = False, method: str = "correlation", noise: Union[None, str, ArrayLike] = None,
        conditions: Optional[ArrayLike] = None, runs: Optional[ArrayLike] = None) -> npt.NDArray[np.float32]: ...

@dataclass
class EvaluateResult:
    names: List[str]
    evaluation: npt.NDArray[np.float64]
    se: npt.NDArray[np.float64]
    ci_low: npt.NDArray[np.float64]
    ci_high: npt.NDArray[np.float64]
    p_zero: npt.NDArray[np.float64]
    p_noise: npt.NDArray[np.float64]
    pairwise: npt.NDArray[np.float64]
    noise_ceiling: Tuple[float, float]
    ci_type: str
    samples: npt.NDArray[np.float64]
    noise_ceiling_samples: npt.NDArray[np.float64]
    per_rdm: npt.NDArray[np.float64]
    json: Dict[str, Any]

def evaluate(data: ArrayLike, models: Any, *, method: str = "corr", inference: str = "fixed", bootstrap: int = 1000,
             permutations: int = 0, seed: int = 1, correction: str = "fdr", ci: float = 0.95,
             names: Optional[Sequence[str]] = None, device: Device = "auto",
             progress: bool = False, test_type: str = "t-test",
             max_gpu_mem: Union[None, int, str] = None) -> EvaluateResult: ...

@dataclass(frozen=True)
class CompareTable:
    methods: Tuple[str, ...]
    values: npt.NDArray[np.float64]
    pairs: npt.NDArray[np.int64]
    skipped: npt.NDArray[np.int64]
    def __getitem__(self, method: str) -> npt.NDArray[np.float64]: ...
    def to_dict(self) -> Dict[str, npt.NDArray[np.float64]]: ...

def compare(a: ArrayLike, b: Union[ArrayLike, Sequence[ArrayLike]], method: str = "pearson", *,
            methods: Optional[Sequence[str]] = None, device: Device = "auto") -> Union[float, CompareTable]: ...
def cka(x: ArrayLike, y: ArrayLike, debiased: bool = False, *, device: Device = "auto") -> float: ...

@dataclass(frozen=True)
class BootstrapResult:
    value: Union[float, npt.NDArray[np.float64]]
    ci_low: Union[float, npt.NDArray[np.float64]]
    ci_high: Union[float, npt.NDArray[np.float64]]
    nan_samples: Union[int, npt.NDArray[np.int64]]
    n: int
    seed: int
    samples: Optional[npt.NDArray[np.float64]] = ...

def bootstrap(ref: ArrayLike, models: Union[ArrayLike, Sequence[ArrayLike]], n: int = 10000, seed: int = 1, *,
              samples: bool = False, device: Device = "auto", progress: bool = False) -> BootstrapResult: ...

@dataclass(frozen=True)
class PermutationResult:
    value: Union[float, npt.NDArray[np.float64]]
    p_value: Union[float, npt.NDArray[np.float64]]
    n: int
    seed: int
    null: Optional[npt.NDArray[np.float64]] = ...

def permutation(ref: ArrayLike, models: Union[ArrayLike, Sequence[ArrayLike]], n: int = 10000, seed: int = 1, *,
                samples: bool = False, device: Device = "auto", progress: bool = False) -> PermutationResult: ...

@dataclass(frozen=True)
class NoiseCeilingResult:
    ceiling: float
    r_half_mean: float
    r_half: npt.NDArray[np.float64]
    bins_kept: int
    bins_dropped: int
    kept_ids: npt.NDArray[np.int64]

def noise_ceiling(resp: ArrayLike, bins: ArrayLike, splits: int = 1, seed: int = 1, *,
                  device: Device = "auto") -> NoiseCeilingResult: ...
def gratings(angles: ArrayLike, *, sf: float = ..., res: float = 0.1,
             device: Device = "auto") -> npt.NDArray[np.float32]: ...
def devices() -> List[str]: ...
def versions() -> str: ...

@dataclass
class TutorialResults:
    correlations: List[Dict[str, Any]]
    device: str
    rdms: Dict[str, npt.NDArray[np.float32]]
    out: Optional[str]
    json: Dict[str, Any]
    def value(self, layer: str, measure: str = "pearson") -> float: ...
    def table(self) -> str: ...

def run_tutorial(v1: Union[None, str, Tuple[ArrayLike, ArrayLike]] = None, *, device: Device = "auto",
                 out: Optional[str] = None, force: bool = False, layers: Sequence[str] = ("pool", "fc"),
                 measures: Sequence[str] = ("pearson",), no_cnn: bool = False, load_model: Optional[str] = None,
                 save_model: Optional[str] = None, epochs: int = 25, batch: int = 100, train_size: int = 1000,
                 lr: float = 5e-4, momentum: float = 0.99, seed: int = 12, cnn_kernels: str = "cudnn",
                 cka: bool = False,
                 bootstrap: Optional[int] = None, permutations: Optional[int] = None, noise_ceiling: bool = False,
                 stats_seed: int = 1, v1_seed: int = 2021, constant_rows: str = "fail", precision: str = "fp32",
                 max_gpu_mem: Union[None, int, str] = None, figures: bool = False,
                 verbose: bool = False, progress: bool = False) -> TutorialResults: ...

class CNN:
    layers: List[str]
    seed: int
    device: Device
    step_losses: Optional[npt.NDArray[np.float32]]
    epoch_losses: Optional[npt.NDArray[np.float32]]
    train_accuracy: Optional[Tuple[int, int]]
    def __init__(self, seed: int = 12, *, device: Device = "auto") -> None: ...
    def train(self, images: Optional[ArrayLike] = None, labels: Optional[ArrayLike] = None, *, epochs: int = 25,
              batch: int = 100, train_size: int = 1000, lr: float = 5e-4, momentum: float = 0.99,
              seed: Optional[int] = None, cnn_kernels: str = "cudnn") -> npt.NDArray[np.float32]: ...
    def forward(self, images: ArrayLike,
                layers: Sequence[str] = ("pool", "fc")) -> Dict[str, npt.NDArray[np.float32]]: ...
    def state_dict(self) -> Dict[str, npt.NDArray[np.float32]]: ...
    def load_state_dict(self, state: Dict[str, Any]) -> None: ...
    def save(self, path: str) -> None: ...
    @classmethod
    def load(cls, path: str, *, device: Device = "auto") -> "CNN": ...
