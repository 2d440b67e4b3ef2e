"""Writes crates/torch/assets/fused_adam.pt: a TorchScript module whose `step` method runs
PyTorch's fused Adam kernel (`torch._fused_adam_`, one pass over each parameter, gradient and
both moments) on lists of tensors. tch 0.24 has no binding for that kernel; emocycle's
optimiser calls it through this module instead of eight separate element-wise passes.

Rerun (only needed when the PyTorch version changes) with the project's virtualenv:

    ~/.cache/emocycle/torch-2.11.0/bin/python tools/torch/fused_adam.py
"""

from pathlib import Path
from typing import List

import torch


class FusedAdam(torch.nn.Module):
    @torch.jit.export
    def step(
        self,
        params: List[torch.Tensor],
        grads: List[torch.Tensor],
        exp_avgs: List[torch.Tensor],
        exp_avg_sqs: List[torch.Tensor],
        state_steps: List[torch.Tensor],
        lr: float,
        beta1: float,
        beta2: float,
        eps: float,
    ) -> None:
        torch._fused_adam_(
            params,
            grads,
            exp_avgs,
            exp_avg_sqs,
            [],
            state_steps,
            lr=lr,
            beta1=beta1,
            beta2=beta2,
            weight_decay=0.0,
            eps=eps,
            amsgrad=False,
            maximize=False,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


if __name__ == "__main__":
    out = Path(__file__).resolve().parents[2] / "crates" / "torch" / "assets" / "fused_adam.pt"
    torch.jit.script(FusedAdam()).save(str(out))
    print(f"wrote {out} with torch {torch.__version__}")
