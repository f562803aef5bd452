"""Data: two moons, MNIST, CSV and NPZ files (:mod:`~handprop.data.datasets`),
and the distortions of images (:mod:`~handprop.data.augment`)."""
