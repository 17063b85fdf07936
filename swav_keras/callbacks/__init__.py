"""Keras callbacks for SwAV training."""

from swav_keras.callbacks.assignment_monitor import AssignmentMonitor
from swav_keras.callbacks.encoder_checkpoint import EncoderCheckpoint, save_encoder
from swav_keras.callbacks.knn_monitor import KNNMonitor
from swav_keras.callbacks.mid_epoch_backup import MidEpochBackupAndRestore, StopAfterEpoch
from swav_keras.callbacks.terminate_on_non_finite import TerminateOnNonFinite

__all__ = [
    "AssignmentMonitor",
    "EncoderCheckpoint",
    "KNNMonitor",
    "MidEpochBackupAndRestore",
    "StopAfterEpoch",
    "TerminateOnNonFinite",
    "save_encoder",
]
