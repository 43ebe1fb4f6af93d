"""vitc: teacher -> DeiT distillation -> quantization -> verified edge export -> benchmark."""

__version__ = "0.1.0"
