"""AdaFactor with factored second moments (Shazeer & Stern 2018, arXiv 1804.04235).

Keras 3 ships `keras.optimizers.Adafactor`, but it allocates a full-size second-moment
slot for every variable (as large as Adam's) and always factors the last two axes. This
one keeps, for a factored variable, only a row and a column accumulator, so an n x m
matrix costs n + m floats of optimizer state instead of n m (Adam: 2 n m). Arguments
that mean the same as Keras's (`beta_2_decay`, `epsilon_1`, `epsilon_2`,
`clip_threshold`, `relative_step`; Adam's `beta_1`) have Keras's names.
"""

import contextlib
import math

import keras
from keras import ops

_FULL_PRECISION = "float32"
_DEFAULT_WEIGHT_DECAY_EXCLUSIONS = ("layer_norm", "LayerNorm", "bias", "gamma", "beta")


def _rms(x):
    return ops.sqrt(ops.mean(ops.square(x)))


def _dense(gradient):
    """Densifies `tf.IndexedSlices` (embedding gradients); factoring needs every row."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if isinstance(gradient, tf.IndexedSlices):
            return tf.convert_to_tensor(gradient)
    return gradient


def _matches(variable, substrings):
    """Whether any of `substrings` occurs in the variable's name or path."""
    texts = [str(variable.name)]
    path = getattr(variable, "path", None)
    if path:
        texts.append(str(path))
    return any(s in text for s in substrings for text in texts)


def optimizer_state_bytes(optimizer):
    """Bytes held by an optimizer's variables, not counting scalar hyperparameters.

    Excludes the iteration counter and learning-rate variable of the optimizer (and of
    the inner optimizer of a `keras.optimizers.LossScaleOptimizer`); counts everything
    else: moments, factored accumulators, gradient accumulators, EMA copies, the loss
    scale. The optimizer must be built (`optimizer.build(model.trainable_variables)`).
    """
    skip = set()
    current = optimizer
    while current is not None:
        for name in ("_iterations", "_learning_rate"):
            value = getattr(current, name, None)
            if isinstance(value, keras.Variable):
                skip.add(id(value))
        current = getattr(current, "inner_optimizer", None)
    total = 0
    for variable in optimizer.variables:
        if id(variable) in skip:
            continue
        itemsize = keras.backend.standardize_dtype(variable.dtype)
        itemsize = {"bfloat16": 2, "float16": 2, "float32": 4, "float64": 8,
                    "int32": 4, "int64": 8}.get(itemsize, 4)
        total += math.prod(variable.shape) * itemsize
    return total


