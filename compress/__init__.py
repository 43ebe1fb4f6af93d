"""Stage code: teacher training, DeiT distillation, quantization."""
