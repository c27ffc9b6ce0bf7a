"""The same network in PyTorch, trained the way its tutorials do: nn.Sequential of Linear
layers, F.cross_entropy on the logits against integer labels, zero_grad / backward /
step. `fused=False` is PyTorch's default optimizer implementation on the CPU, `fused=True`
its fastest (one fused kernel over all parameters). Predictions run under
torch.inference_mode().

PyTorch is a comparison only, never a dependency of fastnn: `pip install torch==2.13.0`.
"""
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


class TorchMLP:
    def __init__(self, net, weights, dtype, fused):
        self.net = net
        self.fused = fused
        act = nn.ReLU if net.activation == "relu" else nn.Sigmoid
        layers = []
        for i, (w, b) in enumerate(weights):
            lin = nn.Linear(w.shape[0], w.shape[1])
            layers.append(lin)
            if i < len(weights) - 1:
                layers.append(act())
        self.model = nn.Sequential(*layers).to(TORCH_DTYPES[np.dtype(dtype).name])
        self.linears = [m for m in self.model if isinstance(m, nn.Linear)]
        # The initial state, in the shared weights (W is stored transposed in PyTorch).
        self.initial = []
        for lin, (w, b) in zip(self.linears, weights):
            self.initial += [torch.from_numpy(np.ascontiguousarray(w.T)).clone(),
                             torch.from_numpy(b).clone()]
        params = list(self.model.parameters())
        flag = True if fused else None        # None: PyTorch chooses its default
        if net.optimizer == "adam":
            self.opt = torch.optim.Adam(params, lr=net.lr, fused=flag)
        else:
            self.opt = torch.optim.SGD(params, lr=net.lr, momentum=0.9, fused=flag)
        self.reset()

    @torch.no_grad()
    def reset(self):
        """Weights back to the initial ones; optimizer state (moments, step) to zero, kept
        allocated so that no timed step allocates it."""
        for p, p0 in zip(self.model.parameters(), self.initial):
            p.copy_(p0)
            p.grad = None
        for state in self.opt.state.values():
            for value in state.values():
                if torch.is_tensor(value):
                    value.zero_()

    def train_steps(self, x, y, batch, steps):
        """steps training steps over consecutive batches of (x, y) (NumPy arrays, shared
        with PyTorch without a copy); returns seconds."""
        xt = torch.from_numpy(x)
        yt = torch.from_numpy(y)
        model, opt = self.model, self.opt
        start = time.perf_counter()
        for s in range(steps):
            lo = s * batch
            opt.zero_grad()
            loss = F.cross_entropy(model(xt[lo:lo + batch]), yt[lo:lo + batch])
            loss.backward()
            opt.step()
        return time.perf_counter() - start

    def predict(self, x):
        with torch.inference_mode():
            return torch.softmax(self.model(torch.from_numpy(x)), dim=1).numpy()
