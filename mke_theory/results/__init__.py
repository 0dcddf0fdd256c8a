"""From run records to numbers to pictures: ``stats`` (intervals, paired tests), ``tables``, ``plots``,
``palette`` and ``reference`` (the paper's published numbers). Reads records, never trains."""
