"""Evaluation of learnt features: kNN and linear probes on frozen encoders or raw pixels."""

from swav_keras.evaluation.corner_pooling import CornerAveragePooling2D, corner_pooled_encoder
from swav_keras.evaluation.features import encode, extract_features, pixel_features
from swav_keras.evaluation.knn import knn_accuracy, knn_classify
from swav_keras.evaluation.linear_probe import linear_probe, top_k_accuracy
from swav_keras.evaluation.precise_batch_norm import precise_batch_norm

__all__ = [
    "CornerAveragePooling2D",
    "corner_pooled_encoder",
    "encode",
    "extract_features",
    "knn_accuracy",
    "knn_classify",
    "linear_probe",
    "pixel_features",
    "precise_batch_norm",
    "top_k_accuracy",
]
