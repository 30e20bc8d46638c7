"""The shared core every method, metric and notebook builds on; it imports nothing else of camlab.

- :mod:`~camlab.core.models`: the ImageNet networks (:func:`load_model`, :class:`Classifier`);
  :mod:`~camlab.core.folding` their batch-norm-folded twins; :mod:`~camlab.core.device` devices
  and memory formats;
- :mod:`~camlab.core.images` loading any image as RGB; :mod:`~camlab.core.data` image folders
  (flat or one sub-folder per class), the sample images and the grid composites;
- :mod:`~camlab.core.layers` naming a layer and hooking it; :mod:`~camlab.core.split` the
  network after a layer;
- :mod:`~camlab.core.maps` upsampling and normalising maps; :mod:`~camlab.core.masking` the one
  masking function (X ⊙ M + X_b ⊙ (1 − M)) and the scores of masked images;
- :mod:`~camlab.core.explanation` the one result type; :mod:`~camlab.core.progress` progress bars.
"""
