"""Optimizers and learning-rate schedules of SwAV."""

from swav_keras.optimizers.lars import LARS
from swav_keras.optimizers.schedules import warmup_cosine_decay

__all__ = ["LARS", "warmup_cosine_decay"]
