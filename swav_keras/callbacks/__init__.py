"""Keras callbacks for SwAV training."""

from swav_keras.callbacks.terminate_on_non_finite import TerminateOnNonFinite

__all__ = ["TerminateOnNonFinite"]
