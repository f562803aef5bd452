"""The math: a network's forward and backward pass and what they are made of.

- :mod:`~handprop.core.shapes`: the parameters' names and shapes, and the
  arrays a forward pass keeps (``Cache``, ``Hidden``);
- :mod:`~handprop.core.activations`: g and g' in lookup tables;
- :mod:`~handprop.core.outputs`: the output/loss pairs, one entry each;
- :mod:`~handprop.core.network`: ``forward``, ``backward``, the one wiring of
  loss and gradients, and ``MLP``;
- :mod:`~handprop.core.penalty`: the elastic net;
- :mod:`~handprop.core.checks`, :mod:`~handprop.core.workspace`,
  :mod:`~handprop.core.modelfile`: the network's input checks, reused
  buffers and model files;
- :mod:`~handprop.core.reference` and :mod:`~handprop.core.gradcheck`: the
  per-example loop and the finite differences that prove the math.

Nothing here imports training, data or a face.
"""
