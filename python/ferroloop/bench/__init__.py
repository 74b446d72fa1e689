"""The benchmark users can run: ``python -m ferroloop.bench`` (see __main__)."""
