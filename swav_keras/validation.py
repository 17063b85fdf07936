"""Argument checks shared by every public constructor and function.

Each check raises a `ValueError` or `TypeError` whose message names the argument and the value
received, in one format: "`name` must be <what>; received name=<value>."
"""

import numbers


def _received(name, value):
    return f"received {name}={value!r}"


def check_bool(name, value):
    """Returns `value`, checking that it is a bool."""
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be a bool; {_received(name, value)}.")
    return value


def check_int(name, value, minimum=None):
    """Returns `value` as an int, checking its type and optional lower bound."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer; {_received(name, value)}.")
    if minimum is not None and value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"`{name}` must be {what}; {_received(name, value)}.")
    return int(value)


def check_float(name, value, positive=False, minimum=None, maximum=None):
    """Returns `value` as a float, checking its type and range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a number; {_received(name, value)}.")
    value_f = float(value)
    if value_f != value_f or value_f in (float("inf"), float("-inf")):
        raise ValueError(f"`{name}` must be finite; {_received(name, value)}.")
    if positive and not value_f > 0:
        raise ValueError(f"`{name}` must be a positive number; {_received(name, value)}.")
    if minimum is not None and value_f < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}; {_received(name, value)}.")
    if maximum is not None and value_f > maximum:
        raise ValueError(f"`{name}` must be <= {maximum}; {_received(name, value)}.")
    return value_f


def check_int_sequence(name, value, minimum=None, min_length=1):
    """Returns `value` as a tuple of ints (a single int is not accepted)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"`{name}` must be a sequence of integers; {_received(name, value)}.")
    items = tuple(value)
    if len(items) < min_length:
        raise ValueError(
            f"`{name}` must hold at least {min_length} integer(s); {_received(name, value)}."
        )
    for item in items:
        if isinstance(item, bool) or not isinstance(item, numbers.Integral):
            raise TypeError(f"`{name}` must be a sequence of integers; {_received(name, value)}.")
        if minimum is not None and item < minimum:
            raise ValueError(
                f"`{name}` must hold integers >= {minimum}; {_received(name, value)}."
            )
    return tuple(int(item) for item in items)


def check_feature_map_shape(layer, input_shape, minimum, reason):
    """Checks that `input_shape` is `[batch, height, width, channels]` with known sizes of at
    least `minimum`; `layer` names the layer in the messages, `reason` says why the minimum."""
    shape = tuple(input_shape)
    if len(shape) != 4:
        raise ValueError(
            f"{layer} takes feature maps [batch, height, width, channels]; received inputs of "
            f"shape {shape}."
        )
    for name, size in (("height", shape[1]), ("width", shape[2])):
        if size is not None and size < minimum:
            raise ValueError(
                f"{layer} needs a feature map of {name} {minimum} or more ({reason}); "
                f"received inputs of shape {shape}."
            )


def check_seed_generator(name, value):
    """Returns `value`, checking that it is a `keras.random.SeedGenerator`."""
    import keras  # here, so that this module stays free of Keras and its backend

    if not isinstance(value, keras.random.SeedGenerator):
        raise TypeError(
            f"`{name}` must be a keras.random.SeedGenerator; received {name} of type "
            f"{type(value).__name__}."
        )
    return value