@keras.saving.register_keras_serializable(package="keras_albert")
class AdaFactor(keras.optimizers.Optimizer):
    """AdaFactor: Adam-like steps with sublinear memory (Shazeer & Stern 2018).

    For each variable with gradient `G` at step `t` (counted from 1):

    - `beta_2_t = 1 - t ** beta_2_decay`.
    - Factored variables (rank >= 2 whose two largest dimensions, the later axes on
      ties, are both >= `min_dim_size_to_factor`; call them the row axis `a` and the
      column axis `b`, `a < b`):
      `R = beta_2_t R + (1 - beta_2_t) mean_b(G^2 + epsilon_1)`,
      `C = beta_2_t C + (1 - beta_2_t) mean_a(G^2 + epsilon_1)`, `V = R C / mean_a(R)`
      (means per slice of the other axes, as in T5 / mesh-tensorflow). `R` and `C`
      have the variable's shape with axis `b` (resp. `a`) kept as size 1. No
      full-size second moment exists for them.
    - Other variables: `V = beta_2_t V + (1 - beta_2_t)(G^2 + epsilon_1)`, full size.
    - `U = G / sqrt(V)`; update clipping `U /= max(1, RMS(U) / clip_threshold)`.
    - Optional first moment: `M = beta_1 M + (1 - beta_1) U`, then `U = M`.
    - Step size: `rho_t = min(learning_rate, 1 / sqrt(t))` with `relative_step=True`
      (the paper's `min(1e-2, 1/sqrt(t))` at the default `learning_rate=0.01`;
      `warmup_init=True` adds `1e-6 t` to the minimum, as fairseq / transformers), or
      `rho_t = learning_rate` (float or schedule) with `relative_step=False`.
      `alpha_t = rho_t * max(epsilon_2, RMS(x_{t-1}))` with
      `multiply_by_parameter_scale=True`, else `alpha_t = rho_t`.
    - Decoupled weight decay, scaled by the step size as in transformers' Adafactor:
      `x_t = x_{t-1} - alpha_t (U + weight_decay * x_{t-1})`.

    Slots and the update are computed in float32 whatever the variable dtype; the result
    is cast once on assignment. The first moment may be kept in bfloat16
    (`momentum_dtype`).

    Args:
        learning_rate: float, schedule or callable. With `relative_step=True`, an upper
            bound on the relative step `rho_t`; otherwise the step itself. Defaults to
            `0.01`.
        beta_1: float in `[0, 1)` or `None` (default): first-moment decay; `None` keeps
            no first moment (no slot).
        beta_2_decay: negative float, defaults to `-0.8` (the paper's decay rate
            0.8, signed as in `keras.optimizers.Adafactor`):
            `beta_2_t = 1 - t ** beta_2_decay`.
        epsilon_1: float, defaults to `1e-30`, added to the squared gradient.
        epsilon_2: float, defaults to `1e-3`, lower bound of the parameter scale.
        clip_threshold: float or `None`. Update clipping threshold `d`; `None`
            disables update clipping. Defaults to `1.0`.
        relative_step: bool, defaults to `True` (see above).
        warmup_init: bool, defaults to `False`. With `relative_step`, uses
            `min(learning_rate, 1e-6 t, 1/sqrt(t))`.
        multiply_by_parameter_scale: bool, defaults to `True`.
        exclude_from_parameter_scale: name/path substrings of variables whose step is
            not multiplied by their RMS. Defaults to none.
        factored: bool, defaults to `True`. `False` keeps full second moments.
        min_dim_size_to_factor: int, defaults to `128`: factor only when the
            second-largest dimension is at least this.
        momentum_dtype: `"float32"` (default) or `"bfloat16"`: storage of the first
            moment.
        weight_decay: float or `None`: decoupled weight decay rate (see above).
        exclude_from_weight_decay: name/path substrings of variables that are not
            decayed. Defaults to `("layer_norm", "LayerNorm", "bias", "gamma",
            "beta")`. `optimizer.exclude_from_weight_decay(var_list=..., var_names=...)`
            (Keras's method, called before `build`) excludes more.
        clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
        ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps,
        name: as for every `keras.optimizers.Optimizer` (gradient clipping happens
            before AdaFactor's update clipping; with gradient accumulation, `t` counts
            applied updates, not micro-batches).

    Example:

    >>> import keras, numpy as np
    >>> from keras_albert.optimizers import AdaFactor
    >>> model = keras.Sequential([keras.Input((256,)), keras.layers.Dense(128)])
    >>> model.compile(optimizer=AdaFactor(), loss="mse")
    >>> _ = model.fit(np.ones((8, 256)), np.zeros((8, 128)), epochs=2, verbose=0)
    >>> [tuple(v.shape) for v in model.optimizer.variables[2:]]  # kernel: row, col
    [(256, 1), (1, 128), (128,)]
    >>> config = AdaFactor(beta_1=0.9, clip_threshold=None).get_config()
    >>> config["beta_1"], config["beta_2_decay"], config["epsilon_2"]
    (0.9, -0.8, 0.001)
    """

    def __init__(
        self,
        learning_rate=0.01,
        beta_1=None,
        beta_2_decay=-0.8,
        epsilon_1=1e-30,
        epsilon_2=1e-3,
        clip_threshold=1.0,
        relative_step=True,
        warmup_init=False,
        multiply_by_parameter_scale=True,
        exclude_from_parameter_scale=(),
        factored=True,
        min_dim_size_to_factor=128,
        momentum_dtype="float32",
        weight_decay=None,
        exclude_from_weight_decay=_DEFAULT_WEIGHT_DECAY_EXCLUSIONS,
        clipnorm=None,
        clipvalue=None,
        global_clipnorm=None,
        use_ema=False,
        ema_momentum=0.99,
        ema_overwrite_frequency=None,
        loss_scale_factor=None,
        gradient_accumulation_steps=None,
        name=None,
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            name=name,
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
            loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps,
            **kwargs,
        )
        if beta_1 is not None and not 0.0 <= beta_1 < 1.0:
            raise ValueError(f"`beta_1` must be None or in [0, 1). Received: {beta_1}")
        if beta_2_decay >= 0:
            raise ValueError(f"`beta_2_decay` must be negative. Received: {beta_2_decay}")
        if clip_threshold is not None and clip_threshold <= 0:
            raise ValueError(
                f"`clip_threshold` must be positive or None. Received: {clip_threshold}"
            )
        momentum_dtype = keras.backend.standardize_dtype(momentum_dtype)
        if momentum_dtype not in ("float32", "bfloat16"):
            raise ValueError(
                "`momentum_dtype` must be 'float32' or 'bfloat16'. "
                f"Received: {momentum_dtype}"
            )
        if isinstance(exclude_from_parameter_scale, str):
            exclude_from_parameter_scale = (exclude_from_parameter_scale,)
        if isinstance(exclude_from_weight_decay, str):
            exclude_from_weight_decay = (exclude_from_weight_decay,)
        self.beta_1 = beta_1
        self.beta_2_decay = beta_2_decay
        self.epsilon_1 = epsilon_1
        self.epsilon_2 = epsilon_2
        self.clip_threshold = clip_threshold
        self.relative_step = relative_step
        self.warmup_init = warmup_init
        self.multiply_by_parameter_scale = multiply_by_parameter_scale
        self.exclude_from_parameter_scale = tuple(exclude_from_parameter_scale or ())
        self.factored = factored
        self.min_dim_size_to_factor = min_dim_size_to_factor
        self.momentum_dtype = momentum_dtype
        # Not `self.exclude_from_weight_decay`: that is Keras's method, still usable.
        self._weight_decay_exclusions = tuple(exclude_from_weight_decay or ())

    def _factored_axes(self, shape):
        """(row axis, column axis) of the two largest dimensions, or None."""
        shape = tuple(shape)
        if not self.factored or len(shape) < 2:
            return None
        # Ascending by size, then by axis: the last two are the largest, later on ties.
        order = sorted(range(len(shape)), key=lambda axis: (shape[axis], axis))
        if shape[order[-2]] < self.min_dim_size_to_factor:
            return None
        return tuple(sorted(order[-2:]))

    def _add_slot(self, variable, shape, suffix, dtype=_FULL_PRECISION):
        base = getattr(variable, "path", None) or str(variable.name)
        base = base.replace("/", "_").replace(":", "_")
        strategy = getattr(self, "_distribution_strategy", None)
        if strategy is not None:
            # As `add_variable_from_reference` on TF: keep slots with their variable.
            value = variable.value if isinstance(variable, keras.Variable) else variable
            placement = strategy.extended.colocate_vars_with(value)
        else:
            placement = contextlib.nullcontext()
        with placement:
            return self.add_variable(shape=shape, dtype=dtype, name=f"{base}_{suffix}")

    def build(self, var_list):
        """Creates the slots: row + column accumulators for factored variables,
        a full float32 second moment otherwise, and the first moment if `beta_1`."""
        if self.built:
            return
        super().build(var_list)
        self._rows = []
        self._columns = []
        self._second_moments = []
        self._momentums = []
        for variable in var_list:
            if self._overwrite_variable_with_gradient(variable):
                for slots in (self._rows, self._columns, self._second_moments,
                              self._momentums):
                    slots.append(None)
                continue
            shape = tuple(variable.shape)
            axes = self._factored_axes(shape)
            if axes is None:
                self._rows.append(None)
                self._columns.append(None)
                self._second_moments.append(self._add_slot(variable, shape, "v"))
            else:
                row_axis, column_axis = axes
                row_shape = list(shape)
                row_shape[column_axis] = 1
                column_shape = list(shape)
                column_shape[row_axis] = 1
                self._rows.append(self._add_slot(variable, tuple(row_shape), "v_row"))
                self._columns.append(
                    self._add_slot(variable, tuple(column_shape), "v_col")
                )
                self._second_moments.append(None)
            if self.beta_1 is None:
                self._momentums.append(None)
            else:
                self._momentums.append(
                    self._add_slot(variable, shape, "m", dtype=self.momentum_dtype)
                )

    def _apply_weight_decay(self, variables):
        # Weight decay is applied in `update_step`, scaled by AdaFactor's own step size
        # `alpha_t` (Keras's base class would scale it by `learning_rate` beforehand).
        return

    def _decays(self, variable):
        return bool(self.weight_decay) and (
            self._use_weight_decay(variable)
            and not _matches(variable, self._weight_decay_exclusions)
        )

    def update_step(self, gradient, variable, learning_rate):
        """Update step given gradient and the associated model variable."""
        index = self._get_variable_index(variable)
        # `variable` may be the backend variable; the Keras one carries the path.
        reference = self._trainable_variables[index]
        f32 = _FULL_PRECISION
        gradient = ops.cast(_dense(gradient), f32)
        value = ops.cast(variable, f32)
        step = ops.cast(self.iterations + 1, f32)

        rho = ops.cast(learning_rate, f32)
        if self.relative_step:
            rho = ops.minimum(rho, ops.rsqrt(step))
            if self.warmup_init:
                rho = ops.minimum(rho, 1e-6 * step)
        alpha = rho
        if self.multiply_by_parameter_scale and not _matches(
            reference, self.exclude_from_parameter_scale
        ):
            alpha = alpha * ops.maximum(ops.cast(self.epsilon_2, f32), _rms(value))

        beta_2 = 1.0 - ops.power(step, float(self.beta_2_decay))
        squared = ops.add(ops.square(gradient), ops.cast(self.epsilon_1, f32))
        rows, columns = self._rows[index], self._columns[index]
        if rows is not None:
            row_axis, column_axis = self._factored_axes(variable.shape)
            new_rows = beta_2 * rows + (1.0 - beta_2) * ops.mean(
                squared, axis=column_axis, keepdims=True
            )
            new_columns = beta_2 * columns + (1.0 - beta_2) * ops.mean(
                squared, axis=row_axis, keepdims=True
            )
            self.assign(rows, new_rows)
            self.assign(columns, new_columns)
            row_mean = ops.mean(new_rows, axis=row_axis, keepdims=True)
            # U = G / sqrt(R C / mean(R)), without forming the full V.
            update = gradient * ops.rsqrt(new_rows / row_mean) * ops.rsqrt(new_columns)
        else:
            second_moment = self._second_moments[index]
            new_second_moment = beta_2 * second_moment + (1.0 - beta_2) * squared
            self.assign(second_moment, new_second_moment)
            update = gradient * ops.rsqrt(new_second_moment)

        if self.clip_threshold is not None:
            threshold = ops.cast(self.clip_threshold, f32)
            update = update / ops.maximum(1.0, _rms(update) / threshold)

        momentum = self._momentums[index]
        if momentum is not None:
            beta_1 = ops.cast(self.beta_1, f32)
            update = beta_1 * ops.cast(momentum, f32) + (1.0 - beta_1) * update
            self.assign(momentum, update)

        if self._decays(reference):
            update = update + ops.cast(self.weight_decay, f32) * value
        self.assign(variable, value - alpha * update)

    def slot_bytes(self):
        """Bytes of optimizer state (see `optimizer_state_bytes`)."""
        return optimizer_state_bytes(self)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta_1": self.beta_1,
                "beta_2_decay": self.beta_2_decay,
                "epsilon_1": self.epsilon_1,
                "epsilon_2": self.epsilon_2,
                "clip_threshold": self.clip_threshold,
                "relative_step": self.relative_step,
                "warmup_init": self.warmup_init,
                "multiply_by_parameter_scale": self.multiply_by_parameter_scale,
                "exclude_from_parameter_scale": list(self.exclude_from_parameter_scale),
                "factored": self.factored,
                "min_dim_size_to_factor": self.min_dim_size_to_factor,
                "momentum_dtype": self.momentum_dtype,
                "exclude_from_weight_decay": list(self._weight_decay_exclusions),
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Also reads configs saved before the Keras names (`.keras` files of earlier
        runs): `beta1`, `decay_rate` (positive: the exponent's magnitude),
        `clipping_threshold`, `epsilon1`, `epsilon2`."""
        config = dict(config)
        for old, new in (("beta1", "beta_1"), ("clipping_threshold", "clip_threshold"),
                         ("epsilon1", "epsilon_1"), ("epsilon2", "epsilon_2")):
            if old in config:
                config.setdefault(new, config.pop(old))
        if "decay_rate" in config:
            config.setdefault("beta_2_decay", -config.pop("decay_rate"))
        return super().from_config(config, custom_objects=custom_objects)

