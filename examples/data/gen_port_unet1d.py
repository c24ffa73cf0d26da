"""Make the data of ``examples/plot_port_unet1d.py`` with PyTorch.

Run once, with ``torch`` and ``safetensors`` installed (the example itself
needs neither PyTorch nor this script)::

    python examples/data/gen_port_unet1d.py

It builds a small 1-D U-Net in PyTorch (convolutions, a dilated grouped
convolution, a depthwise one, a transposed convolution, a batch norm and a
skip connection), gives the batch norm running statistics by a few
training-mode passes, and writes, next to this script:

``port_unet1d.safetensors``
    the model's ``state_dict()``, as a trained model would be shipped;
``port_unet1d_io.safetensors``
    a fixed input (``input``, float32, shape (4, 2, 101)) and the model's
    output for it in evaluation mode (``output``), the values the pyconv
    port must reproduce.

Everything is seeded: re-running the script writes the same files.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file as save_torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))


class TinyUNet1d(nn.Module):
    """Two channels in, two out; any length (odd ones too)."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(
            nn.Conv1d(2, 16, 5, padding=2, padding_mode="reflect"),
            nn.ReLU(),
            nn.Conv1d(16, 16, 3, padding=2, dilation=2, groups=4),
        )
        self.down = nn.Conv1d(16, 32, 4, stride=2, padding=1)
        self.bn = nn.BatchNorm1d(32)
        self.mid = nn.Conv1d(32, 32, 3, padding="same", groups=32, bias=False)
        self.up = nn.ConvTranspose1d(32, 16, 4, stride=2, padding=1)
        self.head = nn.Conv1d(32, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.enc(x)
        d = torch.relu(self.bn(self.down(e)))
        m = torch.relu(self.mid(d)) + d
        u = self.up(m, output_size=e.shape[-1:])
        return self.head(torch.cat([e, u], dim=1))


def main() -> None:
    torch.manual_seed(0)
    model = TinyUNet1d()
    with torch.no_grad():
        model.train()
        for _ in range(5):  # running statistics for the batch norm
            model(torch.randn(8, 2, 101) * 2 + 0.5)
        model.eval()
        x = np.random.default_rng(0).standard_normal((4, 2, 101), dtype=np.float32)
        y = model(torch.from_numpy(x)).numpy()

    state = {key: value.contiguous() for key, value in model.state_dict().items()}
    save_torch(state, os.path.join(HERE, "port_unet1d.safetensors"),
               metadata={"model": "TinyUNet1d", "torch": torch.__version__})
    save_numpy({"input": x, "output": y}, os.path.join(HERE, "port_unet1d_io.safetensors"))
    for key, value in state.items():
        print(f"{key:24s} {tuple(value.shape)} {value.dtype}")
    print("output", y.shape, y.dtype)


if __name__ == "__main__":
    main()
