"""What only the notebooks use: figures, widgets and the tables a verdict prints.

- :mod:`~camlab.book.plot`: the figures; :mod:`~camlab.book.widgets`: the Cluster-CAM explorer;
- :mod:`~camlab.book.sweeps` and :mod:`~camlab.book.ablation_curves`: Cluster-CAM's settings
  measured and read back (notebooks 05 and 06);
- :mod:`~camlab.book.verdict`: what a table of per-image metrics says (paired comparisons, ranks);
- :mod:`~camlab.book.notebooks`: running, exporting and stripping the notebooks
  (``python -m camlab.book run notebooks build/notebooks``);
- :mod:`~camlab.book.site`: the book, a Sphinx site of the executed notebooks and the API reference
  (``python -m camlab.book book build/notebooks build/book``, ``make book``).
"""
