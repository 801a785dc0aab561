"""rsa_gpu.CNN: the tutorial's CNN (conv 6@7x7 + ReLU, maxpool 8, fc 10, out 1 + sigmoid) on the engine, with its
parameters in PyTorch's state_dict names and shapes (the layout of model.npz, include/rsa_gpu/cnn.h)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from . import _core
from ._api import _device, _int_in, _real, _seed
from ._arrays import as_host_f32

# state_dict order and shapes: offsets into the flat parameter buffer follow this order (cnn.h).
_LAYOUT = (
    ("conv.weight", (6, 1, 7, 7)),
    ("conv.bias", (6,)),
    ("fc.weight", (10, 288)),
    ("fc.bias", (10,)),
    ("out.weight", (1, 10)),
    ("out.bias", (1,)),
)


class CNN:
    """The tutorial's CNN: input B x 1 x 48 x 64 -> conv 6@7x7 pad 3 -> ReLU -> maxpool 8 ('pool', B x 288)
    -> fc 288->10 ('fc', before ReLU; 'fc_relu' after) -> out 10->1 ('out', the logit) -> sigmoid.

    Parameters
    ----------
    seed : int, default 12
        The initial weights as ``torch.manual_seed(seed); CNN(48, 64)`` draws them in the tutorial (conv: its six
        fixed filters, bias 0; fc and out: uniform in +-1/sqrt(fan_in)).
    device : {"auto", "cpu"} or int, default "auto"
        Where training and forward passes run.

    Examples
    --------
    >>> net = rsa_gpu.CNN()
    >>> net.train()                                       # the tutorial's 25 epochs on 1,000 gratings
    >>> acts = net.forward(rsa_gpu.gratings([-45, 0, 45]), layers=["pool", "fc"])
    >>> acts["pool"].shape
    (3, 288)
    """

    #: names of the layers :meth:`forward` reads out
    layers: List[str] = list(_core.layer_names())

    def __init__(self, seed: int = 12, *, device: Union[str, int] = "auto") -> None:
        self.seed = _seed("seed", seed)
        self.device = device
        self._params = _core.cnn_init_params(self.seed)
        #: losses of the last :meth:`train` (every mini-batch, and the last mini-batch of each epoch)
        self.step_losses: Optional[np.ndarray] = None
        self.epoch_losses: Optional[np.ndarray] = None
        #: training-set accuracy of the last tutorial training: (correct, total)
        self.train_accuracy: Optional[tuple] = None

    # ---------------------------------------------------------------- training
    def train(
        self,
        images: Any = None,
        labels: Any = None,
        *,
        epochs: int = 25,
        batch: int = 100,
        train_size: int = 1000,
        lr: float = 5e-4,
        momentum: float = 0.99,
        seed: Optional[int] = None,
        cnn_kernels: str = "cudnn",
    ) -> np.ndarray:
        """Train with SGD + momentum on the binary cross-entropy (PyTorch's definitions).

        Without `images`: the tutorial's training, from the initial weights of `seed` (default: the constructor's)
        on its `train_size` gratings at random orientations (label 1 when tilted right); with seed 12 it prints
        (and returns) the tutorial's losses. With `images` (n, 48, 64) or (n, 3072) and `labels` (n,) in {0, 1}:
        training continues from the current weights on them, the mini-batch order drawn from `seed`.

        Parameters
        ----------
        images : array_like, optional
        labels : array_like, optional
        epochs : int, default 25
        batch : int, default 100
        train_size : int, default 1000
            Tutorial training only.
        lr : float, default 5e-4
        momentum : float, default 0.99
        seed : int, optional
        cnn_kernels : {"cudnn", "exact"}, default "cudnn"
            The GPU's training path (the command line's ``--cnn-kernels``): cuDNN convolution and pooling, or the
            exact kernels that repeat the CPU twin's arithmetic bit for bit. On the CPU both are the same twin. cuDNN
            routes a tied maximum's gradient its own way, so on the tutorial's binary gratings its trajectory
            differs from the exact path's within the README's stated tolerances.

        Returns
        -------
        ndarray, shape (epochs,), float32
            The loss on the last mini-batch of each epoch.
        """
        epochs = _int_in("epochs", epochs, 1, 1_000_000, "an integer 1 to 1,000,000")
        batch = _int_in("batch", batch, 1, 100_000, "an integer 1 to 100,000")
        lr = _real("lr", lr, 0.0, 1e6, lo_open=True, hi_open=False, text="a finite number > 0 and <= 1e6")
        momentum = _real("momentum", momentum, 0.0, 1.0, lo_open=False, hi_open=True,
                         text="a finite number >= 0 and < 1")
        seed = self.seed if seed is None else _seed("seed", seed)
        if cnn_kernels not in ("cudnn", "exact"):
            raise ValueError(f"cnn_kernels: expected 'cudnn' or 'exact', got {cnn_kernels!r}")
        dev = _device(self.device)
        if images is None:
            if labels is not None:
                raise ValueError("labels: given without images")
            train_size = _int_in("train_size", train_size, 1, 100_000_000, "an integer 1 to 100,000,000")
            params, steps, ep, correct, total, _ = _core.cnn_train_tutorial(epochs, batch, train_size, lr, momentum,
                                                                            seed, dev, cnn_kernels)
            self.train_accuracy = (correct, total)
        else:
            im = self._images(images)
            lab = as_host_f32(labels, "labels", ndim=1)
            if lab.shape[0] != im.shape[0]:
                raise ValueError(f"labels: {lab.shape[0]} labels for {im.shape[0]} images")
            params, steps, ep = _core.cnn_train(self._params, im, lab, epochs, batch, lr, momentum, seed, dev,
                                                cnn_kernels)
        self._params = params
        self.step_losses, self.epoch_losses = steps, ep
        return ep

    # ---------------------------------------------------------------- read-out
    def forward(self, images: Any, layers: Sequence[str] = ("pool", "fc")) -> Dict[str, np.ndarray]:
        """Activations of `layers` for `images`.

        Parameters
        ----------
        images : array_like, shape (B, 48, 64) or (B, 3072)
            E.g. :func:`rsa_gpu.gratings` at the default resolution.
        layers : list of str, default ("pool", "fc")
            Any of conv (B x 6*48*64, before ReLU), pool (B x 288), fc (B x 10, before ReLU), fc_relu, out (B x 1,
            the logit).

        Returns
        -------
        dict of str to ndarray (B, units), float32
        """
        if isinstance(layers, str):
            layers = [layers]
        return _core.cnn_forward(self._params, self._images(images), list(layers), _device(self.device))

    # ---------------------------------------------------------------- weights
    def state_dict(self) -> Dict[str, np.ndarray]:
        """The weights as PyTorch names them: conv.weight (6, 1, 7, 7), conv.bias (6,), fc.weight (10, 288),
        fc.bias (10,), out.weight (1, 10), out.bias (1,); float32 copies.
        ``np.savez(f, **net.state_dict())`` writes a model.npz the command line loads (--load-model)."""
        out, k = {}, 0
        for name, shape in _LAYOUT:
            n = int(np.prod(shape))
            out[name] = self._params[k:k + n].reshape(shape).copy()
            k += n
        return out

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Set the weights from a dict with PyTorch's names and shapes (numpy arrays or torch tensors, e.g.
        ``net.state_dict()`` of the tutorial's torch model, or ``np.load("model.npz")``). ValueError naming a
        missing or unexpected key, or a wrong shape."""
        keys = set(state.keys())
        expected = [n for n, _ in _LAYOUT]
        missing = [n for n in expected if n not in keys]
        extra = sorted(keys - set(expected))
        if missing or extra:
            raise ValueError(f"state_dict: missing keys {missing}, unexpected keys {extra}")
        parts = []
        for name, shape in _LAYOUT:
            v = state[name]
            v = v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)
            if tuple(v.shape) != shape:
                raise ValueError(f"state_dict: {name} has shape {tuple(v.shape)}, expected {shape}")
            if not np.all(np.isfinite(v)):
                raise ValueError(f"state_dict: {name} holds NaN or Inf")
            parts.append(np.asarray(v, dtype=np.float32).reshape(-1))
        self._params = np.ascontiguousarray(np.concatenate(parts))

    def save(self, path: str) -> None:
        """Write the weights as an .npz with PyTorch's names (what ``rsa_gpu --load-model`` reads)."""
        np.savez(path, **self.state_dict())

    @classmethod
    def load(cls, path: str, *, device: Union[str, int] = "auto") -> "CNN":
        """A CNN with the weights of an .npz written by :meth:`save` or ``rsa_gpu --save-model``."""
        net = cls(device=device)
        with np.load(path) as z:
            net.load_state_dict({k: z[k] for k in z.files})
        return net

    @staticmethod
    def _images(images: Any) -> np.ndarray:
        a = np.asarray(images) if not hasattr(images, "detach") else images.detach().cpu().numpy()
        if a.ndim == 3:
            if a.shape[1:] != (48, 64):
                raise ValueError(f"images: the CNN takes 48 x 64 images, got shape {a.shape}")
            a = a.reshape(a.shape[0], -1)
        return as_host_f32(a, "images")

    def __repr__(self) -> str:
        return f"CNN(seed={self.seed}, device={self.device!r}, params={self._params.size})"
