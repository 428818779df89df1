"""Long sentences for token classification: the window helpers live in the torch-free
domainft.wordwindows (the ONNX predictor uses them too); re-exported here."""
from domainft.wordwindows import best_window, plan_windows

__all__ = ["best_window", "plan_windows"]
