"""A corpus of single changes to the contracts, each labelled by hand before it was run: is it
breaking for a client or consumer built for the contracts as they are, and whom does it
reach. `tests/compat/test_corpus.py` runs every case through `accord check`."""
