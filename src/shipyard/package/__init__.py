"""The package: a folder with the chosen model's files, ``manifest.json``, ``candidates.json``,
``report.html``.

manifest.py   the manifest's read side (``read_manifest``), used by load, serve and export
writer.py     writing a package atomically from a build's result
report.py     the HTML report
"""
