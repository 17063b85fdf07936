"""PNG pictures of SwAV's inputs, training and clusters (matplotlib, Agg canvas: no screen)."""

from swav_keras.visualization.multicrops import plot_multicrops
from swav_keras.visualization.prototype_neighbours import plot_prototype_neighbours
from swav_keras.visualization.training_curves import plot_training_curves

__all__ = ["plot_multicrops", "plot_prototype_neighbours", "plot_training_curves"]
