"""Synthetic chest phantoms with analytic answers, for exact checks of volume and weight (tests,
the Slicer self-test and benchmarks). Not anatomy: an elliptic body with two ellipsoid lungs."""

from __future__ import annotations

import math

import numpy as np

from .image import CT, Image


def chest_phantom(shape=(96, 128, 160), spacing=(1.5, 1.5, 2.0), lung_hu=-800.0, body_hu=40.0,
                  semi_axes_mm=(35.0, 45.0, 60.0), noise_hu=0.0, seed=0):
    """(Image, true labels, analytic volume_ml per lung). ``shape`` is numpy (z, y, x); ``spacing`` is
    (x, y, z) mm; identity direction, so x index 0 is the patient's right (LPS)."""
    z, y, x = (np.arange(n, dtype=np.float32) for n in shape)
    sx, sy, sz = spacing
    Z, Y, X = np.meshgrid((z - shape[0] / 2) * sz, (y - shape[1] / 2) * sy, (x - shape[2] / 2) * sx,
                          indexing="ij")
    hu = np.full(shape, -1000.0, np.float32)
    body = (X / (0.46 * shape[2] * sx)) ** 2 + (Y / (0.42 * shape[1] * sy)) ** 2 <= 1.0
    hu[body] = body_hu
    a, b, c = semi_axes_mm
    centre_x = a + 8.0
    labels = np.zeros(shape, np.uint8)
    for value, cx in ((1, -centre_x), (2, centre_x)):  # 1 = right = negative x (LPS)
        lung = ((X - cx) / a) ** 2 + (Y / b) ** 2 + (Z / c) ** 2 <= 1.0
        labels[lung] = value
    hu[labels > 0] = lung_hu
    if noise_hu:
        hu += np.random.default_rng(seed).normal(0, noise_hu, shape).astype(np.float32)
    volume_ml = 4.0 / 3.0 * math.pi * a * b * c / 1000.0
    origin = tuple(-n / 2 * s for n, s in zip(shape[::-1], spacing))
    image = Image(hu.astype(np.int16), spacing=tuple(spacing), origin=origin, modality=CT)
    image.meta["source"] = "chest_phantom"
    return image, labels, volume_ml
