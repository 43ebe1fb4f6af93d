"""Export targets (one module per runtime, plus a registry): arrives with the quantize/export stage.

Nothing is registered yet; `vitc export` does not exist until the targets do.
"""
