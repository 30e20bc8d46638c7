"""What each chapter of the book computes and draws beyond a few lines: its figures, the numbers
its prose quotes, and its verdict — one module per chapter, each tested, so that a notebook's
cells stay a few lines long."""
