"""Sphinx configuration for the pyconv documentation.

Build (from the repository root)::

    pip install -e ".[docs]"
    sphinx-build -W --keep-going -b html docs docs/_build/html

``-W`` turns every warning into an error.  The gallery scripts
``examples/plot_*.py`` are executed during the build (sphinx-gallery) and
rendered into ``docs/auto_examples``; when ``examples/`` has no
``README.txt`` yet the gallery is left out of the build (and of the index)
instead of failing.  The performance page is generated beforehand, not
during the build, by ``docs/gen_perf.py`` from ``docs/bench.json``.
"""

import os
from datetime import date

import matplotlib

matplotlib.use("Agg")  # never open a window while the gallery runs

import pyconv  # noqa: E402  (the installed package, editable or not)

HERE = os.path.dirname(os.path.abspath(__file__))

# -- project ------------------------------------------------------------------
project = "pyconv"
author = "the pyconv developers"
copyright = f"{date.today().year}, {author}"
release = pyconv.__version__
version = ".".join(release.split(".")[:2])

# -- extensions ---------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "sg_execution_times.rst"]
root_doc = "index"
default_role = "autolink"
pygments_style = "sphinx"

# -- autodoc / autosummary / numpydoc ----------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_typehints = "none"  # numpydoc sections carry the types
autodoc_default_options = {"members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()

# -- sphinx-gallery -----------------------------------------------------------
EXAMPLES = os.path.normpath(os.path.join(HERE, "..", "examples"))
HAVE_GALLERY = any(os.path.isfile(os.path.join(EXAMPLES, name))
                   for name in ("README.txt", "README.rst"))
if not HAVE_GALLERY:
    extensions.remove("sphinx_gallery.gen_gallery")
    exclude_patterns.append("auto_examples")

sphinx_gallery_conf = {
    "examples_dirs": EXAMPLES,
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"plot_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "remove_config_comments": True,
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "min_reported_time": 0,
    "show_signature": False,
    "write_computation_times": False,
}

# -- HTML ---------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"pyconv {release}"
html_static_path = ["_static"]
html_css_files = ["perf.css"]  # the performance page's wide table
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"**": ["sidebar-nav-bs"]}
html_show_sourcelink = False
html_copy_source = False


# -- without a gallery, drop its entry from the index's toctree ---------------
GALLERY_ENTRY = "auto_examples/index"


def _drop_gallery_entry(app, docname, source):
    if docname == "index" and not HAVE_GALLERY:
        source[0] = "\n".join(line for line in source[0].splitlines()
                              if line.strip() != GALLERY_ENTRY)


def setup(app):
    app.connect("source-read", _drop_gallery_entry)
