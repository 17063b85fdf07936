"""Optimizers and learning-rate schedules of SwAV."""

from swav_keras.optimizers.lars import LARS
from swav_keras.optimizers.schedules import warmup_cosine_decay
from swav_keras.optimizers.skip_non_finite import SkipNonFiniteOptimizer

__all__ = ["LARS", "SkipNonFiniteOptimizer", "warmup_cosine_decay"]
