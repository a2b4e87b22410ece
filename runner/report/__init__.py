"""Reports: database -> frozen report contexts -> Jinja2 templates in ``reports/`` -> one HTML file.

Modules: ``data`` (the records read), ``stats`` (shared figures), ``charts`` (inline SVG),
``context`` (run report), ``diff``, ``trend``, ``cost``, ``render`` (the Environment).
"""
