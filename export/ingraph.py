"""Pre-processing inside the artifact (`vitc export --preprocess in-graph`, a bundle's default).

The artifact takes uint8 RGB pixels (N, H, W, 3) at the model's input size, resized and cropped as the model's
eval transform does (export/edge_run.py does that on the device with Pillow); the graph casts, normalizes and
transposes. ONNX, ExecuTorch and TorchScript-lite export this wrapper module; OpenVINO puts the same steps into
the IR with its own PrePostProcessor (export/openvino.py)."""

from __future__ import annotations

import torch

SUFFIX = "-rgb8"  # artifact name: student-onnx-fp32-rgb8.onnx takes 8-bit RGB


class InGraphPreprocess(torch.nn.Module):
    def __init__(self, model: torch.nn.Module, mean, std):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the same float ops as torchvision's ToTensor (x / 255) and Normalize ((x - mean) / std)
        x = x.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        return self.model((x - self.mean) / self.std)
