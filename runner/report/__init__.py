"""Reports: the store's records -> frozen report contexts -> Jinja2 templates in ``reports/`` -> HTML.

Modules: ``api`` (reads the database, builds, renders), ``common`` (a run's records, its header,
charts), ``stats`` (shared figures), ``charts`` (inline SVG), ``run`` (the run report), ``diff``,
``trend``, ``cost``, ``render`` (the Environment), ``export`` (JSON Lines and CSV).
"""
