"""Optimizers and learning-rate schedules (our factored AdaFactor lands here).

Empty for now: the encoder zoo (`keras_albert`) comes first.
"""
